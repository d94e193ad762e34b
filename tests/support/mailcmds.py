"""Helpers for the mail command tests (ItemOperations, GetAttachment, MoveItems, Search).

``MailServer`` is a real opush site on 127.0.0.1 (in-process, real reactor) with the embedded
store, IMAP LOGIN and the IMAP mail backend on the local Dovecot, and the GAL on the local
slapd.  ``map_mail_folders`` gives a device its collection ids the way FolderSync does (through
the state store), so these commands can be tested whether or not FolderSync is there.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import attrs
import requests
from lxml import etree
from pyactivesync import Client, _http

from opush.config.sections import DEFAULT_LDAP_FILTER
from opush.runtime import Runtime
from opush.storage.embedded import EmbeddedStore
from opush.storage.interfaces import FolderKind, FolderRef
from opush.wbxml import decode, encode

EAS = "/Microsoft-Server-ActiveSync"
LDAP_FILTER = DEFAULT_LDAP_FILTER

#: EAS folder types (MS-ASCMD 2.2.3.186.3) of the folders every fresh mailbox has.
STANDARD_FOLDERS: Mapping[str, int] = {"INBOX": 2, "Drafts": 3, "Trash": 4, "Sent": 5}


@attrs.define
class MailServer:
    port: int
    store: EmbeddedStore
    runtime: Runtime

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{EAS}"


def client(server: MailServer, user: str, device_id: str, password: str = "secret") -> Client:
    c = Client(server.host, user, password, device_id=device_id, timeout=20)
    c._transport.base_url = server.url
    return c


async def map_mail_folders(
    server: MailServer, user: str, device_id: str, extra: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Collection ids for the standard folders (+ ``extra`` name -> EAS type), allocated in
    the store as FolderSync would; the device must be registered (provisioned) first."""
    devices = [d for d in await server.store.list_devices() if d.device_id == device_id]
    assert devices, f"device {device_id} is not registered"
    owner = devices[0].user
    out: dict[str, int] = {}
    for name, folder_type in {**STANDARD_FOLDERS, **(extra or {})}.items():
        parent, _, display = name.rpartition("/")
        ref = FolderRef(FolderKind.MAIL, name, display, folder_type, parent or None)
        out[name] = await server.store.allocate_collection(owner, device_id, ref)
    return out


def attachment_mail(to: str, subject: str, body: str, payload: bytes, filename: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(body)
    msg.add_attachment(payload, maintype="application", subtype="octet-stream", filename=filename)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def post(
    c: Client,
    command: str,
    tree: etree._Element | None,
    *,
    version: str = "16.1",
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> requests.Response:
    """POST a request encoded by our encoder over pyactivesync's session (its auth, device and
    policy key), returning the raw HTTP response."""
    t = c._transport
    query = {"Cmd": command, "User": c.user, "DeviceId": t.device_id, "DeviceType": t.device_type}
    query.update(params or {})
    sent: dict[str, Any] = {
        "Content-Type": "application/vnd.ms-sync.wbxml",
        "MS-ASProtocolVersion": version,
    }
    if t.policy_key:
        sent["X-MS-PolicyKey"] = t.policy_key
    sent.update(headers or {})
    body = encode(tree, version) if tree is not None else b""
    response = t.session.post(t.base_url, params=query, data=body, headers=sent, timeout=20)
    response.raise_for_status()
    return response


def post_tree(c: Client, command: str, tree: etree._Element, version: str = "16.1") -> Any:
    return decode(post(c, command, tree, version=version).content)


def eas_version_of(module: Any = _http) -> str:
    return str(module._EAS_PROTOCOL_VERSION)


# --------------------------------------------------------------------------- in-memory doubles
# For the unit tests: a MailStore over a dict of parsed messages and the part of the StateStore
# the mail commands read, so handlers run without any server (every Deferred has fired).


def _bodypart(msg: Any, section: str) -> Any:
    from opush.backends.interfaces import BodyPart

    ctype = msg.get_content_type()
    maintype, _, subtype = ctype.partition("/")
    if msg.is_multipart() and maintype == "multipart":
        children = tuple(
            _bodypart(child, f"{section}.{i}" if section else str(i))
            for i, child in enumerate(msg.get_payload(), 1)
        )
        return BodyPart(section=section, type="multipart", subtype=subtype, children=children)
    return BodyPart(
        section=section or "1",
        type=maintype,
        subtype=subtype,
        params={k.lower(): v for k, v in msg.get_params() or [] if v},
        encoding=str(msg.get("content-transfer-encoding", "7bit")).lower(),
        disposition=msg.get_content_disposition(),
    )


def _part(msg: Any, section: str) -> Any:
    node = msg
    for index in section.split("."):
        if node.get_content_type() == "message/rfc822":
            node = node.get_payload()[0]
        payload = node.get_payload() if node.is_multipart() else None
        if payload is None:
            if index != "1":
                return None
            continue
        i = int(index)
        if not 1 <= i <= len(payload):
            return None
        node = payload[i - 1]
    return node


@attrs.define
class FakeMessage:
    raw: bytes
    flags: frozenset[str] = frozenset()
    internaldate: Any = None


@attrs.define
class FakeMail:
    """A MailStore over ``folders[name][uid]``; ``uidnext`` per folder grows on moves."""

    folders: dict[str, dict[int, FakeMessage]] = attrs.field(factory=dict)
    separator: str = "/"
    uidnext: dict[str, int] = attrs.field(factory=dict)
    fail_moves: bool = False

    def add(self, folder: str, raw: bytes, internaldate: Any = None) -> int:
        box = self.folders.setdefault(folder, {})
        uid = self.uidnext.get(folder, 1)
        self.uidnext[folder] = uid + 1
        box[uid] = FakeMessage(raw, frozenset(), internaldate)
        return uid

    def _box(self, folder: str) -> dict[int, FakeMessage]:
        from opush.backends.interfaces import MailboxNotFound

        if folder not in self.folders:
            raise MailboxNotFound(folder)
        return self.folders[folder]

    async def list_folders(self) -> list[Any]:
        from opush.backends.interfaces import Folder

        return [Folder(name, self.separator) for name in sorted(self.folders)]

    async def fetch_summaries(self, folder: str, uids: Any, headers: bool = False) -> list[Any]:
        from email import message_from_bytes

        from opush.backends.interfaces import MessageSummary

        box = self._box(folder)
        out = []
        for uid in uids:
            m = box.get(uid)
            if m is None:
                continue
            body = _bodypart(message_from_bytes(m.raw), "")
            out.append(
                MessageSummary(
                    uid, m.flags, internaldate=m.internaldate, size=len(m.raw), body=body
                )
            )
        return out

    async def fetch_body(
        self, folder: str, uid: int, section: str = "", partial: Any = None, max_size: Any = None
    ) -> bytes:
        from email import message_from_bytes

        from opush.backends.interfaces import MessageNotFound

        m = self._box(folder).get(uid)
        if m is None:
            raise MessageNotFound(str(uid))
        if section == "":
            return m.raw
        if section == "HEADER":
            return m.raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        node = _part(message_from_bytes(m.raw), section)
        if node is None:
            return b""
        if node.get_content_type() == "message/rfc822":
            return bytes(node.get_payload()[0].as_bytes())
        payload = node.get_payload()
        return payload.encode("ascii", "surrogateescape") if isinstance(payload, str) else b""

    async def search(self, folder: str, query: Any) -> list[int]:
        box = self._box(folder)
        out = []
        for uid, m in box.items():
            day = m.internaldate.date() if m.internaldate is not None else None
            if query.text and query.text.lower().encode() not in m.raw.lower():
                continue
            if query.since and day is not None and day < query.since:
                continue
            if query.before and day is not None and day >= query.before:
                continue
            out.append(uid)
        return sorted(out)

    async def search_folders(self, folders: Any, query: Any) -> dict[str, list[int]]:
        return {f: await self.search(f, query) for f in folders if f in self.folders}

    async def move(self, folder: str, uids: Any, destination: str) -> dict[int, int]:
        from opush.backends.interfaces import MailboxNotFound, MailError

        box = self._box(folder)
        if destination not in self.folders:
            raise MailboxNotFound(destination)
        if self.fail_moves:
            raise MailError("NO [INUSE] locked")
        mapping = {}
        for uid in uids:
            m = box.pop(uid, None)
            if m is not None:
                new = self.uidnext.get(destination, 1)
                self.uidnext[destination] = new + 1
                self.folders[destination][new] = m
                mapping[uid] = new
        return mapping

    async def empty_folder(self, folder: str) -> None:
        self._box(folder).clear()

    async def delete_folder(self, name: str) -> None:
        self._box(name)
        del self.folders[name]

    async def close(self) -> None:
        return None


@attrs.define
class FakeMailBackend:
    mail: FakeMail

    def store(self, credentials: Any) -> FakeMail:
        return self.mail

    async def shutdown(self) -> None:
        return None


@attrs.define
class FakeCollections:
    """The collection-id part of a StateStore (one user+device)."""

    by_id: dict[int, Any] = attrs.field(factory=dict)
    mappings: dict[tuple[Any, ...], str] = attrs.field(factory=dict)

    def add(self, collection_id: int, folder: str, folder_type: int = 12) -> None:
        from opush.storage.interfaces import Collection

        ref = FolderRef(FolderKind.MAIL, folder, folder.rpartition("/")[2], folder_type)
        self.by_id[collection_id] = Collection(collection_id, ref)

    def get_collection(self, user: str, device_id: str, collection_id: int) -> Any:
        from twisted.internet.defer import succeed

        return succeed(self.by_id.get(collection_id))

    def find_collection(self, user: str, device_id: str, kind: Any, backend_id: str) -> Any:
        from twisted.internet.defer import succeed

        found = [
            c for c in self.by_id.values() if c.ref.kind is kind and c.ref.backend_id == backend_id
        ]
        return succeed(min(found, key=lambda c: c.collection_id) if found else None)

    def current_sync_state(self, user: str, device_id: str, collection_id: int) -> Any:
        from twisted.internet.defer import succeed

        return succeed(None)  # never synced: MoveItems has no sync state to update

    def get_mapping(self, user: str, device_id: str, cid: int, kind: Any, key: str) -> Any:
        from twisted.internet.defer import succeed

        return succeed(self.mappings.get((user, device_id, cid, kind, key)))

    def put_mapping(
        self, user: str, device_id: str, cid: int, kind: Any, key: str, value: str
    ) -> Any:
        from twisted.internet.defer import succeed

        self.mappings[(user, device_id, cid, kind, key)] = value
        return succeed(None)

    def list_collections(self, user: str, device_id: str) -> Any:
        from twisted.internet.defer import succeed

        return succeed([self.by_id[k] for k in sorted(self.by_id)])


def command_context(
    command: str,
    mail: FakeMail,
    collections: FakeCollections,
    *,
    version: tuple[int, int] = (16, 1),
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    directory: Any = None,
    ldap_configured: bool = True,
) -> Any:
    """A CommandContext for alice's device DEV1 over the doubles."""
    from datetime import UTC, datetime

    from twisted.internet.task import Clock

    from opush.backends.interfaces import Credentials, UserIdentity
    from opush.commands.context import CommandContext
    from opush.http.query import EasQuery
    from opush.storage.interfaces import Device

    now = datetime(2026, 1, 1, tzinfo=UTC)
    runtime = Runtime(
        clock=Clock(),
        auth=None,  # type: ignore[arg-type]
        devices=None,  # type: ignore[arg-type]
        state=collections,  # type: ignore[arg-type]
        mail=FakeMailBackend(mail),
    )
    if directory is not None or not ldap_configured:
        runtime.services["directory"] = directory
    user = UserIdentity("alice", "example.org", "alice@example.org", "Alice Martin")
    return CommandContext(
        runtime=runtime,
        command=command,
        credentials=Credentials(user, "secret"),
        device=Device("alice@example.org", "DEV1", "test", None, now, now),
        version=version,
        query=EasQuery(command, "DEV1", "test", params=dict(params or {})),
        headers={k.lower(): v for k, v in (headers or {}).items()},
        body=b"",
        content_type=None,
        policy_key=None,
        request_id=1,
    )
