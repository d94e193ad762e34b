"""Search (MS-ASCMD 2.2.1.16): the Mailbox store over IMAP SEARCH, the GAL over LDAP.

Mailbox (2.2.3.178.3 Store, 2.2.3.142.2 Query): an ``And`` of ``airsync:Class`` (Email),
``airsync:CollectionId`` (none = every mail folder the device knows), ``FreeText`` (IMAP
TEXT: headers and body), ``GreaterThan``/``LessThan`` on ``email:DateReceived``; Options
``Range`` (default and maximum 100 results, 2.2.3.143.3), ``DeepTraversal`` (the subfolders
of CollectionId too), ``RebuildResults`` (we keep no result cache, so every search is rebuilt)
and the body options of ``opush.content.email.parse_options``.  Results are newest first; each
carries ``LongId`` = its ServerId ``collectionId:uid`` (usable in ItemOperations Fetch).
IMAP SEARCH SINCE/BEFORE work on whole days in the server's zone, so the day window is widened
by one day each side and the exact DateReceived bound is applied on INTERNALDATE.

GAL (2.2.3.142.2 Query is the text typed): ``opush.backends.ldap`` when ldap_conf.ini has a
URL; without a directory the store answers the spec's empty result (Status 1, no ``Result``,
2.2.3.155.3; a Mailbox search without match has one empty ``Result``, same section).
``Picture`` (14.1+): the directory's jpegPhoto per result, within MaxSize/MaxPictures
(``opush.commands.pictures``).

Statuses (2.2.3.177.13): Search Status 1 (or 3 for a request we cannot read); per Store
1 success, 2 invalid request, 3 server error (the directory failed), 8 query too complex
(``Or``, ``EqualTo`` or unknown conditions), 11 FolderSync required (unknown CollectionId).
A ``ConversationId`` condition (14.0+) finds the mails of one conversation
(``opush.commands.conversations``), in the given collection or in every mail folder.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import attrs
from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import Folder, MailboxNotFound, MessageSummary, SearchQuery
from opush.backends.ldap import DirectoryEntry, DirectoryUnavailable, directory_for
from opush.commands.context import CommandContext, CommandResult
from opush.commands.conversations import conversation_mails
from opush.commands.itemoperations import (
    MailItemId,
    collection_of,
    mail_folder,
    mail_properties,
)
from opush.commands.pictures import Pictures
from opush.content.email import parse_options
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.storage.interfaces import FolderKind
from opush.sync.sources import NOTES_TYPE
from opush.wbxml import E, ns, opaque

log = logger("opush.commands.search")

S = ns.SEARCH

SUCCESS = 1
INVALID_REQUEST = 2
SERVER_ERROR = 3
TOO_COMPLEX = 8
FOLDER_SYNC_REQUIRED = 11

MAX_RESULTS = 100  # Mailbox and GAL (MS-ASCMD 2.2.3.143.3)
#: Candidates whose INTERNALDATE is read to order and bound results, per folder (newest uids).
MAX_CANDIDATES = 2000


class _Invalid(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


def _q(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}"


def _local(el: _Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


def parse_range(text: str | None) -> tuple[int, int]:
    """ "m-n" -> (m, n) limited to MAX_RESULTS entries; default 0-99."""
    if text is None:
        return 0, MAX_RESULTS - 1
    start_s, sep, end_s = text.partition("-")
    if not sep or not start_s.strip().isdigit() or not end_s.strip().isdigit():
        raise _Invalid(INVALID_REQUEST, f"bad Range {text!r}")
    start, end = int(start_s), int(end_s)
    if start > end:
        raise _Invalid(INVALID_REQUEST, f"bad Range {text!r}")
    return start, min(end, start + MAX_RESULTS - 1)


def parse_eas_datetime(text: str) -> datetime:
    """MS-ASDTYPE 2.3 dateTime ("2020-01-01T00:00:00.000Z"), tolerant of the usual forms."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


@attrs.frozen
class MailboxQuery:
    collection_ids: tuple[str, ...] = ()
    free_text: str | None = None
    after: datetime | None = None  # DateReceived > after
    before: datetime | None = None  # DateReceived < before
    classes: tuple[str, ...] = ()
    #: 14.0+ ConversationId (MS-ASCMD 2.2.3.35.2): the mails of one conversation.
    conversation: bytes | None = None


def parse_mailbox_query(query: _Element) -> MailboxQuery:
    """The conditions of a Mailbox Query (MS-ASCMD 2.2.3.142.2); _Invalid when unusable."""
    collection_ids: list[str] = []
    classes: list[str] = []
    free_text: list[str] = []
    after: datetime | None = None
    before: datetime | None = None
    conversation: bytes | None = None

    def visit(el: _Element) -> None:
        nonlocal after, before, conversation
        for child in el:
            name = _local(child)
            if name == "And":
                visit(child)
            elif name == "Class":
                classes.append(_text(child) or "")
            elif name == "CollectionId":
                collection_ids.append(_text(child) or "")
            elif name == "FreeText":
                if _text(child):
                    free_text.append(_text(child) or "")
            elif name in ("GreaterThan", "LessThan"):
                prop = next((c for c in child if _local(c) != "Value"), None)
                value = _text(child.find(_q(S, "Value")))
                if prop is None or _local(prop) != "DateReceived" or value is None:
                    raise _Invalid(INVALID_REQUEST, f"{name} needs DateReceived and a Value")
                try:
                    when = parse_eas_datetime(value)
                except ValueError:
                    raise _Invalid(INVALID_REQUEST, f"bad date {value!r}") from None
                if name == "GreaterThan":
                    after = when if after is None else max(after, when)
                else:
                    before = when if before is None else min(before, when)
            elif name == "ConversationId":
                conversation = opaque(child)
                if not conversation:
                    raise _Invalid(INVALID_REQUEST, "empty ConversationId")
            elif name in ("Or", "EqualTo"):
                raise _Invalid(TOO_COMPLEX, f"{name} is not supported")
            else:
                raise _Invalid(INVALID_REQUEST, f"unexpected {name} in the query")

    visit(query)
    return MailboxQuery(
        collection_ids=tuple(collection_ids),
        free_text=" ".join(free_text) or None,
        after=after,
        before=before,
        classes=tuple(classes),
        conversation=conversation,
    )


def imap_query(query: MailboxQuery) -> SearchQuery:
    """Day-granular IMAP criteria that include every match (exact bounds are applied after)."""
    since: date | None = None
    until: date | None = None
    if query.after is not None:
        since = (query.after - timedelta(days=1)).date()
    if query.before is not None:
        until = (query.before + timedelta(days=2)).date()
    return SearchQuery(text=query.free_text, since=since, before=until)


def _descendants(folders: Sequence[Folder], parent: str) -> list[str]:
    prefixes = {f"{parent}{f.separator}" for f in folders if f.separator}
    return [f.name for f in folders if any(f.name.startswith(p) for p in prefixes)]


async def _search_folders(
    ctx: CommandContext, query: MailboxQuery, deep: bool
) -> list[tuple[str, str]]:
    """(collection id, IMAP folder) pairs to search."""
    if not query.collection_ids:
        collections = await ctx.runtime.state.list_collections(
            ctx.device.user, ctx.device.device_id
        )
        return [
            (str(c.collection_id), c.ref.backend_id)
            for c in collections
            if c.ref.kind is FolderKind.MAIL and c.ref.folder_type != NOTES_TYPE
        ]
    out: list[tuple[str, str]] = []
    for collection_id in query.collection_ids:
        folder = await mail_folder(ctx, collection_id)
        if folder is None:
            raise _Invalid(FOLDER_SYNC_REQUIRED, f"unknown collection {collection_id!r}")
        out.append((str(int(collection_id)), folder))
    if deep:
        listed = await ctx.mail_store().list_folders()
        seen = {f for _, f in out}
        for _, folder in list(out):
            for child in _descendants(listed, folder):
                if child in seen:
                    continue
                child_id = await collection_of(ctx, child)
                if child_id is not None:  # only folders the device can show
                    seen.add(child)
                    out.append((child_id, child))
    return out


@attrs.frozen
class _Hit:
    collection_id: str
    folder: str
    uid: int
    received: datetime | None


async def search_mailbox(ctx: CommandContext, query: MailboxQuery, deep: bool) -> list[_Hit]:
    """Every match, newest first."""
    if query.classes and not any(c.lower() == "email" for c in query.classes):
        return []  # only mail lives in IMAP (MS-ASCMD 2.2.3.27.4 Class)
    folders = await _search_folders(ctx, query, deep)
    if not folders:
        return []
    store = ctx.mail_store()
    if query.conversation is not None:
        mails = await conversation_mails(store, folders, query.conversation)
        return [
            _Hit(m.collection_id, m.folder, m.uid, m.received)
            for m in mails
            if (query.after is None or (m.received is not None and m.received > query.after))
            and (query.before is None or (m.received is not None and m.received < query.before))
        ]
    found = await store.search_folders([f for _, f in folders], imap_query(query))
    exact = query.after is not None or query.before is not None or len(folders) > 1
    hits: list[_Hit] = []
    for collection_id, folder in folders:
        uids = sorted(found.get(folder, ()), reverse=True)
        if not uids:
            continue
        if not exact:
            hits.extend(_Hit(collection_id, folder, uid, None) for uid in uids)
            continue
        try:
            summaries: list[MessageSummary] = await store.fetch_summaries(
                folder, uids[:MAX_CANDIDATES]
            )
        except MailboxNotFound:
            continue
        for s in summaries:
            received = s.internaldate.astimezone(UTC) if s.internaldate else None
            if received is not None:
                if query.after is not None and not received > query.after:
                    continue
                if query.before is not None and not received < query.before:
                    continue
            hits.append(_Hit(collection_id, folder, s.uid, received))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    hits.sort(key=lambda h: (h.received or epoch, h.uid), reverse=True)
    return hits


async def _mailbox_store(ctx: CommandContext, store_el: _Element, out: _Element) -> int:
    query_el = store_el.find(_q(S, "Query"))
    if query_el is None:
        raise _Invalid(INVALID_REQUEST, "Mailbox search without Query")
    query = parse_mailbox_query(query_el)
    options = store_el.find(_q(S, "Options"))
    start, end = parse_range(_text(options.find(_q(S, "Range"))) if options is not None else None)
    deep = options is not None and options.find(_q(S, "DeepTraversal")) is not None
    email_options = parse_options(options)
    hits = await search_mailbox(ctx, query, deep)
    page = hits[start : end + 1]
    store = ctx.mail_store()
    results: list[_Element] = []
    for hit in page:
        item = MailItemId(hit.collection_id, hit.uid)
        try:
            props = await mail_properties(ctx, store, hit.folder, item, email_options)
        except MailboxNotFound:
            props = None
        if props is None:
            continue  # gone since the SEARCH
        results.append(
            E(
                S,
                "Result",
                E(ns.AIRSYNC, "Class", text="Email"),
                E(S, "LongId", text=item.server_id),
                E(ns.AIRSYNC, "CollectionId", text=hit.collection_id),
                E(S, "Properties", *props),
            )
        )
    _finish(out, results, start, len(hits), mailbox=True)
    return SUCCESS


def _finish(out: _Element, results: list[_Element], start: int, total: int, mailbox: bool) -> None:
    if not results:
        # MS-ASCMD 2.2.3.155.3: no match is one empty Result for the mailbox, no Result at
        # all for the other stores.
        if mailbox:
            out.append(E(S, "Result"))
        out.append(E(S, "Total", text=total))
        return
    out.extend(results)
    out.append(E(S, "Range", text=f"{start}-{start + len(results) - 1}"))
    out.append(E(S, "Total", text=total))


def _sort_key(text: str) -> str:
    """Alphabetical as people read it: case and accents do not count ("Béa" < "Bob")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def gal_properties(entry: DirectoryEntry, pictures: Pictures | None) -> list[_Element]:
    g = ns.GAL
    fields = (
        ("DisplayName", entry.display_name or entry.email),
        ("Phone", entry.phone),
        ("Office", entry.office),
        ("Title", entry.title),
        ("Company", entry.company),
        ("Alias", entry.alias),
        ("FirstName", entry.first_name),
        ("LastName", entry.last_name),
        ("HomePhone", entry.home_phone),
        ("MobilePhone", entry.mobile_phone),
        ("EmailAddress", entry.email),
    )
    out = [E(g, tag, text=value) for tag, value in fields if value]
    if pictures is not None:
        out.append(pictures.element(g, entry.photo))
    return out


async def _gal_store(ctx: CommandContext, store_el: _Element, out: _Element) -> int:
    text = _text(store_el.find(_q(S, "Query")))
    if not text:
        raise _Invalid(INVALID_REQUEST, "GAL search without a query")
    options = store_el.find(_q(S, "Options"))
    start, end = parse_range(_text(options.find(_q(S, "Range"))) if options is not None else None)
    pictures = (
        Pictures.from_request(options.find(_q(S, "Picture")))
        if options is not None and ctx.version >= (14, 1)
        else None
    )
    directory = directory_for(ctx.runtime)
    entries: list[DirectoryEntry] = []
    if directory is not None:
        try:
            entries = await directory.search(ctx.user, text, photos=pictures is not None)
        except DirectoryUnavailable as e:
            log.warn("GAL search failed: {error}", error=e)
            return SERVER_ERROR
    entries.sort(key=lambda e: (_sort_key(e.display_name or e.email or ""), e.email or ""))
    page = entries[start : end + 1]
    results = [E(S, "Result", E(S, "Properties", *gal_properties(e, pictures))) for e in page]
    _finish(out, results, start, len(entries), mailbox=False)
    return SUCCESS


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q(S, "Search"):
        raise EasStatusError(SERVER_ERROR, message="Search without its root element")
    store_el = request.find(_q(S, "Store"))
    if store_el is None:
        raise EasStatusError(SERVER_ERROR, message="Search without Store")
    name = (_text(store_el.find(_q(S, "Name"))) or "").lower()
    out = E(S, "Store")
    status_el = E(S, "Status", text=SUCCESS)
    out.append(status_el)
    try:
        if name == "mailbox":
            status = await _mailbox_store(ctx, store_el, out)
        elif name == "gal":
            status = await _gal_store(ctx, store_el, out)
        else:
            # DocumentLibrary (UNC/SharePoint) is not offered.
            raise _Invalid(INVALID_REQUEST, f"unsupported store {name!r}")
    except _Invalid as e:
        log.info("Search refused ({status}): {why}", status=e.status, why=str(e))
        for child in list(out)[1:]:
            out.remove(child)
        status = e.status
    status_el.text = str(status)
    root = E(S, "Search", E(S, "Status", text=SUCCESS), E(S, "Response", out))
    return CommandResult.wbxml(root)
