"""Device conformance: replay what real devices sent (the corpus' captures) against a real
`twistd -n opush`, rewriting only SyncKeys, CollectionIds and PolicyKeys, and check what a
device needs: HTTP 200, WBXML that decodes, good Status, and a first sync that converges.

The corpus is test data read from ``../shared/corpus`` (never copied here); tests skip
without it.
"""

from __future__ import annotations

import base64
import copy
import re
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
from lxml import etree

from opush.http.query import encode_base64_query
from opush.wbxml import decode, encode, ns, set_opaque
from tests.support.push import foldersync_request, provision_request
from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO.parent / "shared" / "corpus" / "linagora-opush"
A, P, F, S = ns.AIRSYNC, ns.PROVISION, ns.FOLDERHIERARCHY, ns.SETTINGS

#: (capture, User-Agent of the device in it we replay): a capture may hold two devices.
CAPTURES = [
    ("ios6-exchange-receive200Emails", "Apple-iPad3C1/1002.141"),  # iOS 6, 12.1
    ("ios6-exchange-deleteAMovedOccurrence", "Apple-iPad3C1/1002.146"),  # iOS 6, 14.1
    ("ios7-exchange-fetch-deleted-emails", "Apple-iPhone3C1/1104.257"),  # iOS 7, 12.1
    ("ios7-exchange-fetch-deleted-emails", "Android/4.4.4-EAS-2.0"),  # Nexus 4, 12.1
    ("gs2-exchange-receive300EmailsInManualMode2", "SAMSUNG-GT-I9100"),  # Samsung, 12.1
    ("gs3-exchange-client-add-deletion-server-update", "Android/4.2.2-EAS-1.3"),  # 12.1
    ("wp8-exchange-contact-create-modify-delete", ""),  # Windows Phone 8, 14.0, base64
    ("ios6-exchange-receive200Emails", "SAMSUNG-GT-I9100"),  # Samsung, 12.1, with Ping
]
#: the same real bodies at the versions today's clients negotiate (the corpus has no 16.1
#: traffic): (capture, User-Agent, MS-ASProtocolVersion sent instead of the captured one)
UPGRADED = [
    ("ios6-exchange-receive200Emails", "Apple-iPad3C1/1002.141", "14.1"),
    ("ios6-exchange-receive200Emails", "Apple-iPad3C1/1002.141", "16.1"),
    ("ios7-exchange-fetch-deleted-emails", "Android/4.4.4-EAS-2.0", "14.1"),
    ("ios7-exchange-fetch-deleted-emails", "Android/4.4.4-EAS-2.0", "16.1"),
]
CASES = [(c, u, None) for c, u in CAPTURES] + UPGRADED


@attrs.define
class Captured:
    """One request of a capture: its command, headers, query form and body."""

    number: int
    command: str
    headers: dict[str, str]
    query: str
    body: bytes | None
    response: bytes | None

    @property
    def tree(self) -> etree._Element:
        assert self.body is not None
        return decode(self.body)

    @property
    def base64(self) -> bool:
        return "Cmd=" not in self.query


def read_capture(name: str) -> list[Captured]:
    folder = CORPUS / name
    out = []
    for http in sorted(folder.glob("*.http.txt")):
        m = re.match(r"(\d+)-(\w+)\.http\.txt", http.name)
        if not m or m.group(2) == "OPTIONS":
            continue
        lines = [line for line in http.read_text("utf-8").splitlines() if not line.startswith("#")]
        request_line = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        stem = http.name[: -len(".http.txt")]
        req = folder / f"{stem}-request.wbxml"
        resp = folder / f"{stem}-response.wbxml"
        out.append(
            Captured(
                int(m.group(1)),
                m.group(2),
                headers,
                request_line.split()[1].partition("?")[2],
                req.read_bytes() if req.exists() else None,
                resp.read_bytes() if resp.exists() else None,
            )
        )
    return out


def plain_query(query: str) -> dict[str, str]:
    return dict(p.split("=", 1) for p in query.split("&") if "=" in p)


class Device:
    """Replays one device's requests with its own headers and query form."""

    def __init__(self, server: OpushServer, user: str, sample: Captured) -> None:
        self.server, self.user = server, user
        self.user_agent = sample.headers.get("user-agent")
        self.base64 = sample.base64
        if self.base64:
            raw = base64.b64decode(sample.query)
            self.version = {121: "12.1", 140: "14.0", 141: "14.1", 160: "16.0", 161: "16.1"}[raw[0]]
            n = raw[4]
            self.device_id = raw[5 : 5 + n]
            k = 5 + n
            k += 1 + raw[k]
            self.device_type = raw[k + 1 : k + 1 + raw[k]].decode()
        else:
            q = plain_query(sample.query)
            self.version = sample.headers["ms-asprotocolversion"]
            self.device_id = q["DeviceId"].encode()
            self.device_type = q["DeviceType"]
        self.policy_key: str | None = None
        self.session = requests.Session()
        self.session.auth = (user, "secret")

    def raw(
        self, command: str, params: dict[str, str], body: bytes = b"", content_type: str = ""
    ) -> requests.Response:
        """A command with a non-WBXML body (GetAttachment, 12.1 SendMail), plain query form
        as 12.1 devices send it."""
        headers = {"MS-ASProtocolVersion": self.version, "X-MS-PolicyKey": self.policy_key or "0"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        query = {
            "Cmd": command,
            **params,
            "User": self.user,
            "DeviceId": self.device_id.decode(),
            "DeviceType": self.device_type,
        }
        return self.session.post(
            self.server.url, params=query, data=body, headers=headers, timeout=30
        )

    def post(
        self, command: str, tree: etree._Element | bytes | None, expect: int = 200
    ) -> etree._Element | None:
        """POST a device body: its captured bytes as they are, or a rewritten tree encoded
        without a version check (devices do send elements of later versions, e.g. the
        Nexus 4's Settings MobileOperator at 12.1)."""
        headers = {"Content-Type": "application/vnd.ms-sync.wbxml"}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        if self.base64:
            pk = int(self.policy_key) if self.policy_key else None
            url = (
                self.server.url
                + "?"
                + encode_base64_query(
                    command=command,
                    device_id=self.device_id,
                    device_type=self.device_type,
                    protocol_version=self.version,
                    policy_key=pk,
                )
            )
        else:
            headers["MS-ASProtocolVersion"] = self.version
            if self.policy_key:
                headers["X-MS-PolicyKey"] = self.policy_key
            url = (
                f"{self.server.url}?User={self.user}&DeviceId={self.device_id.decode()}"
                f"&DeviceType={self.device_type}&Cmd={command}"
            )
        if tree is None:
            body = b""
        elif isinstance(tree, bytes):
            body = tree
        else:
            body = encode(tree)
        r = self.session.post(url, data=body, headers=headers, timeout=30)
        if expect != 200:
            assert r.status_code == expect, (command, r.status_code)
            return None
        assert r.status_code == 200, (
            f"{command}: HTTP {r.status_code}\n{self.server.log_text()[-3000:]}"
        )
        if not r.content:
            return None
        answer = decode(r.content)
        # the answer re-encodes under the negotiated version's code pages
        encode(answer, self.version)
        return answer


def t(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path)
    return found.text if found is not None else None


def shape(el: etree._Element, depth: int = 2) -> list[Any]:
    """Element names (with children down to `depth`), in order: what must line up with
    Exchange's answer."""
    out: list[Any] = []
    for child in el:
        name = etree.QName(child).localname
        if depth > 1 and len(child):
            out.append((name, shape(child, depth - 1)))
        elif not out or out[-1] != name:
            out.append(name)
    return out


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, local_services: LocalServices
) -> Iterator[OpushServer]:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus absent: {CORPUS}")
    s = start_server(tmp_path_factory.mktemp("devices"))
    try:
        yield s
    finally:
        s.stop()


def message(to: str, i: int, attach: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "sender@example.org"
    msg["To"] = to
    msg["Subject"] = f"device replay {i}"
    msg["Message-ID"] = f"<replay-{i}@example.org>"
    msg.set_content(f"body {i}\n")
    if attach:
        msg.add_attachment(
            b"GIF89a" + bytes(range(64)), maintype="image", subtype="gif", filename="a.gif"
        )
    return msg


def inbox_ids(capture: list[Captured]) -> set[str]:
    """The device's CollectionIds of its Inbox, from Exchange's FolderSync answers."""
    out = set()
    for c in capture:
        if c.command == "FolderSync" and c.response:
            for add in decode(c.response).iter(f"{{{F}}}Add"):
                if t(add, f"{{{F}}}Type") == "2":
                    out.add(t(add, f"{{{F}}}ServerId") or "")
    return out


@pytest.mark.parametrize(
    ("capture_name", "ua", "version"),
    CASES,
    ids=[f"{c}[{u}]@{v or 'as-captured'}" for c, u, v in CASES],
)
def test_device_replay(
    server: OpushServer,
    local_services: LocalServices,
    fresh_user: str,
    capture_name: str,
    ua: str,
    version: str | None,
) -> None:
    if not (CORPUS / capture_name).is_dir():
        pytest.skip(f"capture absent: {capture_name}")
    capture = [
        c for c in read_capture(capture_name) if ua in c.headers.get("user-agent", "") or not ua
    ]
    # the device's steady identity (a Samsung validates its account as DeviceId=validate first)
    steady = [c for c in capture if c.body and "DeviceId=validate" not in c.query]
    sample = next((c for c in steady if c.command == "FolderSync"), steady[0])
    if not sample.base64:
        device_id = plain_query(sample.query)["DeviceId"]
        capture = [c for c in capture if plain_query(c.query).get("DeviceId") == device_id]
    dev = Device(server, fresh_user, sample)
    dev.version = version or dev.version
    # Before provisioning, a device's first FolderSync got 449 from Exchange: same here
    # (MS-ASPROV 3.2.5.1: the device then provisions).
    early = next((c for c in capture if c.command in {"FolderSync", "Provision"}), None)
    if early is not None and early.command == "FolderSync" and early.body:
        http = (CORPUS / capture_name / f"{early.number:03d}-FolderSync.http.txt").read_text()
        if "HTTP/1.1 449" in http and dev.version.startswith("12"):
            dev.post("FolderSync", early.body, expect=449)
        elif "HTTP/1.1 449" in http:  # 14.0+: 142 DeviceNotProvisioned (MS-ASCMD 2.2.2)
            answer = dev.post("FolderSync", early.body)
            assert t(answer, f"{{{F}}}Status") == "142", answer
    # Provision: the device's own two requests (policy download, then acknowledgement).
    provisions = [c for c in capture if c.command == "Provision" and c.body]
    if provisions:
        first = dev.post("Provision", provisions[0].body)
        assert first is not None and t(first, f"{{{P}}}Status") == "1"
        dev.policy_key = t(first, f".//{{{P}}}PolicyKey")
        if provisions[0].response:
            assert shape(first) == shape(decode(provisions[0].response)), "Provision shape"
        ack = provisions[1].tree if len(provisions) > 1 else None
        if ack is not None:
            for pk in ack.iter(f"{{{P}}}PolicyKey"):
                pk.text = dev.policy_key
            final = dev.post("Provision", ack)
            assert final is not None and t(final, f"{{{P}}}Status") == "1"
            dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    else:  # WP8 and others provisioned before the capture started
        first = dev.post("Provision", provision_request())
        key = t(first, f".//{{{P}}}PolicyKey")
        final = dev.post("Provision", provision_request(key))
        dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    # Settings as sent.
    for c in capture:
        if c.command == "Settings" and c.body:
            answer = dev.post("Settings", c.body)
            assert answer is not None and t(answer, f"{{{S}}}Status") == "1"
            # MS-ASCMD 2.2.3.158: Status, then one element per request part.  Exchange
            # refused the Nexus 4's 12.1 Settings (a 14.0 MobileOperator inside) with Status 2;
            # accepting it is kinder to the device, so shapes are compared on success only.
            exchange = decode(c.response) if c.response else None
            if exchange is not None and t(exchange, f"{{{S}}}Status") == "1":
                assert shape(answer, 1) == shape(exchange, 1), "Settings shape"
            break
    # FolderSync from 0 with the device's own body.
    fs = next((c for c in capture if c.command == "FolderSync" and c.body), None)
    tree = fs.tree if fs is not None else foldersync_request()
    tree.find(f"{{{F}}}SyncKey").text = "0"  # type: ignore[union-attr]
    folders = dev.post("FolderSync", tree)
    assert folders is not None and t(folders, f"{{{F}}}Status") == "1"
    if (
        fs is not None and fs.response and t(fs.tree, f"{{{F}}}SyncKey") == "0"
    ):  # Status, SyncKey, Changes
        assert shape(folders, 1) == shape(decode(fs.response), 1), "FolderSync shape"
        # and each Add as Exchange's: ServerId, ParentId, DisplayName, Type (2.2.3.7.2 Add)
        theirs_add = decode(fs.response).find(f".//{{{F}}}Add")
        ours_add = folders.find(f".//{{{F}}}Add")
        assert theirs_add is not None and ours_add is not None
        assert shape(ours_add) == shape(theirs_add)
    ours = {
        t(add, f"{{{F}}}Type") or "": t(add, f"{{{F}}}ServerId") or ""
        for add in folders.iter(f"{{{F}}}Add")
    }
    assert "2" in ours, "no Inbox in FolderSync"
    inbox = ours["2"]
    for i in range(3):
        local_services.deliver(fresh_user, message(fresh_user, i, attach=i == 0))
    # Sync: the device's first Inbox Sync that carries Options, replayed to convergence.
    theirs = inbox_ids(capture)
    template = None
    for c in capture:
        if c.command != "Sync" or not c.body:
            continue
        for col in c.tree.iter(f"{{{A}}}Collection"):
            options = col.find(f"{{{A}}}Options")
            if options is None:
                continue
            mail_like = (
                t(col, f"{{{A}}}Class") == "Email"
                or options.find(f"{{{A}}}MIMESupport") is not None
            )
            if t(col, f"{{{A}}}CollectionId") in theirs or (not theirs and mail_like):
                template = col
                break
        if template is not None:
            break
    if template is None:
        # no mail Sync captured (a calendar/contacts scenario): the device's own Options of
        # another collection, applied to the Inbox, still exercise its version and query form
        template = next(
            (
                col
                for c in capture
                if c.command == "Sync" and c.body
                for col in c.tree.iter(f"{{{A}}}Collection")
                if col.find(f"{{{A}}}Options") is not None
            ),
            None,
        )
        if template is None:  # WP8 sends no Options at all: a bare collection, as it does
            template = etree.Element(f"{{{A}}}Collection")
            etree.SubElement(template, f"{{{A}}}SyncKey")
            etree.SubElement(template, f"{{{A}}}CollectionId")
        template = copy.deepcopy(template)
        for cls in template.findall(f"{{{A}}}Class"):
            template.remove(cls)
    first_sync = next(
        (
            col
            for c in capture
            if c.command == "Sync" and c.body
            for col in c.tree.iter(f"{{{A}}}Collection")
            if t(col, f"{{{A}}}CollectionId") in theirs and t(col, f"{{{A}}}SyncKey") == "0"
        ),
        None,
    )
    seen: list[str] = []
    references: list[str] = []
    windows = 0
    mail_data = etree.Element("none")
    key = "0"
    for _ in range(10):
        # the device's own key-0 request when captured (iOS sends its Options there,
        # Samsung DeletesAsMoves), else its later request without Options
        col = copy.deepcopy(first_sync if key == "0" and first_sync is not None else template)
        col.find(f"{{{A}}}CollectionId").text = inbox  # type: ignore[union-attr]
        col.find(f"{{{A}}}SyncKey").text = key  # type: ignore[union-attr]
        for cmds in col.findall(f"{{{A}}}Commands"):
            col.remove(cmds)
        if key == "0" and first_sync is None:
            for opt in col.findall(f"{{{A}}}Options"):
                col.remove(opt)
        for window in col.iter(f"{{{A}}}WindowSize"):
            window.text = "2"  # 3 messages in two windows: MoreAvailable, then the rest
        root = etree.Element(f"{{{A}}}Sync")
        root.append(etree.Element(f"{{{A}}}Collections"))
        root[0].append(col)
        answer = dev.post("Sync", root)
        assert answer is not None
        got = answer.find(f".//{{{A}}}Collection")
        assert got is not None and t(got, f"{{{A}}}Status") == "1", etree.tostring(answer)
        key = t(got, f"{{{A}}}SyncKey") or ""
        # Exchange's order (every captured Sync answer): SyncKey, CollectionId, Status,
        # MoreAvailable, Commands (MS-ASCMD 2.2.3.24.2 Collection)
        names = [etree.QName(e).localname for e in got if etree.QName(e).localname != "Class"]
        order = ["SyncKey", "CollectionId", "Status", "MoreAvailable", "Commands", "Responses"]
        assert names == sorted(names, key=order.index), names
        windows += got.find(f"{{{A}}}MoreAvailable") is not None
        seen += [t(add, f"{{{A}}}ServerId") or "" for add in got.iter(f"{{{A}}}Add")]
        mail_data = next(got.iter(f"{{{A}}}ApplicationData"), mail_data)
        references += [r.text or "" for r in got.iter(f"{{{ns.AIRSYNCBASE}}}FileReference")]
        if key != "0" and got.find(f"{{{A}}}MoreAvailable") is None and len(seen) >= 3:
            break
    assert len(seen) == 3 and len(set(seen)) == 3, seen
    if template.find(f".//{{{A}}}WindowSize") is not None:
        assert windows >= 1, "no MoreAvailable with WindowSize 2 and 3 messages"
    # Email ApplicationData: the elements Exchange sent this device, in its order (MS-ASCMD
    # 2.2.3.7.2: Email elements in the order of the schema), minus what depends on the message
    exchange_data = next(
        (
            [etree.QName(e).localname for e in data]
            for c in capture
            if c.command == "Sync" and c.response
            for data in decode(c.response).iter(f"{{{A}}}ApplicationData")
            if data.find(f"{{{ns.EMAIL}}}Subject") is not None
        ),
        None,
    )
    if exchange_data is not None:
        ours_data = [etree.QName(e).localname for e in mail_data]
        optional = {"Attachments", "Cc", "ReplyTo", "MeetingRequest", "Categories", "Reply-To"}
        assert set(exchange_data) - set(ours_data) - optional == set(), (exchange_data, ours_data)
        common = [n for n in ours_data if n in exchange_data]
        assert common == [n for n in exchange_data if n in common], (exchange_data, ours_data)
    # Sync/Fetch as iOS sends it (GetChanges 0, MIME Options, one Fetch): the full item in
    # Responses, the key moving on, in Exchange's order.
    fetch_col = next(
        (
            col
            for c in capture
            if c.command == "Sync" and c.body
            for col in c.tree.iter(f"{{{A}}}Collection")
            if col.find(f"{{{A}}}Commands/{{{A}}}Fetch") is not None
        ),
        None,
    )
    if fetch_col is not None:
        fetch_col.find(f"{{{A}}}CollectionId").text = inbox  # type: ignore[union-attr]
        fetch_col.find(f"{{{A}}}SyncKey").text = key  # type: ignore[union-attr]
        fetch_col.find(f".//{{{A}}}Fetch/{{{A}}}ServerId").text = seen[1]  # type: ignore[union-attr]
        root = etree.Element(f"{{{A}}}Sync")
        etree.SubElement(root, f"{{{A}}}Collections").append(fetch_col)
        answer = dev.post("Sync", root)
        got = answer.find(f".//{{{A}}}Collection") if answer is not None else None
        assert got is not None and t(got, f"{{{A}}}Status") == "1"
        names = [etree.QName(e).localname for e in got if etree.QName(e).localname != "Class"]
        assert names == ["SyncKey", "CollectionId", "Status", "Responses"], names
        fetched = got.find(f"{{{A}}}Responses/{{{A}}}Fetch")
        assert fetched is not None and t(fetched, f"{{{A}}}Status") == "1"
        assert [etree.QName(e).localname for e in fetched] == [
            "ServerId",
            "Status",
            "ApplicationData",
        ]
        assert t(fetched, f"{{{A}}}ServerId") == seen[1]
        asked = t(fetch_col, f".//{{{ns.AIRSYNCBASE}}}BodyPreference/{{{ns.AIRSYNCBASE}}}Type")
        body_type = t(fetched, f".//{{{ns.AIRSYNCBASE}}}Body/{{{ns.AIRSYNCBASE}}}Type")
        assert body_type == asked, (asked, body_type)
        if asked == "4":  # MIME: the message itself, headers first
            data = t(fetched, f".//{{{ns.AIRSYNCBASE}}}Body/{{{ns.AIRSYNCBASE}}}Data") or ""
            assert "Subject: device replay" in data, data[:300]
        key = t(got, f"{{{A}}}SyncKey") or key
    # GetAttachment (12.1 query command, empty body), as the Nexus 4 fetched attachments.
    fetch = next((c for c in capture if c.command == "GetAttachment"), None)
    if fetch is not None and dev.version.startswith("12"):
        assert references, "no FileReference in the Sync answer"
        r = dev.raw("GetAttachment", {"AttachmentName": references[0]})
        assert r.status_code == 200, r.status_code
        assert r.content.startswith(b"GIF89a"), r.content[:40]
        assert r.headers["Content-Type"].startswith("image/gif"), r.headers
    # Ping: the device's own Ping (HeartbeatInterval kept), on our Inbox, after a new mail
    # arrived; the change is there already, so it answers at once with Status 2.
    # GetItemEstimate in the form of the device's version (the corpus has none): 12.1 puts
    # Class and FilterType in the Collection, 14.0+ Options (MS-ASCMD 2.2.3.67).
    local_services.deliver(fresh_user, message(fresh_user, 99))
    G = ns.GETITEMESTIMATE
    gie = etree.Element(f"{{{G}}}GetItemEstimate")
    col = etree.SubElement(etree.SubElement(gie, f"{{{G}}}Collections"), f"{{{G}}}Collection")
    filter_type = t(template, f".//{{{A}}}FilterType")
    if dev.version.startswith("12"):
        etree.SubElement(col, f"{{{G}}}Class").text = "Email"
        etree.SubElement(col, f"{{{G}}}CollectionId").text = inbox
        if filter_type:
            etree.SubElement(col, f"{{{A}}}FilterType").text = filter_type
        etree.SubElement(col, f"{{{A}}}SyncKey").text = key
    else:
        etree.SubElement(col, f"{{{A}}}SyncKey").text = key
        etree.SubElement(col, f"{{{G}}}CollectionId").text = inbox
        if filter_type:
            options = etree.SubElement(col, f"{{{A}}}Options")
            etree.SubElement(options, f"{{{A}}}FilterType").text = filter_type
    answer = dev.post("GetItemEstimate", gie)
    assert answer is not None and t(answer, f".//{{{G}}}Status") == "1", answer
    assert t(answer, f".//{{{G}}}Estimate") == "1", etree.tostring(answer)
    ping = next((c for c in capture if c.command == "Ping" and c.body), None)
    if ping is None:
        return
    tree = ping.tree
    folders_el = tree.find(f"{{{ns.PING}}}Folders")
    assert folders_el is not None
    for folder in list(folders_el)[1:]:
        folders_el.remove(folder)
    folders_el[0].find(f"{{{ns.PING}}}Id").text = inbox  # type: ignore[union-attr]
    answer = dev.post("Ping", tree)
    assert answer is not None and t(answer, f"{{{ns.PING}}}Status") == "2"
    # Status, Folders/Folder as Exchange answered a Ping that found changes (2.2.3.134)
    exchange = decode(ping.response) if ping.response else None
    if exchange is not None and t(exchange, f"{{{ns.PING}}}Status") == "2":
        assert shape(answer, 3) == shape(exchange, 3)


#: single request bodies from other devices (opush's Java test data), sent as they are.
SINGLE_BODIES = sorted(
    str(p.relative_to(CORPUS))
    for p in CORPUS.glob("testdata-*/*-request.wbxml")
    if p.name.split("-")[1] in {"Settings", "Provision", "FolderSync", "Sync"}
)


@pytest.mark.parametrize("body_path", SINGLE_BODIES)
def test_single_device_body(server: OpushServer, fresh_user: str, body_path: str) -> None:
    """Nokia E71, Samsung Omnia (Windows Mobile), Windows Mobile 6.1, old iPhone bodies: a
    device whose body we do not fully understand gets a WBXML answer with a Status, not a 500."""
    command = body_path.split("/")[1].split("-")[1]
    sample = Captured(0, command, {"ms-asprotocolversion": "12.1"}, "", None, None)
    sample.query = (
        f"Cmd={command}&DeviceId=single{zlib.crc32(body_path.encode())}&DeviceType=SmartPhone"
    )
    dev = Device(server, fresh_user, sample)
    if command != "Provision":
        first = dev.post("Provision", provision_request())
        final = dev.post("Provision", provision_request(t(first, f".//{{{P}}}PolicyKey")))
        dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    answer = dev.post(command, (CORPUS / body_path).read_bytes())
    assert answer is not None
    status = answer.find(".//{*}Status")
    assert status is not None and status.text, etree.tostring(answer)
    if command == "Settings":
        assert status.text == "1", etree.tostring(answer)
    if command == "FolderSync":  # a key of Exchange's, unknown here: 9, resync from 0
        assert status.text == "9", etree.tostring(answer)


def test_wp8_contact_add_change_delete(
    server: OpushServer, local_services: LocalServices, fresh_user: str
) -> None:
    """Windows Phone 8 (14.0, base64 query, no User-Agent): its own Partial Syncs adding,
    changing and deleting a contact, with our keys and ids; each answered as Exchange did."""
    name = "wp8-exchange-contact-create-modify-delete"
    if not (CORPUS / name).is_dir():
        pytest.skip(f"capture absent: {name}")
    capture = read_capture(name)
    local_services.add_dav_user(fresh_user)  # the demo profile's address books: Radicale
    dev = Device(server, fresh_user, capture[0])
    first = dev.post("Provision", provision_request())
    final = dev.post("Provision", provision_request(t(first, f".//{{{P}}}PolicyKey")))
    dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    folders = dev.post("FolderSync", foldersync_request())
    assert folders is not None
    contacts = next(
        (
            t(add, f"{{{F}}}ServerId")
            for add in folders.iter(f"{{{F}}}Add")
            if t(add, f"{{{F}}}Type") == "9"
        ),
        None,
    )
    assert contacts is not None, etree.tostring(folders)
    start = etree.Element(f"{{{A}}}Sync")
    col = etree.SubElement(etree.SubElement(start, f"{{{A}}}Collections"), f"{{{A}}}Collection")
    etree.SubElement(col, f"{{{A}}}SyncKey").text = "0"
    etree.SubElement(col, f"{{{A}}}CollectionId").text = contacts
    answer = dev.post("Sync", start)
    key = t(answer, f".//{{{A}}}Collection/{{{A}}}SyncKey") or ""
    ids: dict[str, str] = {}  # Exchange's ServerId -> ours
    for c in capture:
        if c.command != "Sync" or not c.body or c.tree.find(f".//{{{A}}}Commands") is None:
            continue
        tree = c.tree
        tree.find(f".//{{{A}}}SyncKey").text = key  # type: ignore[union-attr]
        tree.find(f".//{{{A}}}CollectionId").text = contacts  # type: ignore[union-attr]
        for sid in tree.iter(f"{{{A}}}ServerId"):
            sid.text = ids[sid.text or ""]
        answer = dev.post("Sync", tree)
        assert answer is not None
        got = answer.find(f".//{{{A}}}Collection")
        assert got is not None and t(got, f"{{{A}}}Status") == "1", etree.tostring(answer)
        key = t(got, f"{{{A}}}SyncKey") or ""
        exchange = decode(c.response) if c.response else None
        if exchange is not None:
            theirs = exchange.find(f".//{{{A}}}Collection")
            assert theirs is not None
            assert shape(got, 3) == shape(theirs, 3), etree.tostring(answer)
            for add, their_add in zip(
                got.iter(f"{{{A}}}Add"), theirs.iter(f"{{{A}}}Add"), strict=True
            ):
                assert t(add, f"{{{A}}}Status") == "1"
                ids[t(their_add, f"{{{A}}}ServerId") or ""] = t(add, f"{{{A}}}ServerId") or ""
    assert ids, "the contact Add was not answered"


@pytest.mark.parametrize(
    "http_path",
    sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*-OPTIONS.http.txt")),
)
def test_device_options(server: OpushServer, http_path: str) -> None:
    """The OPTIONS a device sends first (its headers, unauthenticated as iOS does): the
    versions and commands Exchange advertised that the device may rely on are advertised."""
    lines = [
        x for x in (CORPUS / http_path).read_text("utf-8").splitlines() if not x.startswith("#")
    ]
    blank = lines.index("")
    request = dict(x.split(": ", 1) for x in lines[1:blank] if ": " in x)
    answer = dict(x.split(": ", 1) for x in lines[blank + 2 :] if ": " in x)
    headers = {
        k: v
        for k, v in request.items()
        if k.lower() not in {"host", "connection", "content-length"}
    }
    r = requests.options(
        server.url, headers=headers, auth=("alice@example.org", "secret"), timeout=10
    )
    assert r.status_code == 200, r.status_code
    ours_versions = set(r.headers["MS-ASProtocolVersions"].split(","))
    assert {"12.1", "14.0", "14.1", "16.1"} <= ours_versions, ours_versions
    ours_commands = set(r.headers["MS-ASProtocolCommands"].split(","))
    theirs_commands = set(answer.get("MS-ASProtocolCommands", "").split(",")) - {""}
    # GetHierarchy/CreateCollection/DeleteCollection/MoveCollection are 2.5-era commands
    legacy = {"GetHierarchy", "CreateCollection", "DeleteCollection", "MoveCollection"}
    assert theirs_commands - legacy - ours_commands == set(), theirs_commands - ours_commands
    assert "ValidateCert" in ours_commands


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
def test_ipad_sendmail(
    server: OpushServer, local_services: LocalServices, fresh_user: str, version: str
) -> None:
    """SendMail as iOS sends it (the corpus has none): at 12.1 the raw MIME with
    SaveInSent=T in the query (MS-ASCMD 2.2.1.17, MS-ASHTTP 2.2.1.1.1.2.4), at 14.0+ a
    ComposeMail WBXML document; success is an empty 200, and the copy lands in Sent."""
    name = "ios6-exchange-receive200Emails"
    if not (CORPUS / name).is_dir():
        pytest.skip(f"capture absent: {name}")
    sample = next(c for c in read_capture(name) if c.command == "Provision" and c.body)
    dev = Device(server, fresh_user, sample)
    dev.version = version
    first = dev.post("Provision", provision_request())
    final = dev.post("Provision", provision_request(t(first, f".//{{{P}}}PolicyKey")))
    dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    mime = message(fresh_user, 7)
    mime.replace_header("Subject", f"sent from iPad {version}")
    raw = mime.as_bytes(policy=mime.policy.clone(linesep="\r\n"))
    if version == "12.1":
        r = dev.raw("SendMail", {"SaveInSent": "T"}, raw, "message/rfc822")
        assert r.status_code == 200 and r.content == b"", (r.status_code, server.log_text()[-1500:])
    else:
        C = ns.COMPOSEMAIL
        tree = etree.Element(f"{{{C}}}SendMail")
        etree.SubElement(tree, f"{{{C}}}ClientId").text = f"ipad-{version}"
        etree.SubElement(tree, f"{{{C}}}SaveInSentItems")
        mime_el = etree.SubElement(tree, f"{{{C}}}Mime")
        set_opaque(mime_el, raw)
        assert dev.post("SendMail", tree) is None
    with local_services.imap(fresh_user) as imap:
        imap.select("Sent")
        _, found = imap.search(None, "SUBJECT", f'"sent from iPad {version}"')
        assert found[0].split(), "no copy in Sent"


def _synced_inbox(dev: Device) -> tuple[str, str]:
    """Provisioned, FolderSync'd and the Inbox synced once: (inbox id, its SyncKey)."""
    first = dev.post("Provision", provision_request())
    final = dev.post("Provision", provision_request(t(first, f".//{{{P}}}PolicyKey")))
    dev.policy_key = t(final, f".//{{{P}}}PolicyKey")
    folders = dev.post("FolderSync", foldersync_request())
    assert folders is not None
    inbox = next(
        t(add, f"{{{F}}}ServerId") or ""
        for add in folders.iter(f"{{{F}}}Add")
        if t(add, f"{{{F}}}Type") == "2"
    )
    key = "0"
    for _ in range(2):
        root = etree.Element(f"{{{A}}}Sync")
        col = etree.SubElement(etree.SubElement(root, f"{{{A}}}Collections"), f"{{{A}}}Collection")
        etree.SubElement(col, f"{{{A}}}SyncKey").text = key
        etree.SubElement(col, f"{{{A}}}CollectionId").text = inbox
        answer = dev.post("Sync", root)
        key = t(answer, f".//{{{A}}}Collection/{{{A}}}SyncKey") or key
    return inbox, key


@pytest.mark.parametrize("form", ["empty-ios-14.1", "partial-wp8-14.0"])
def test_cached_sync_requests(server: OpushServer, fresh_user: str, form: str) -> None:
    """iOS (14.0+) follows an empty Sync response with an empty Sync request; Windows Phone 8
    puts <Partial/> in every Sync (3 of 3 in the wp8 capture).  Both repeat a request the
    server has seen, so they get a normal answer, not 13 (which makes the device resend)."""
    name = (
        "wp8-exchange-contact-create-modify-delete"
        if "wp8" in form
        else ("ios6-exchange-deleteAMovedOccurrence")
    )
    if not (CORPUS / name).is_dir():
        pytest.skip(f"capture absent: {name}")
    capture = read_capture(name)
    dev = Device(server, fresh_user, next(c for c in capture if c.body))
    inbox, key = _synced_inbox(dev)
    if "empty" in form:
        answer = dev.post("Sync", b"")
    else:
        tree = next(c.tree for c in capture if c.command == "Sync" and c.body)
        col = tree.find(f".//{{{A}}}Collection")
        assert col is not None and tree.find(f"{{{A}}}Partial") is not None
        for cmds in col.findall(f"{{{A}}}Commands"):
            col.remove(cmds)
        col.find(f"{{{A}}}SyncKey").text = key  # type: ignore[union-attr]
        col.find(f"{{{A}}}CollectionId").text = inbox  # type: ignore[union-attr]
        answer = dev.post("Sync", tree)
    if answer is not None:
        assert t(answer, f"{{{A}}}Status") is None, etree.tostring(answer)
        assert t(answer, f".//{{{A}}}Collection/{{{A}}}Status") == "1", etree.tostring(answer)
