"""In-memory doubles for the sync engine's unit tests (every Deferred has already fired).

- `MemoryStateStore`: the sync-state part of ``StateStore`` with the same current/previous
  key rule as the real stores.
- `FakeMailStore`: one user's IMAP mailbox with UIDVALIDITY, UIDNEXT, MODSEQ, flags and
  expunges; ``changes_since`` behaves like the IMAP store in ``mode`` "qresync" (modseq +
  vanished), "condstore" (modseq, caller passes known uids) or "diff" (no CONDSTORE: caller
  passes the flag snapshot).  ``fail_next`` makes the next calls raise
  MailBackendUnavailable (the server dropped).
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed

from opush.backends.interfaces import (
    BodyPart,
    ChangeTrackingUnsupported,
    FolderChanges,
    FolderStatus,
    MailBackendUnavailable,
    MailboxNotFound,
    MessageFlags,
    MessageNotFound,
    MessageSummary,
    SyncPoint,
)
from opush.storage.interfaces import (
    Collection,
    FolderKind,
    FolderRef,
    MappingKind,
    SyncState,
)

# --------------------------------------------------------------------------- state store


@attrs.define
class MemoryStateStore:
    collections: dict[tuple[str, str, int], Collection] = attrs.field(factory=dict)
    states: dict[tuple[str, str, int], dict[str, SyncState]] = attrs.field(factory=dict)
    current: dict[tuple[str, str, int], str] = attrs.field(factory=dict)
    mappings: dict[tuple[str, str, int, MappingKind, str], str] = attrs.field(factory=dict)
    puts: int = 0

    def add_collection(
        self, user: str, device_id: str, collection_id: int, folder: str, folder_type: int = 12
    ) -> None:
        ref = FolderRef(FolderKind.MAIL, folder, folder, folder_type)
        self.collections[(user, device_id, collection_id)] = Collection(collection_id, ref)

    def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[Collection | None]:
        return succeed(self.collections.get((user, device_id, collection_id)))

    def get_sync_state(
        self, user: str, device_id: str, collection_id: int, sync_key: str
    ) -> Deferred[SyncState | None]:
        return succeed(self.states.get((user, device_id, collection_id), {}).get(sync_key))

    def current_sync_state(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[SyncState | None]:
        p = (user, device_id, collection_id)
        key = self.current.get(p)
        return succeed(None if key is None else self.states[p].get(key))

    def put_sync_state(
        self, user: str, device_id: str, collection_id: int, state: SyncState
    ) -> Deferred[None]:
        p = (user, device_id, collection_id)
        kept = self.states.get(p, {})
        keep = {state.sync_key, state.parent_key}
        self.states[p] = {k: v for k, v in kept.items() if k in keep}
        self.states[p][state.sync_key] = state
        self.current[p] = state.sync_key
        self.puts += 1
        return succeed(None)

    def get_mapping(
        self, user: str, device_id: str, collection_id: int, kind: MappingKind, key: str
    ) -> Deferred[str | None]:
        return succeed(self.mappings.get((user, device_id, collection_id, kind, key)))

    def put_mapping(
        self,
        user: str,
        device_id: str,
        collection_id: int,
        kind: MappingKind,
        key: str,
        value: str,
    ) -> Deferred[None]:
        self.mappings[(user, device_id, collection_id, kind, key)] = value
        return succeed(None)


# --------------------------------------------------------------------------- mailbox


@attrs.define
class FakeMessage:
    uid: int
    raw: bytes
    flags: set[str]
    modseq: int
    internaldate: datetime


def _bodypart(msg: Any, section: str) -> BodyPart:
    ctype = msg.get_content_type()
    maintype, _, subtype = ctype.partition("/")
    if msg.is_multipart() and maintype == "multipart":
        children = tuple(
            _bodypart(child, f"{section}.{i}" if section else str(i))
            for i, child in enumerate(msg.get_payload(), 1)
        )
        return BodyPart(section=section, type="multipart", subtype=subtype, children=children)
    payload = msg.get_payload(decode=False)
    size = len(payload.encode("utf-8", "surrogateescape")) if isinstance(payload, str) else 0
    return BodyPart(
        section=section or "1",
        type=maintype,
        subtype=subtype,
        params={k.lower(): v for k, v in msg.get_params(header="content-type")[1:]}
        if msg.get_params(header="content-type")
        else {},
        encoding=(msg.get("Content-Transfer-Encoding") or "7bit").lower(),
        size=size,
    )


def _section_bytes(raw: bytes, section: str) -> bytes:
    if section == "":
        return raw
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    node: Any = msg
    for n in section.split("."):
        if node.is_multipart():
            node = node.get_payload()[int(n) - 1]
        elif n != "1":
            raise MessageNotFound(section)
    payload = node.get_payload(decode=False)
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


@attrs.define
class FakeFolder:
    uidvalidity: int = 1
    uidnext: int = 1
    messages: dict[int, FakeMessage] = attrs.field(factory=dict)
    #: uid -> modseq of the expunge (for VANISHED (EARLIER)).
    expunged: dict[int, int] = attrs.field(factory=dict)


@attrs.define
class FakeMailStore:
    mode: str = "qresync"  # qresync | condstore | diff
    folders: dict[str, FakeFolder] = attrs.field(factory=dict)
    modseq: int = 1
    fail_next: int = 0
    calls: list[str] = attrs.field(factory=list)
    trash: str = "Trash"

    def folder(self, name: str) -> FakeFolder:
        return self.folders.setdefault(name, FakeFolder())

    def _tick(self) -> int:
        self.modseq += 1
        return self.modseq

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.fail_next:
            self.fail_next -= 1
            raise MailBackendUnavailable(f"connection lost during {call}")

    def _box(self, name: str) -> FakeFolder:
        if name not in self.folders:
            raise MailboxNotFound(name)
        return self.folders[name]

    # -- server-side actions (the "other" IMAP clients) --
    def deliver(
        self, folder: str, raw: bytes, flags: Iterable[str] = (), date: datetime | None = None
    ) -> int:
        f = self.folder(folder)
        uid = f.uidnext
        f.uidnext += 1
        f.messages[uid] = FakeMessage(
            uid, raw, set(flags), self._tick(), date or datetime(2026, 9, 21, 12, 0, tzinfo=UTC)
        )
        return uid

    def flag(
        self, folder: str, uid: int, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        m = self.folder(folder).messages[uid]
        m.flags |= set(add)
        m.flags -= set(remove)
        m.modseq = self._tick()

    def expunge(self, folder: str, uid: int) -> None:
        f = self.folder(folder)
        if f.messages.pop(uid, None) is not None:
            f.expunged[uid] = self._tick()

    def move_out(self, folder: str, uid: int, destination: str) -> int:
        m = self.folder(folder).messages[uid]
        self.expunge(folder, uid)
        return self.deliver(destination, m.raw, m.flags, m.internaldate)

    def reset_uidvalidity(self, folder: str) -> None:
        """The mailbox was recreated: new UIDVALIDITY, every message renumbered."""
        f = self.folder(folder)
        old = sorted(f.messages.values(), key=lambda m: m.uid)
        f.uidvalidity += 1
        f.messages = {}
        f.expunged = {}
        f.uidnext = 1
        for m in old:
            self.deliver(folder, m.raw, m.flags, m.internaldate)

    def view(self, folder: str) -> dict[int, tuple[bool, bool]]:
        return {
            uid: ("\\Seen" in m.flags, "\\Flagged" in m.flags)
            for uid, m in self.folder(folder).messages.items()
            if "\\Deleted" not in m.flags
        }

    # -- MailStore --
    async def capabilities(self) -> frozenset[str]:
        self._check("CAPABILITY")
        return frozenset(
            {"qresync": {"QRESYNC", "CONDSTORE"}, "condstore": {"CONDSTORE"}, "diff": set()}[
                self.mode
            ]
            | {"IMAP4REV1", "UIDPLUS"}
        )

    async def status(self, folder: str) -> FolderStatus:
        self._check("STATUS")
        f = self._box(folder)
        return FolderStatus(
            f.uidvalidity,
            f.uidnext,
            self.modseq if self.mode != "diff" else None,
            len(f.messages),
            0,
        )

    async def changes_since(
        self,
        folder: str,
        point: SyncPoint | None,
        known: Mapping[int, frozenset[str]] | None = None,
    ) -> FolderChanges:
        self._check("CHANGES")
        f = self._box(folder)
        modseq = self.modseq if self.mode != "diff" else None
        now = SyncPoint(f.uidvalidity, f.uidnext, modseq)

        def listing(m: FakeMessage) -> MessageFlags:
            return MessageFlags(m.uid, frozenset(m.flags), m.modseq, m.internaldate)

        full = tuple(listing(m) for m in sorted(f.messages.values(), key=lambda m: m.uid))
        if point is None:
            return FolderChanges(now, full, frozenset(), method="full")
        if point.uidvalidity != f.uidvalidity:
            return FolderChanges(now, full, frozenset(), uidvalidity_changed=True, method="full")
        if self.mode == "diff":
            if known is None:
                raise ChangeTrackingUnsupported("diff needs known")
            changed = tuple(m for m in full if known.get(m.uid) != m.flags)
            return FolderChanges(
                now, changed, frozenset(set(known) - set(f.messages)), method="diff"
            )
        assert point.highestmodseq is not None
        changed = tuple(m for m in full if (m.modseq or 0) > point.highestmodseq)
        if self.mode == "qresync":
            gone = {
                u for u, ms in f.expunged.items() if ms > point.highestmodseq and u < point.uidnext
            }
            return FolderChanges(now, changed, frozenset(gone), method="qresync")
        if known is None:
            raise ChangeTrackingUnsupported("condstore needs known")
        gone = set(known) - set(f.messages)
        return FolderChanges(now, changed, frozenset(gone), method="condstore")

    async def fetch_summaries(
        self, folder: str, uids: Sequence[int], headers: bool = False
    ) -> list[MessageSummary]:
        self._check("FETCH")
        f = self._box(folder)
        out = []
        for uid in uids:
            m = f.messages.get(uid)
            if m is None:
                continue
            msg = email.message_from_bytes(m.raw, policy=email.policy.compat32)
            head = m.raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            out.append(
                MessageSummary(
                    uid=uid,
                    flags=frozenset(m.flags),
                    modseq=m.modseq,
                    internaldate=m.internaldate,
                    size=len(m.raw),
                    body=_bodypart(msg, ""),
                    headers=head if headers else None,
                )
            )
        return out

    async def fetch_body(
        self,
        folder: str,
        uid: int,
        section: str = "",
        partial: tuple[int, int] | None = None,
        max_size: int | None = None,
    ) -> bytes:
        self._check("FETCH BODY")
        m = self._box(folder).messages.get(uid)
        if m is None:
            raise MessageNotFound(str(uid))
        data = _section_bytes(m.raw, section)
        if partial is not None:
            data = data[partial[0] : partial[0] + partial[1]]
        return data

    async def set_flags(
        self, folder: str, uids: Sequence[int], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        self._check("STORE")
        f = self._box(folder)
        for uid in uids:
            if uid in f.messages:
                self.flag(folder, uid, add, remove)

    async def delete(self, folder: str, uids: Sequence[int], move_to_trash: bool = True) -> None:
        self._check("DELETE")
        for uid in uids:
            if uid not in self._box(folder).messages:
                continue
            if move_to_trash and folder != self.trash:
                self.move_out(folder, uid, self.trash)
            else:
                self.expunge(folder, uid)

    async def move(self, folder: str, uids: Sequence[int], destination: str) -> dict[int, int]:
        self._check("MOVE")
        moved: dict[int, int] = {}
        for uid in uids:
            if uid in self._box(folder).messages:
                moved[uid] = self.move_out(folder, uid, destination)
        return moved

    async def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int | None:
        self._check("APPEND")
        return self.deliver(folder, message, flags, date)


def text_message(subject: str, body: str = "hello world\n") -> bytes:
    return (
        f"From: Sender <sender@example.org>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}"
    ).encode()
