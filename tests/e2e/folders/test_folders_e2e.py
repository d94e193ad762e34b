"""Folder commands end to end: `twistd opush` (demo standalone profile) against the real
Dovecot, driven by pyactivesync (EAS 16.1) and by requests that libwbxml2's `xml2wbxml`
encodes independently of our codec (12.1 and 14.1), answers decoded by `wbxml2xml`.
What the device does is checked on the IMAP side with imaplib."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml.etree import _Element
from pyactivesync import Client
from pyactivesync.exceptions import StatusError
from pyactivesync.models import FolderType

from tests.support.folders import (
    HAVE_LIBWBXML,
    libwbxml_changes,
    libwbxml_text,
    mapping_of,
    wbxml2xml,
    xml2wbxml,
)
from tests.support.server import OpushServer, free_port, start_server
from tests.support.services import LocalServices

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("server_log")]

FH = 'xmlns="FolderHierarchy:"'


def client(server: OpushServer, user: str, device_id: str) -> Client:
    c = Client(f"127.0.0.1:{server.http_port}", user, "secret", device_id=device_id, timeout=30)
    c._transport.base_url = server.url  # a real, independent EAS client pointed at us
    return c


def imap_folders(services: LocalServices, user: str) -> tuple[set[str], set[str]]:
    """(LIST names, LSUB names) as the server spells them (modified UTF-7)."""

    def names(lines: list[bytes | None]) -> set[str]:
        out = set()
        for line in lines:
            if line is None:
                continue
            match = re.match(rb'\(.*?\) (?:"."|NIL) "?(.*?)"?$', line)
            assert match, line
            out.add(match.group(1).decode("ascii"))
        return out

    with services.imap(user) as imap:
        return names(imap.list()[1]), names(imap.lsub()[1])


def post(c: Client, command: str, xml: str, version: str, expect: int = 200) -> _Element | None:
    """POST `xml` encoded by libwbxml2 at `version` over the client's session (its
    credentials, device id and policy key); the answer decoded by libwbxml2."""
    t = c._transport
    headers = {
        "Content-Type": "application/vnd.ms-sync.wbxml",
        "MS-ASProtocolVersion": version,
        "X-MS-PolicyKey": t.policy_key or "0",
    }
    query = {"Cmd": command, "User": c.user, "DeviceId": t.device_id, "DeviceType": "SmartPhone"}
    response = t.session.post(
        t.base_url, params=query, data=xml2wbxml(xml), headers=headers, timeout=30
    )
    assert response.status_code == expect, (response.status_code, response.text)
    if not response.content:
        return None
    assert response.headers["Content-Type"] == "application/vnd.ms-sync.wbxml"
    return wbxml2xml(response.content)


def status(root: _Element | None) -> int:
    assert root is not None
    value = libwbxml_text(root, "Status")
    assert value is not None
    return int(value)


def folder_sync(c: Client, key: str, version: str) -> _Element:
    root = post(c, "FolderSync", f"<FolderSync {FH}><SyncKey>{key}</SyncKey></FolderSync>", version)
    assert root is not None
    return root


# --------------------------------------------------------------------------- pyactivesync


def test_pyactivesync_lists_creates_renames_and_deletes_folders(
    opush_server: OpushServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c = client(opush_server, fresh_user, "FOLDERSE2E1")
    c.provision()
    folders = {f.name: f for f in c.list_folders()}
    assert {n: (f.type, f.parent_id) for n, f in folders.items()} == {
        "Inbox": (FolderType.INBOX, "0"),
        "Drafts": (FolderType.DRAFTS, "0"),
        "Trash": (FolderType.DELETED_ITEMS, "0"),
        "Sent": (FolderType.SENT_ITEMS, "0"),
        "Notes": (FolderType.NOTES, "0"),  # the IMAP Notes folder (mail_conf.ini default)
    }
    ids = {n: f.id for n, f in folders.items()}

    created = c.create_folder("Projets été")
    child = c.create_folder("2026", parent_id=created.id)
    in_inbox = c.create_folder("Clients", parent_id=ids["Inbox"])
    listed, subscribed = imap_folders(dovecot, fresh_user)
    # Modified UTF-7 on the wire (RFC 3501 5.1.3): "é" is "&AOk-".
    expected = {"Projets &AOk-t&AOk-", "Projets &AOk-t&AOk-/2026", "INBOX/Clients"}
    assert expected <= listed and expected <= subscribed

    tree = {f.id: (f.parent_id, f.name, f.type) for f in c.list_folders()}
    assert tree[created.id] == ("0", "Projets été", FolderType.USER_GENERIC)
    assert tree[child.id] == (created.id, "2026", FolderType.USER_GENERIC)
    assert tree[in_inbox.id] == (ids["Inbox"], "Clients", FolderType.USER_GENERIC)

    c.update_folder(created.id, "Archives 2026", parent_id=ids["Inbox"])
    listed, subscribed = imap_folders(dovecot, fresh_user)
    moved = {"INBOX/Archives 2026", "INBOX/Archives 2026/2026"}
    assert moved <= listed and moved <= subscribed
    assert not {n for n in listed if n.startswith("Projets")}
    tree = {f.id: (f.parent_id, f.name) for f in c.list_folders()}
    assert tree[created.id] == (ids["Inbox"], "Archives 2026")  # same id after the rename
    assert tree[child.id] == (created.id, "2026")

    with pytest.raises(StatusError):
        c.delete_folder(ids["Inbox"])  # Status 3: a default folder
    c.delete_folder(created.id)
    listed, _ = imap_folders(dovecot, fresh_user)
    assert not {n for n in listed if "Archives" in n}
    assert {f.name for f in c.list_folders()} == {
        "Inbox",
        "Drafts",
        "Trash",
        "Sent",
        "Notes",
        "Clients",
    }
    assert {f.id for f in c.list_folders()} >= set(ids.values())


def test_changes_made_by_another_imap_client_reach_the_device(
    opush_server: OpushServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c = client(opush_server, fresh_user, "FOLDERSE2E2")
    c.provision()
    first = folder_sync(c, "0", "14.1")
    key = libwbxml_text(first, "SyncKey")
    assert key and status(first) == 1
    with dovecot.imap(fresh_user) as imap:
        imap.create('"Reports"')
        imap.subscribe('"Reports"')
        imap.create('"Reports/Daily"')
        imap.subscribe('"Reports/Daily"')
        imap.create('"Unsubscribed"')
    added = folder_sync(c, key, "14.1")
    adds = libwbxml_changes(added)
    assert [(k, f["DisplayName"]) for k, f in adds] == [("Add", "Reports"), ("Add", "Daily")]
    reports = adds[0][1]["ServerId"]
    assert adds[1][1]["ParentId"] == reports
    key = libwbxml_text(added, "SyncKey")
    assert key

    # Retried with the previous key (the answer was lost): the same answer.
    again = folder_sync(c, libwbxml_text(first, "SyncKey") or "", "14.1")
    assert libwbxml_text(again, "SyncKey") == key and libwbxml_changes(again) == adds

    with dovecot.imap(fresh_user) as imap:
        imap.delete('"Reports/Daily"')
    gone = folder_sync(c, key, "14.1")
    assert libwbxml_changes(gone) == [("Delete", {"ServerId": adds[1][1]["ServerId"]})]
    key = libwbxml_text(gone, "SyncKey") or ""
    quiet = folder_sync(c, key, "14.1")
    assert libwbxml_text(quiet, "SyncKey") == key and libwbxml_changes(quiet) == []


# --------------------------------------------------------------------------- 12.1 / 14.1


@pytest.mark.skipif(not HAVE_LIBWBXML, reason="libwbxml2 tools (xml2wbxml) not installed")
@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_libwbxml_encoded_requests(
    opush_server: OpushServer, dovecot: LocalServices, fresh_user: str, version: str
) -> None:
    device = f"FOLDERSLIB{version.replace('.', '')}"
    c = client(opush_server, fresh_user, device)
    c.provision()
    root = folder_sync(c, "0", version)
    assert status(root) == 1
    ids = mapping_of(libwbxml_changes(root))
    # The Notes folder (MS-ASNOTE) exists from 14.0 on.
    notes = {"Notes"} if version >= "14" else set()
    assert set(ids) == {"Inbox", "Drafts", "Trash", "Sent", *notes}
    key = libwbxml_text(root, "SyncKey") or ""

    def create(key: str, parent: str, name: str) -> _Element:
        xml = (
            f"<FolderCreate {FH}><SyncKey>{key}</SyncKey><ParentId>{parent}</ParentId>"
            f"<DisplayName>{name}</DisplayName><Type>12</Type></FolderCreate>"
        )
        answer = post(c, "FolderCreate", xml, version)
        assert answer is not None
        return answer

    made = create(key, ids["Inbox"], "Équipe")
    assert status(made) == 1
    folder_id, key = libwbxml_text(made, "ServerId") or "", libwbxml_text(made, "SyncKey") or ""
    assert "INBOX/&AMk-quipe" in imap_folders(dovecot, fresh_user)[1]
    assert status(create(key, ids["Inbox"], "Équipe")) == 2  # exists
    assert status(create(key, "999", "x")) == 5  # parent unknown
    assert status(create("no-such-key", "0", "x")) == 9  # the device restarts from 0

    update = (
        f"<FolderUpdate {FH}><SyncKey>{key}</SyncKey><ServerId>{folder_id}</ServerId>"
        f"<ParentId>0</ParentId><DisplayName>Team</DisplayName></FolderUpdate>"
    )
    updated = post(c, "FolderUpdate", update, version)
    assert status(updated) == 1
    key = libwbxml_text(updated, "SyncKey") or ""
    assert "Team" in imap_folders(dovecot, fresh_user)[0]
    special = (
        f"<FolderUpdate {FH}><SyncKey>{key}</SyncKey><ServerId>{ids['Sent']}</ServerId>"
        f"<ParentId>0</ParentId><DisplayName>Envoyés</DisplayName></FolderUpdate>"
    )
    assert status(post(c, "FolderUpdate", special, version)) == 2

    def delete(key: str, server_id: str) -> _Element:
        xml = (
            f"<FolderDelete {FH}><SyncKey>{key}</SyncKey>"
            f"<ServerId>{server_id}</ServerId></FolderDelete>"
        )
        answer = post(c, "FolderDelete", xml, version)
        assert answer is not None
        return answer

    assert status(delete(key, ids["Inbox"])) == 3
    assert status(delete(key, "999")) == 4
    deleted = delete(key, folder_id)
    assert status(deleted) == 1
    assert "Team" not in imap_folders(dovecot, fresh_user)[0]
    final = folder_sync(c, libwbxml_text(deleted, "SyncKey") or "", version)
    assert status(final) == 1 and libwbxml_changes(final) == []
    assert status(folder_sync(c, "bogus", version)) == 9


def test_special_folder_names_come_from_mail_conf(
    tmp_path: Path, dovecot: LocalServices, fresh_user: str
) -> None:
    """mail_conf.ini imap.mailbox.* name the Drafts/Sent/Trash folders, even as children of
    INBOX (Opush OP-226); the server's own \\Drafts etc. are then ordinary folders."""
    with dovecot.imap(fresh_user) as imap:
        for name in ("INBOX/draft", "INBOX/sent", "INBOX/trash"):
            imap.create(f'"{name}"')  # not even subscribed: special folders are always shown
    server = start_server(
        tmp_path,
        {
            "mail_conf.ini": {
                "imap.mailbox.draft": "INBOX/draft",
                "imap.mailbox.sent": "INBOX/sent",
                "imap.mailbox.trash": "INBOX/trash",
            }
        },
    )
    try:
        c = client(server, fresh_user, "FOLDERSCONF1")
        c.provision()
        folders = c.list_folders()
        by_name = {f.name: f for f in folders}
        inbox = by_name["Inbox"].id
        assert {(f.name, f.type, f.parent_id == inbox) for f in folders} == {
            ("Inbox", FolderType.INBOX, False),
            ("draft", FolderType.DRAFTS, True),
            ("sent", FolderType.SENT_ITEMS, True),
            ("trash", FolderType.DELETED_ITEMS, True),
            ("Drafts", FolderType.USER_GENERIC, False),
            ("Sent", FolderType.USER_GENERIC, False),
            ("Trash", FolderType.USER_GENERIC, False),
            ("Notes", FolderType.NOTES, False),
        }
        with pytest.raises(StatusError):
            c.delete_folder(by_name["trash"].id)
        c.delete_folder(by_name["Trash"].id)  # just a folder now
    finally:
        server.stop()


# --------------------------------------------------------------------------- IMAP down


class CuttableProxy:
    """A TCP relay to Dovecot that a test can cut: the IMAP server "goes down" for opush only
    (Dovecot stays up for every other test session on the machine)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.sockets: list[socket.socket] = []
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.open = False
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def proxied_server(
    tmp_path: Path, dovecot: LocalServices
) -> Iterator[tuple[OpushServer, CuttableProxy]]:
    proxy = CuttableProxy((dovecot.host, dovecot.imap_port))
    server = start_server(tmp_path, {"mail_conf.ini": {"imap.port": str(proxy.port)}})
    try:
        yield server, proxy
    finally:
        server.stop()
        proxy.close()


def test_imap_down_is_the_retryable_status(
    proxied_server: tuple[OpushServer, CuttableProxy], fresh_user: str
) -> None:
    server, proxy = proxied_server
    c = client(server, fresh_user, "FOLDERSDOWN1")
    c.provision()  # credentials checked (and cached by the front door) while IMAP is up
    key = libwbxml_text(folder_sync(c, "0", "14.1"), "SyncKey") or ""
    proxy.cut()
    for version in ("14.1", "12.1"):
        down = folder_sync(c, key, version)
        assert status(down) == 6  # MS-ASCMD 2.2.3.177.5: server error, retry
    log = server.log_text()
    assert "FolderSync" in log
