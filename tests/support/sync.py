"""Helpers for the Sync engine tests.

- `ImapProxy`: a TCP relay between opush and Dovecot that a test can cut (all connections
  dropped) or arm to drop the connection when opush sends a given IMAP command: "the IMAP
  server died in the middle of a Sync", without disturbing the shared Dovecot.
- `EasDevice`: a device speaking raw Sync/GetItemEstimate trees (our encoder) at any
  protocol version, provisioned with pyactivesync; blocking (call it from a thread).
- `DeviceView`: what a device holds after applying Sync responses (ServerId -> properties),
  to compare with the mailbox.
- `append_messages`: fast bulk load over IMAP APPEND.
"""

from __future__ import annotations

import imaplib
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import requests
from lxml import etree
from pyactivesync import Client
from twisted.internet import protocol
from twisted.internet.interfaces import IListeningPort

from opush.wbxml import E, decode, encode, ns

EAS = "/Microsoft-Server-ActiveSync"
A = ns.AIRSYNC
NS = {"a": "AirSync:", "e": "Email:", "b": "AirSyncBase:", "g": "GetItemEstimate:"}


# --------------------------------------------------------------------------- IMAP proxy


class _Relay(protocol.Protocol):
    peer: _Relay | None = None
    proxy: ImapProxy
    client_side = False

    def dataReceived(self, data: bytes) -> None:
        if self.client_side and self.proxy.trigger is not None and self.proxy.trigger in data:
            self.proxy.trigger = None
            self.proxy.tripped += 1
            self.proxy.refuse = self.proxy.down_after_trip
            self.proxy.cut()
            return
        if self.peer is not None:
            self.peer.transport.write(data)
        else:
            self.proxy.buffers.setdefault(id(self), []).append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.proxy.live.discard(self)
        if self.peer is not None:
            self.peer.transport.loseConnection()
            self.peer.peer = None
            self.peer = None


class _ServerSide(_Relay):
    def connectionMade(self) -> None:
        client = self.factory_client  # type: ignore[attr-defined]
        self.peer = client
        client.peer = self
        self.proxy.live.add(self)
        for chunk in self.proxy.buffers.pop(id(client), []):
            self.transport.write(chunk)
        client.transport.resumeProducing()


class _ClientSide(_Relay):
    client_side = True

    def connectionMade(self) -> None:
        self.proxy.live.add(self)
        if self.proxy.refuse:
            self.transport.loseConnection()
            return
        self.transport.pauseProducing()
        factory = protocol.ClientFactory()
        proxy = self.proxy

        def build(addr: Any) -> _ServerSide:
            p = _ServerSide()
            p.proxy = proxy
            p.factory_client = self  # type: ignore[attr-defined]
            return p

        factory.buildProtocol = build  # type: ignore[method-assign]
        factory.clientConnectionFailed = lambda c, r: self.transport.loseConnection()  # type: ignore[method-assign]
        proxy.reactor.connectTCP(proxy.target[0], proxy.target[1], factory)


@attrs.define(eq=False)
class ImapProxy:
    reactor: Any
    target: tuple[str, int]
    port: IListeningPort | None = None
    live: set[_Relay] = attrs.field(factory=set)
    buffers: dict[int, list[bytes]] = attrs.field(factory=dict)
    #: Drop every connection when the client side sends bytes containing this.
    trigger: bytes | None = None
    tripped: int = 0
    #: Refuse new connections (the server is down) ...
    refuse: bool = False
    #: ... from the moment the trigger trips (else a reconnect would succeed at once).
    down_after_trip: bool = True

    def start(self) -> int:
        factory = protocol.Factory()

        def build(addr: Any) -> _ClientSide:
            p = _ClientSide()
            p.proxy = self
            return p

        factory.buildProtocol = build  # type: ignore[method-assign]
        self.port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        return int(self.port.getHost().port)

    def cut(self) -> None:
        """Drop every relayed connection at once (the server "crashed")."""
        for relay in list(self.live):
            relay.transport.abortConnection()
        self.live.clear()

    async def stop(self) -> None:
        self.cut()
        if self.port is not None:
            await self.port.stopListening()


# --------------------------------------------------------------------------- device


def q(tag: str, namespace: str = A) -> str:
    return f"{{{namespace}}}{tag}"


def child_text(el: etree._Element | None, tag: str, namespace: str = A) -> str | None:
    if el is None:
        return None
    found = el.find(q(tag, namespace))
    return None if found is None else (found.text or "")


@attrs.define
class SyncAnswer:
    """One collection of a Sync response."""

    root: etree._Element | None
    collection: etree._Element | None
    http_status: int = 200
    raw: bytes = b""

    @property
    def empty(self) -> bool:
        """MS-ASCMD 2.2.1.21.2 empty Sync response: nothing new, the SyncKey stays."""
        return (
            self.http_status == 200
            and self.root is None
            and self.collection is None
            and not self.raw
        )

    @property
    def status(self) -> int | None:
        if self.empty:
            return 1
        if self.collection is not None:
            return int(child_text(self.collection, "Status") or 0)
        if self.root is not None:
            text = child_text(self.root, "Status")
            return int(text) if text else None
        return None

    @property
    def sync_key(self) -> str | None:
        return child_text(self.collection, "SyncKey")

    @property
    def more(self) -> bool:
        return self.collection is not None and self.collection.find(q("MoreAvailable")) is not None

    def commands(self) -> list[etree._Element]:
        if self.collection is None:
            return []
        cmds = self.collection.find(q("Commands"))
        return [] if cmds is None else list(cmds)

    def responses(self) -> list[etree._Element]:
        if self.collection is None:
            return []
        resp = self.collection.find(q("Responses"))
        return [] if resp is None else list(resp)

    def of(self, kind: str) -> list[etree._Element]:
        return [c for c in self.commands() if etree.QName(c).localname == kind]

    def server_ids(self, kind: str) -> list[str]:
        return [child_text(c, "ServerId") or "" for c in self.of(kind)]


class EasDevice:
    """A device posting our own WBXML trees at a chosen protocol version (blocking)."""

    def __init__(
        self, host: str, user: str, device_id: str, version: str = "14.1", password: str = "secret"
    ) -> None:
        self.client = Client(host, user, password, device_id=device_id, timeout=60)
        self.client._transport.base_url = f"http://{host}{EAS}"
        self.version = version
        self.user = user

    def provision(self) -> None:
        self.client.provision()

    def post(self, command: str, tree: etree._Element | None) -> requests.Response:
        t = self.client._transport
        query = {
            "Cmd": command,
            "User": self.user,
            "DeviceId": t.device_id,
            "DeviceType": "SyncTest",
        }
        headers = {
            "Content-Type": "application/vnd.ms-sync.wbxml",
            "MS-ASProtocolVersion": self.version,
        }
        if t.policy_key:
            headers["X-MS-PolicyKey"] = t.policy_key
        body = encode(tree, self.version) if tree is not None else b""
        return t.session.post(t.base_url, params=query, data=body, headers=headers, timeout=120)

    def sync_request(
        self,
        collection_id: int,
        sync_key: str,
        *,
        window: int | None = None,
        options: etree._Element | None = None,
        commands: Sequence[etree._Element] = (),
        get_changes: bool | None = None,
        deletes_as_moves: bool | None = None,
        item_class: str | None = None,
    ) -> etree._Element:
        col = E(A, "Collection")
        if item_class and self.version < "14.0":
            col.append(E(A, "Class", text=item_class))
        col.append(E(A, "SyncKey", text=sync_key))
        col.append(E(A, "CollectionId", text=collection_id))
        if deletes_as_moves is not None:
            col.append(E(A, "DeletesAsMoves", text=1 if deletes_as_moves else 0))
        if get_changes is not None:
            col.append(E(A, "GetChanges", text=1 if get_changes else 0))
        if window is not None:
            col.append(E(A, "WindowSize", text=window))
        if options is not None:
            col.append(options)
        if commands:
            col.append(E(A, "Commands", *commands))
        return E(A, "Sync", E(A, "Collections", col))

    def sync(self, collection_id: int, sync_key: str, **kw: Any) -> SyncAnswer:
        return self.send_sync(self.sync_request(collection_id, sync_key, **kw))

    def send_sync(self, tree: etree._Element) -> SyncAnswer:
        response = self.post("Sync", tree)
        if response.status_code != 200 or not response.content:
            return SyncAnswer(None, None, response.status_code, response.content)
        root = decode(response.content)
        col = root.find(f"{q('Collections')}/{q('Collection')}")
        return SyncAnswer(root, col, 200, response.content)

    def estimate(
        self, collection_id: int, sync_key: str, filter_type: int | None = None
    ) -> tuple[int, int | None]:
        g = ns.GETITEMESTIMATE
        col = E(g, "Collection")
        if self.version < "14.0":
            col.append(E(g, "Class", text="Email"))
            col.append(E(A, "SyncKey", text=sync_key))
            col.append(E(g, "CollectionId", text=collection_id))
            if filter_type is not None:
                col.append(E(A, "FilterType", text=filter_type))
        else:
            col.append(E(A, "SyncKey", text=sync_key))
            col.append(E(g, "CollectionId", text=collection_id))
            if filter_type is not None:
                col.append(E(A, "Options", E(A, "FilterType", text=filter_type)))
        tree = E(g, "GetItemEstimate", E(g, "Collections", col))
        response = self.post("GetItemEstimate", tree)
        response.raise_for_status()
        root = decode(response.content)
        status = int(root.findtext(f".//{q('Status', g)}") or 0)
        est = root.findtext(f".//{q('Estimate', g)}")
        return status, int(est) if est is not None else None

    def close(self) -> None:
        self.client.close()


def body_options(
    truncation: int | None = 500, body_type: int = 1, filter_type: int | None = None
) -> etree._Element:
    b = ns.AIRSYNCBASE
    opt = E(A, "Options")
    if filter_type is not None:
        opt.append(E(A, "FilterType", text=filter_type))
    pref = E(b, "BodyPreference", E(b, "Type", text=body_type))
    if truncation is not None:
        pref.append(E(b, "TruncationSize", text=truncation))
    opt.append(pref)
    return opt


def change_command(server_id: str, *props: etree._Element) -> etree._Element:
    return E(A, "Change", E(A, "ServerId", text=server_id), E(A, "ApplicationData", *props))


def delete_command(server_id: str) -> etree._Element:
    return E(A, "Delete", E(A, "ServerId", text=server_id))


def fetch_command(server_id: str) -> etree._Element:
    return E(A, "Fetch", E(A, "ServerId", text=server_id))


def read_prop(read: bool) -> etree._Element:
    return E(ns.EMAIL, "Read", text=1 if read else 0)


def flag_prop(flagged: bool) -> etree._Element:
    if not flagged:
        return E(ns.EMAIL, "Flag")
    return E(ns.EMAIL, "Flag", E(ns.EMAIL, "Status", text=2), E(ns.EMAIL, "FlagType", text="x"))


# --------------------------------------------------------------------------- device view


@attrs.define
class DeviceView:
    """ServerId -> (read, flagged, subject), as a device keeps it from Sync answers."""

    items: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    duplicates: list[str] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    def apply(self, answer: SyncAnswer) -> None:
        for cmd in answer.commands():
            kind = etree.QName(cmd).localname
            sid = child_text(cmd, "ServerId") or ""
            if kind == "Add":
                if sid in self.items:
                    self.duplicates.append(sid)
                self.items[sid] = _props(cmd)
            elif kind == "Change":
                if sid not in self.items:
                    self.problems.append(f"Change of unknown {sid}")
                    continue
                self.items[sid].update(_props(cmd))
            elif kind in ("Delete", "SoftDelete"):
                if sid not in self.items:
                    self.problems.append(f"{kind} of unknown {sid}")
                self.items.pop(sid, None)

    def state(self) -> dict[str, tuple[bool, bool]]:
        return {
            sid: (p.get("read", False), p.get("flagged", False)) for sid, p in self.items.items()
        }


def _props(cmd: etree._Element) -> dict[str, Any]:
    data = cmd.find(q("ApplicationData"))
    out: dict[str, Any] = {}
    if data is None:
        return out
    read = data.findtext(q("Read", ns.EMAIL))
    if read is not None:
        out["read"] = read == "1"
    flag = data.find(q("Flag", ns.EMAIL))
    if flag is not None:
        out["flagged"] = flag.findtext(q("Status", ns.EMAIL)) == "2"
    subject = data.findtext(q("Subject", ns.EMAIL))
    if subject is not None:
        out["subject"] = subject
    return out


# --------------------------------------------------------------------------- mailbox


def make_message(
    to: str, subject: str, body: str = "hello\n", date: datetime | None = None
) -> bytes:
    """A plain-text RFC 5322 message (built by hand: the email package is slow for bulk)."""
    from email.utils import format_datetime

    when = format_datetime(date or datetime.now(UTC))
    text = body.replace("\r\n", "\n").replace("\n", "\r\n")
    return (
        f"From: Sender <sender@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {when}\r\nMessage-ID: <{uuid.uuid4().hex}@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        f"{text}"
    ).encode()


def append_messages(
    client: imaplib.IMAP4,
    folder: str,
    messages: Iterable[bytes],
    flags: str = "",
    date: datetime | None = None,
) -> None:
    """APPEND each message (Dovecot on localhost: a few thousand per second)."""
    when = imaplib.Time2Internaldate(time.mktime((date or datetime.now(UTC)).timetuple()))
    for m in messages:
        typ, data = client.append(f'"{folder}"', f"({flags})" if flags else None, when, m)
        if typ != "OK":
            raise RuntimeError(f"APPEND failed: {data!r}")


def mailbox_state(client: imaplib.IMAP4, folder: str) -> dict[int, tuple[bool, bool]]:
    """uid -> (seen, flagged) of the undeleted messages."""
    client.select(f'"{folder}"', readonly=True)
    _, data = client.uid("FETCH", "1:*", "(FLAGS)")
    out: dict[int, tuple[bool, bool]] = {}
    for line in data or []:
        if not isinstance(line, bytes) or b"UID" not in line:
            continue
        text = line.decode()
        uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
        flags = text.split("FLAGS (", 1)[1].split(")", 1)[0] if "FLAGS (" in text else ""
        if "\\Deleted" in flags:
            continue
        out[uid] = ("\\Seen" in flags, "\\Flagged" in flags)
    return out


def as_view(
    collection_id: int, state: Mapping[int, tuple[bool, bool]]
) -> dict[str, tuple[bool, bool]]:
    return {f"{collection_id}:{uid}": v for uid, v in state.items()}


def multiappend(
    host: str,
    port: int,
    user: str,
    folder: str,
    messages: Iterable[bytes],
    *,
    password: str = "secret",
    batch: int = 500,
    flags: str = "",
) -> int:
    """Bulk load: MULTIAPPEND (RFC 3502) with non-synchronizing literals (RFC 7888), a few
    hundred messages per command; ~50x faster than one imaplib APPEND each."""
    import socket

    sock = socket.create_connection((host, port), timeout=120)
    f = sock.makefile("rb")
    tag = 0

    def command(data: bytes) -> None:
        nonlocal tag
        tag += 1
        t = f"b{tag}".encode()
        sock.sendall(t + b" " + data + b"\r\n")
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("IMAP connection closed")
            if line.startswith(t + b" "):
                if not line.startswith(t + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return

    try:
        f.readline()  # greeting
        command(f'LOGIN "{user}" "{password}"'.encode())
        count = 0
        chunk: list[bytes] = []
        mailbox = f'"{folder}"'.encode()

        def flush() -> None:
            if not chunk:
                return
            parts = [b"APPEND " + mailbox]
            for m in chunk:
                parts.append(b" (" + flags.encode() + b") {" + str(len(m)).encode() + b"+}\r\n" + m)
            command(b"".join(parts))
            chunk.clear()

        for m in messages:
            chunk.append(m)
            count += 1
            if len(chunk) >= batch:
                flush()
        flush()
        command(b"LOGOUT")
        return count
    finally:
        sock.close()
