"""The sync engine's view of one IMAP folder: `MailItemSource` (an ``opush.sync.ItemSource``).

Item ids are IMAP UIDs (as strings); ServerId = ``collectionId:uid``.

Change detection (``changes``) goes through ``MailStore.changes_since`` and picks the cheapest
way the server allows, decided once at the first listing from CAPABILITY and kept in the
cursor (RFC 7162):

- ``qresync``: the cursor is UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ only; nothing changed = one
  STATUS; changes = ``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)``.  Size-independent.
- ``condstore`` (no QRESYNC): the cursor also keeps the UID set (ranges) to find expunges.
- ``diff`` (neither): the cursor keeps a flag snapshot (UIDs grouped by flag set, as ranges),
  diffed against ``UID FETCH 1:* FLAGS``; the UIDNEXT check makes new mail cheap to spot.

Messages flagged ``\\Deleted`` (imap.expungePolicy NEVER) count as gone.

Rendering (``render``) is the content converter's fast path: one ``UID FETCH`` of ENVELOPE,
BODYSTRUCTURE and the header for the window, then one ``UID FETCH`` per distinct fetch plan
of the first bytes of the text parts (``opush.content.email.fetch_plan``); the message is
never downloaded whole unless MIME was asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import (
    BodyPart,
    MailError,
    MailStore,
    MessageFlags,
    MessageNotFound,
    MessageSummary,
    SyncPoint,
)
from opush.content.email import (
    EmailOptions,
    FlagDetails,
    MailFlags,
    MessageRef,
    PartialMessage,
    PartInfo,
    email_application_data,
    fetch_plan,
    parse_options,
)
from opush.content.email.drafts import Draft, build_draft, is_draft_content
from opush.content.email.filereference import file_reference
from opush.content.email.headers import decode_words
from opush.log import logger, watch
from opush.sync.ids import IdSet
from opush.sync.interfaces import (
    ClientChangeResult,
    Json,
    RenderRequest,
    SourceChanges,
    SourceItem,
)
from opush.wbxml import ns

log = logger("opush.backends.mailsource")

EMAIL = ns.EMAIL
AIRSYNCBASE = ns.AIRSYNCBASE

# Sync per-command statuses (MS-ASCMD 2.2.3.177.17).
OK = 1
CONVERSION_ERROR = 6
NOT_FOUND = 8

#: IMAP flags that are not categories.
_NOT_CATEGORIES = {
    "$forwarded",
    "$mdnsent",
    "$junk",
    "$notjunk",
    "junk",
    "nonjunk",
    "notjunk",
    "$phishing",
    "$submitpending",
    "$submitted",
}


def categories_of(flags: Iterable[str]) -> list[str]:
    """IMAP keywords shown to the device as Categories (MS-ASEMAIL 2.2.2.14)."""
    return sorted(f for f in flags if not f.startswith("\\") and f.lower() not in _NOT_CATEGORIES)


def _local(el: _Element) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(el: _Element, name: str) -> _Element | None:
    for c in el:
        if _local(c) == name:
            return c
    return None


def email_options(options: Sequence[_Element]) -> EmailOptions:
    """The Email Options among a collection's Options (14.0+ may send one per Class)."""
    for opt in options:
        cls = _child(opt, "Class")
        if cls is None or (cls.text or "").strip() in ("Email", ""):
            return parse_options(opt)
    return parse_options(None)


# --------------------------------------------------------------------------- structure


def parts_from_bodypart(root: BodyPart | None) -> list[PartInfo]:
    """Leaves of the IMAP BODYSTRUCTURE (``BodyPart`` tree) as the converter's PartInfo.

    A message/rfc822 attachment is one leaf (the converter does not look inside)."""
    out: list[PartInfo] = []
    if root is None:
        return out

    def walk(node: BodyPart, related: bool, alternative: bool) -> None:
        if node.type == "multipart":
            for child in node.children:
                walk(child, related or node.subtype == "related", node.subtype == "alternative")
            return
        params = {k.lower(): decode_words(v).strip() for k, v in node.params.items()}
        disp = {k.lower(): decode_words(v).strip() for k, v in node.disposition_params.items()}
        filename = disp.get("filename") or params.get("name")
        subject = None
        if node.envelope is not None and node.envelope.subject:
            subject = decode_words(node.envelope.subject)
        cid = (node.id or "").strip().strip("<>").strip() or None
        out.append(
            PartInfo(
                path=node.section or "1",
                content_type=f"{node.type}/{node.subtype}",
                params=params,
                encoding=node.encoding or "7bit",
                size=node.size or 0,
                disposition=node.disposition,
                filename=filename.replace("/", "_").replace("\\", "_") if filename else None,
                content_id=cid,
                content_location=node.location,
                in_related=related,
                in_alternative=alternative,
                embedded_subject=subject,
            )
        )

    walk(root, False, False)
    return out


# --------------------------------------------------------------------------- flag details


class FlagDetailStore:
    """The Flag details (MS-ASEMAIL 2.2.2.35: FlagType, start/due dates, completion, reminder)
    devices set, which IMAP cannot hold: it keeps \\Flagged only.

    One record per user and folder in the state store's idempotence maps (device ``*``,
    collection 0, kind MAIL_FLAG, key = folder name), so every device of the user sees them,
    one read per rendered window.  An entry is bound to the message by UID and a fingerprint
    (INTERNALDATE and size), so a UIDVALIDITY reset cannot lend it to another message.  The
    record is rewritten at least weekly while used (the maps expire after 30 days)."""

    DEVICE = "*"
    COLLECTION = 0
    REFRESH = 7 * 86400
    LIMIT = 1000

    def __init__(self, state: Any, user: str, clock: Any = None) -> None:
        self.state = state
        self.user = user
        self.clock = clock

    def _now(self) -> float:
        import time

        return float(self.clock.seconds()) if self.clock is not None else time.time()

    async def _read(self, folder: str) -> dict[str, Any]:
        from opush.storage.interfaces import MappingKind

        raw = await self.state.get_mapping(
            self.user, self.DEVICE, self.COLLECTION, MappingKind.MAIL_FLAG, folder
        )
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    async def _write(self, folder: str, data: dict[str, Any]) -> None:
        from opush.storage.interfaces import MappingKind

        data["at"] = self._now()
        await self.state.put_mapping(
            self.user,
            self.DEVICE,
            self.COLLECTION,
            MappingKind.MAIL_FLAG,
            folder,
            json.dumps(data, separators=(",", ":")),
        )

    async def lookup(self, folder: str) -> dict[int, tuple[str, FlagDetails]]:
        """uid -> (fingerprint, details) for the folder."""
        data = await self._read(folder)
        entries = data.get("items")
        if not isinstance(entries, dict) or not entries:
            return {}
        if self._now() - float(data.get("at", 0)) > self.REFRESH:
            await self._write(folder, data)
        out: dict[int, tuple[str, FlagDetails]] = {}
        for uid, entry in entries.items():
            try:
                children = tuple((str(a), str(b), str(c)) for a, b, c in entry["children"])
                out[int(uid)] = (str(entry["fp"]), FlagDetails(int(entry["status"]), children))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    async def store(
        self, folder: str, uid: int, fingerprint: str, details: FlagDetails | None
    ) -> None:
        data = await self._read(folder)
        entries = data.get("items")
        if not isinstance(entries, dict):
            entries = {}
        entries.pop(str(uid), None)
        if details is not None:
            entries[str(uid)] = {
                "fp": fingerprint,
                "status": details.status,
                "children": [list(c) for c in details.children],
            }
        while len(entries) > self.LIMIT:  # the oldest entries go first
            entries.pop(next(iter(entries)))
        data["items"] = entries
        await self._write(folder, data)


def fingerprint(internaldate: datetime | None, size: int | None) -> str:
    return f"{internaldate.isoformat() if internaldate else '-'}/{size or 0}"


def _flag_details(flag: _Element) -> FlagDetails | None:
    """The device's Flag as details worth keeping: None for a cleared flag, or when it says
    no more than IMAP holds (Status only)."""
    status_el = _child(flag, "Status")
    status = (status_el.text or "").strip() if status_el is not None else ""
    if status not in ("1", "2"):
        return None
    children = tuple(
        (etree.QName(c).namespace or EMAIL, _local(c), (c.text or "").strip())
        for c in flag
        if _local(c) != "Status" and isinstance(c.tag, str)
    )
    return FlagDetails(int(status), children) if children else None


# --------------------------------------------------------------------------- cursor codec


def _flag_key(flags: Iterable[str]) -> str:
    return " ".join(sorted(flags))


def _encode_snapshot(snapshot: Mapping[int, frozenset[str]]) -> dict[str, list[str]]:
    groups: dict[str, IdSet] = {}
    for uid, flags in snapshot.items():
        groups.setdefault(_flag_key(flags), IdSet()).add(str(uid))
    return {k: v.encode() for k, v in groups.items()}


def _decode_snapshot(data: Mapping[str, list[str]]) -> dict[int, frozenset[str]]:
    out: dict[int, frozenset[str]] = {}
    for key, ranges in data.items():
        flags = frozenset(key.split()) if key else frozenset()
        for uid in IdSet.decode(ranges):
            out[int(uid)] = flags
    return out


def _deleted(m: MessageFlags) -> bool:
    return any(f.lower() == "\\deleted" for f in m.flags)


# --------------------------------------------------------------------------- the source


class Outbox(Protocol):
    """Where email2:Send drafts go: SMTP as the user, then the Sent Items folder."""

    @property
    def sent_folder(self) -> str: ...

    async def send(self, message: bytes) -> None: ...


class MailItemSource:
    """One IMAP folder as an ``ItemSource``.

    ``drafts``: this folder is the Drafts folder (16.x Add/Change of drafts, MS-ASCMD
    2.2.3.7.2).  ``user_addresses``: the user's addresses (ReceivedAsBcc).
    """

    item_class = "Email"
    #: Changes are exact (CONDSTORE/flag snapshot, the engine's own writes skipped): a Change
    #: pending for an item the device changes too is a real conflict (MS-ASCMD 2.2.3.34).
    exact_changes = True

    def __init__(
        self,
        store: MailStore,
        folder: str,
        *,
        drafts: bool = False,
        user_addresses: Sequence[str] = (),
        from_address: str | None = None,
        flag_details: FlagDetailStore | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.folder = folder
        self.flag_details = flag_details
        self.drafts = drafts
        self.user_addresses = tuple(user_addresses)
        self.from_address = from_address

    # ------------------------------------------------------------------ changes

    async def _mode(self) -> str:
        caps = await self.store.capabilities()
        if "QRESYNC" in caps:
            return "qresync"
        if "CONDSTORE" in caps:
            return "condstore"
        return "diff"

    async def changes(self, cursor: Json | None) -> SourceChanges:
        with watch("EMAIL"):
            if cursor is None:
                return await self._listing()
            return await self._since(cursor)

    async def _listing(self) -> SourceChanges:
        mode = await self._mode()
        fc = await self.store.changes_since(self.folder, None)
        live = [m for m in fc.changed if not _deleted(m)]
        cursor = self._cursor(mode, fc.point, {m.uid: m.flags for m in live})
        return SourceChanges(
            cursor=cursor,
            changed=tuple(SourceItem(str(m.uid), m.internaldate) for m in live),
            complete=True,
        )

    def _cursor(
        self, mode: str, point: SyncPoint, snapshot: Mapping[int, frozenset[str]]
    ) -> dict[str, Any]:
        cursor: dict[str, Any] = {
            "mode": mode,
            "uidvalidity": point.uidvalidity,
            "uidnext": point.uidnext,
            "modseq": point.highestmodseq,
        }
        if mode == "condstore":
            cursor["uids"] = IdSet(str(u) for u in snapshot).encode()
        elif mode == "diff":
            cursor["flags"] = _encode_snapshot(snapshot)
        return cursor

    async def _since(self, cursor: Json) -> SourceChanges:
        mode = str(cursor.get("mode") or "qresync")
        point = SyncPoint(
            uidvalidity=int(cursor["uidvalidity"]),
            uidnext=int(cursor["uidnext"]),
            highestmodseq=cursor.get("modseq"),
        )
        snapshot: dict[int, frozenset[str]] = {}
        known: Mapping[int, frozenset[str]] | None = None
        if mode == "condstore":
            snapshot = {int(u): frozenset() for u in IdSet.decode(cursor.get("uids"))}
            known = snapshot
        elif mode == "diff":
            snapshot = _decode_snapshot(cursor.get("flags") or {})
            known = snapshot
        fc = await self.store.changes_since(self.folder, point, known)
        if fc.uidvalidity_changed:
            return SourceChanges(cursor=dict(cursor), reset=True)
        gone = {str(u) for u in fc.vanished}
        changed: list[SourceItem] = []
        for m in fc.changed:
            if _deleted(m):
                gone.add(str(m.uid))
                snapshot.pop(m.uid, None)
                continue
            changed.append(SourceItem(str(m.uid), m.internaldate))
            if mode != "qresync":
                snapshot[m.uid] = m.flags if mode == "diff" else frozenset()
        for u in fc.vanished:
            snapshot.pop(u, None)
        if not changed and not gone and fc.point == point:
            return SourceChanges(cursor=dict(cursor))
        return SourceChanges(
            cursor=self._cursor(mode, fc.point, snapshot),
            changed=tuple(changed),
            gone=frozenset(gone),
        )

    # ------------------------------------------------------------------ rendering

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        uids = [int(i) for i in item_ids if i.isdigit()]
        if not uids:
            return {}
        options = email_options(request.options)
        with watch("EMAIL"):
            fetched = await fetch_for_render(
                self.store, self.folder, uids, options, request.version
            )
        known = await self.flag_details.lookup(self.folder) if self.flag_details else {}
        out: dict[str, list[_Element]] = {}
        for s, parts, texts in fetched:
            entry = known.get(s.uid)
            details = (
                entry[1]
                if entry is not None and entry[0] == fingerprint(s.internaldate, s.size)
                else None
            )
            if any(f.lower() == "\\deleted" for f in s.flags):
                continue
            message = PartialMessage(
                headers=s.headers or b"",
                parts=parts,
                size=s.size or 0,
                texts={k: v for k, v in texts.items() if k != ""},
                mime=texts.get(""),
            )
            out[str(s.uid)] = email_application_data(
                message,
                ref=MessageRef(str(request.collection_id), s.uid),
                flags=MailFlags.from_imap(s.flags),
                categories=categories_of(s.flags),
                internaldate=s.internaldate,
                options=options,
                version=request.version,
                user_addresses=self.user_addresses,
                flag_details=details,
            )
        return out

    # ------------------------------------------------------------------ client commands

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        uid = int(item_id)
        if self.drafts and request.version >= (16, 0) and is_draft_content(data):
            return await self._replace_draft(uid, data, request)
        add: set[str] = set()
        remove: set[str] = set()
        read = _child(data, "Read")
        if read is not None:
            (add if (read.text or "").strip() == "1" else remove).add("\\Seen")
        flag = _child(data, "Flag")
        if flag is not None:
            # MS-ASEMAIL 2.2.2.35 Flag: empty = cleared; Status 0 cleared, 1 complete,
            # 2 active.  IMAP keeps only "flagged"; the rest goes to FlagDetailStore.
            status = _child(flag, "Status")
            active = status is not None and (status.text or "").strip() == "2"
            (add if active else remove).add("\\Flagged")
        cats = _child(data, "Categories")
        current: list[Any] | None = None
        if cats is not None or (flag is not None and self.flag_details is not None):
            current = list(await self.store.fetch_summaries(self.folder, [uid]))
            if not current:
                return ClientChangeResult(NOT_FOUND)
        if flag is not None and self.flag_details is not None and current:
            await self.flag_details.store(
                self.folder,
                uid,
                fingerprint(current[0].internaldate, current[0].size),
                _flag_details(flag),
            )
        if cats is not None and current:
            wanted = {(c.text or "").strip() for c in cats if _local(c) == "Category" and c.text}
            valid = {c for c in wanted if _is_atom(c)}
            have = set(categories_of(current[0].flags))
            add |= valid - have
            remove |= have - valid
        try:
            await self.store.set_flags(self.folder, [uid], add=add, remove=remove)
        except MessageNotFound:
            return ClientChangeResult(NOT_FOUND)
        except MailError as e:
            log.warn("flag change of {uid} refused: {error}", uid=uid, error=e)
            return ClientChangeResult(CONVERSION_ERROR)
        return ClientChangeResult(OK)

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        # MS-ASCMD 2.2.3.7.2: mail Adds only in Drafts, from 16.0 on.
        if not (self.drafts and request.version >= (16, 0)):
            return ClientChangeResult(CONVERSION_ERROR)
        draft = build_draft(data, self.from_address)
        uid = await self._append_draft(draft.mime, data)
        if uid is None:
            return ClientChangeResult(CONVERSION_ERROR)
        return ClientChangeResult(OK, str(uid), self._references(request, uid, draft))

    async def send_item(self, item_id: str) -> bool:
        """email2:Send (MS-ASEMAIL 2.2.2.69) on a draft: submitted, then moved to Sent Items
        (True: the device gets its Delete from Drafts).  When SMTP fails it stays a draft,
        which is how the user sees it was not sent."""
        if self.outbox is None or not item_id.isdigit():
            return False
        uid = int(item_id)
        try:
            data = await self.store.fetch_body(self.folder, uid)
        except MessageNotFound:
            return False
        try:
            await self.outbox.send(data)
        except Exception as e:
            log.warn("draft {uid} not sent: {e}", uid=uid, e=e)
            return False
        try:
            await self.store.set_flags(self.folder, [uid], add={"\\Seen"}, remove={"\\Draft"})
            await self.store.move(self.folder, [uid], self.outbox.sent_folder)
        except MailError as e:
            log.warn("sent draft {uid} not filed in Sent: {e}", uid=uid, e=e)
            return False
        return True

    @staticmethod
    def _references(request: RenderRequest, uid: int, draft: Draft) -> tuple[tuple[str, str], ...]:
        ref = MessageRef(str(request.collection_id), uid)
        return tuple((cid, file_reference(ref, section)) for cid, section in draft.added)

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        uids = [int(i) for i in item_ids if i.isdigit()]
        if uids:
            await self.store.delete(self.folder, uids, move_to_trash=move_to_trash)

    # ------------------------------------------------------------------ drafts (16.x)

    async def _append_draft(self, message: bytes, data: _Element) -> int | None:
        flags = ["\\Draft"]
        read = _child(data, "Read")
        if read is None or (read.text or "").strip() == "1":
            flags.append("\\Seen")
        flag = _child(data, "Flag")
        status = _child(flag, "Status") if flag is not None else None
        if status is not None and (status.text or "").strip() == "2":
            flags.append("\\Flagged")
        try:
            return await self.store.append(
                self.folder, message, flags=flags, date=datetime.now(UTC)
            )
        except MailError as e:
            log.warn("draft APPEND refused: {error}", error=e)
            return None

    async def _replace_draft(
        self, uid: int, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        """A draft changes as a whole: APPEND the new version (the old one merged with what
        the Change carries), expunge the old one.  The engine keeps the device's ServerId
        pointing at the new uid (``CollectionState.aliases``)."""
        try:
            existing = await self.store.fetch_body(self.folder, uid)
        except MessageNotFound:
            return ClientChangeResult(NOT_FOUND)
        draft = build_draft(data, self.from_address, existing)
        new = await self._append_draft(draft.mime, data)
        if new is None:
            return ClientChangeResult(CONVERSION_ERROR)
        await self.store.delete(self.folder, [uid], move_to_trash=False)
        return ClientChangeResult(OK, str(new), self._references(request, new, draft))


def _is_atom(value: str) -> bool:
    specials = set('(){ %*"\\]')
    return bool(value) and all(0x20 < ord(c) < 0x7F and c not in specials for c in value)


# --------------------------------------------------------------------------- batched fetch

Rendered = tuple[MessageSummary, list[PartInfo], dict[str, bytes]]


def _speculative_size(options: EmailOptions, version: tuple[int, int]) -> int | None:
    """Bytes of section 1 the plan would ask for a plain 8bit text part: fetched in the same
    command as the structure, so a simple mail costs one round trip."""
    probe = PartInfo(path="1", content_type="text/plain", encoding="8bit", size=1 << 30)
    plan = fetch_plan([probe], options, version)
    size = plan.get("1", 0)
    return size if size else None


async def fetch_for_render(
    store: MailStore,
    folder: str,
    uids: Sequence[int],
    options: EmailOptions,
    version: tuple[int, int],
) -> list[Rendered]:
    """Summary, structure and the text sections ``fetch_plan`` wants, for a window of mails.

    On the IMAP store: one ``UID FETCH (FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE
    BODY.PEEK[HEADER.FIELDS (<the converter's fields>)] BODY.PEEK[1]<0.N>)`` for the window
    (no ENVELOPE: the converter reads the header), then one more per distinct plan only
    for mails whose text is elsewhere.
    Any other MailStore: fetch_summaries + fetch_body."""
    from opush.backends.imap.store import ImapMailStore

    out: list[Rendered] = []
    if isinstance(store, ImapMailStore):
        first = await _imap_window(store, folder, uids, _speculative_size(options, version))
    else:
        summaries = await store.fetch_summaries(folder, uids, headers=True)
        first = [(s, {}) for s in summaries]
    missing: dict[int, dict[str, int | None]] = {}
    staged: list[tuple[MessageSummary, list[PartInfo], dict[str, bytes]]] = []
    for summary, texts in first:
        parts = parts_from_bodypart(summary.body)
        plan = fetch_plan(parts, options, version)
        need: dict[str, int | None] = {}
        for section, size in plan.items():
            have = texts.get(section)
            if have is None:
                need[section] = size
                continue
            part = next((p for p in parts if p.path == section), None)
            complete = part is not None and len(have) >= part.size
            if size is None and not complete:
                need[section] = size
            elif size is not None and len(have) < size and not complete:
                need[section] = size
        if need:
            missing[summary.uid] = need
        staged.append((summary, parts, dict(texts)))
    more = await fetch_sections(store, folder, missing) if missing else {}
    for summary, parts, texts in staged:
        texts.update(more.get(summary.uid, {}))
        out.append((summary, parts, texts))
    return out


async def _imap_window(
    store: Any, folder: str, uids: Sequence[int], speculative: int | None
) -> list[tuple[MessageSummary, dict[str, bytes]]]:
    from opush.backends.imap import parser as p
    from opush.backends.imap.store import _chunks
    from opush.content.email.convert import SYNC_HEADER_FIELDS

    fields = " ".join(SYNC_HEADER_FIELDS).upper()
    items = f"(UID FLAGS INTERNALDATE RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS ({fields})]"
    if speculative:
        items += f" BODY.PEEK[1]<0.{speculative}>"
    request = (items + ")").encode()

    async def run(conn: Any) -> dict[int, dict[str, Any]]:
        await store._select(conn, folder)
        merged: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(uids):
            fetched, _ = await store._uid_fetch(conn, chunk, request)
            merged.update(fetched)
        return merged

    merged = cast(dict[int, dict[str, Any]], await store._with(run, idempotent=True))
    out: list[tuple[MessageSummary, dict[str, bytes]]] = []
    for uid in uids:
        item = merged.get(uid)
        if item is None or "BODYSTRUCTURE" not in item:
            continue
        header = next((v for k, v in item.items() if k.startswith("BODY[HEADER")), None)
        texts: dict[str, bytes] = {}
        first = item.get("BODY[1]")
        if isinstance(first, bytes):
            texts["1"] = first
        elif isinstance(first, str):
            texts["1"] = first.encode("utf-8", "surrogateescape")
        summary = MessageSummary(
            uid=uid,
            flags=p.flags(item.get("FLAGS")),
            internaldate=p.parse_internaldate(item["INTERNALDATE"])
            if "INTERNALDATE" in item
            else None,
            size=p.number(item["RFC822.SIZE"]) if "RFC822.SIZE" in item else None,
            body=p.parse_bodystructure(item["BODYSTRUCTURE"]),
            headers=header if isinstance(header, bytes) else None,
        )
        out.append((summary, texts))
    return out


async def fetch_sections(
    store: MailStore, folder: str, plans: Mapping[int, Mapping[str, int | None]]
) -> dict[int, dict[str, bytes]]:
    """``BODY.PEEK[<section>]<0.N>`` for many messages: one UID FETCH per distinct plan on
    the IMAP store, else one fetch_body each."""
    out: dict[int, dict[str, bytes]] = {}
    wanted = {uid: dict(plan) for uid, plan in plans.items() if plan}
    if not wanted:
        return out
    from opush.backends.imap.store import ImapMailStore

    if isinstance(store, ImapMailStore):
        return await _imap_batch(store, folder, wanted)
    for uid, plan in wanted.items():
        got: dict[str, bytes] = {}
        for section, size in plan.items():
            try:
                got[section] = await store.fetch_body(
                    folder, uid, section, partial=(0, size) if size is not None else None
                )
            except MessageNotFound:
                break
        out[uid] = got
    return out


async def _imap_batch(
    store: Any, folder: str, wanted: Mapping[int, Mapping[str, int | None]]
) -> dict[int, dict[str, bytes]]:
    """Grouped UID FETCH over one pooled session (uses the IMAP store's session helpers)."""
    from opush.backends.imap.store import _chunks

    groups: dict[tuple[tuple[str, int | None], ...], list[int]] = {}
    for uid, plan in wanted.items():
        groups.setdefault(tuple(sorted(plan.items(), key=lambda kv: kv[0])), []).append(uid)

    async def run(conn: Any) -> dict[int, dict[str, bytes]]:
        await store._select(conn, folder)
        out: dict[int, dict[str, bytes]] = {}
        for spec, uids in groups.items():
            items = ["UID"]
            for section, size in spec:
                item = f"BODY.PEEK[{section}]"
                if size is not None:
                    item += f"<0.{max(1, size)}>"
                items.append(item)
            request = ("(" + " ".join(items) + ")").encode()
            for chunk in _chunks(sorted(uids)):
                fetched, _ = await store._uid_fetch(conn, chunk, request)
                for uid, item_map in fetched.items():
                    got = out.setdefault(uid, {})
                    for section, _size in spec:
                        key = f"BODY[{section.upper()}]"
                        value = item_map.get(key)
                        if isinstance(value, bytes):
                            got[section] = value
                        elif isinstance(value, str):
                            got[section] = value.encode("utf-8", "surrogateescape")
                        elif key in item_map:
                            got[section] = b""
        return out

    return cast(dict[int, dict[str, bytes]], await store._with(run, idempotent=True))
