"""Find (EAS 16.1, MS-ASCMD 2.2.1.2): the successor of Search for the mailbox and the GAL.

The search itself is Search's (``opush.commands.search``): IMAP SEARCH over the collections
the device names (or every mail collection), DeepTraversal into subfolders, newest first; the
GAL over LDAP.  Only the request and response shapes differ:

- request ``Find/SearchId, ExecuteSearch/(MailBoxSearchCriterion | GALSearchCriterion)`` with
  ``Query`` (FreeText, airsync:Class, airsync:CollectionId) and ``Options`` (Range,
  DeepTraversal, Picture);
- response ``Find/Status, Response/(itemoperations:Store, Status, Result*, Range, Total)``; a
  mail Result carries airsync:Class, airsync:ServerId, airsync:CollectionId and Properties
  (MS-ASCMD 2.2.3.139.1: Subject, DateReceived, DisplayTo, DisplayCc, DisplayBcc, Importance,
  Read, IsDraft, Preview, HasAttachments, From), a GAL Result the gal:* properties.

Statuses (MS-ASCMD 2.2.3.177.2): 1 success, 2 invalid request, 3 FolderSync required.
"""

from __future__ import annotations

from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import MailboxNotFound
from opush.backends.ldap import DirectoryEntry, DirectoryUnavailable, directory_for
from opush.commands.context import CommandContext, CommandResult
from opush.commands.itemoperations import MailItemId, mail_properties
from opush.commands.pictures import Pictures
from opush.commands.search import (
    MAX_RESULTS,
    MailboxQuery,
    _Invalid,
    _sort_key,
    gal_properties,
    parse_range,
    search_mailbox,
)
from opush.content.email import BodyPreference, BodyType, EmailOptions
from opush.content.email.headers import HeaderView, display_names
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.wbxml import E, ns

log = logger("opush.commands.find")

F = ns.FIND
SUCCESS = 1
INVALID_REQUEST = 2
FOLDER_SYNC_REQUIRED = 3

#: MS-ASCMD 2.2.3.137 Preview: up to 255 characters of the body.
PREVIEW_CHARS = 255
_PREVIEW_OPTIONS = EmailOptions(
    body_preferences=(BodyPreference(type=BodyType.PLAIN, truncation_size=PREVIEW_CHARS * 4),)
)


def _local(el: _Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _child(el: _Element | None, name: str) -> _Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c).lower() == name.lower():
            return c
    return None


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


def parse_query(query: _Element) -> MailboxQuery:
    """MS-ASCMD 2.2.3.142.1: FreeText, airsync:Class, airsync:CollectionId (no And/Or)."""
    free: list[str] = []
    classes: list[str] = []
    ids: list[str] = []
    for c in query:
        name = _local(c)
        if name == "FreeText":
            if _text(c):
                free.append(_text(c) or "")
        elif name == "Class":
            classes.append(_text(c) or "")
        elif name == "CollectionId":
            ids.append(_text(c) or "")
        else:
            raise _Invalid(INVALID_REQUEST, f"unexpected {name} in the Find query")
    return MailboxQuery(
        collection_ids=tuple(ids), free_text=" ".join(free) or None, classes=tuple(classes)
    )


def find_properties(props: list[_Element]) -> list[_Element]:
    """Find's Properties from a converted mail (ApplicationData children)."""
    by_name = {(etree.QName(p).namespace, _local(p)): p for p in props}

    def text(namespace: str, tag: str) -> str | None:
        el = by_name.get((namespace, tag))
        return el.text if el is not None and el.text else None

    out: list[_Element] = []
    for tag in ("Subject", "DateReceived", "DisplayTo"):
        value = text(ns.EMAIL, tag)
        if value:
            out.append(E(ns.EMAIL, tag, text=value))
    cc = text(ns.EMAIL, "Cc")
    if cc:
        names = display_names(HeaderView.from_bytes(f"Cc: {cc}\r\n".encode()).addresses("cc"))
        if names:
            out.append(E(F, "DisplayCc", text=names))
    for tag in ("Importance", "Read"):
        value = text(ns.EMAIL, tag)
        if value is not None:
            out.append(E(ns.EMAIL, tag, text=value))
    out.append(E(ns.EMAIL2, "IsDraft", text=text(ns.EMAIL2, "IsDraft") or "0"))
    body = by_name.get((ns.AIRSYNCBASE, "Body"))
    data = body.find(f"{{{ns.AIRSYNCBASE}}}Data") if body is not None else None
    preview = " ".join((data.text or "").split())[:PREVIEW_CHARS] if data is not None else ""
    if preview:
        out.append(E(F, "Preview", text=preview))
    attachments = by_name.get((ns.AIRSYNCBASE, "Attachments"))
    out.append(
        E(F, "HasAttachments", text=1 if attachments is not None and len(attachments) else 0)
    )
    sender = text(ns.EMAIL, "From")
    if sender:
        out.append(E(ns.EMAIL, "From", text=sender))
    return out


async def _mailbox(ctx: CommandContext, criterion: _Element, response: _Element) -> int:
    query_el = _child(criterion, "Query")
    if query_el is None:
        raise _Invalid(INVALID_REQUEST, "MailBoxSearchCriterion without Query")
    query = parse_query(query_el)
    options = _child(criterion, "Options")
    start, end = parse_range(_text(_child(options, "Range")))
    deep = _child(options, "DeepTraversal") is not None
    try:
        hits = await search_mailbox(ctx, query, deep)
    except _Invalid as e:
        # Search's "FolderSync required" (unknown collection) is Find's 3.
        raise _Invalid(FOLDER_SYNC_REQUIRED if e.status == 11 else e.status, str(e)) from e
    store = ctx.mail_store()
    results: list[_Element] = []
    for hit in hits[start : end + 1]:
        item = MailItemId(hit.collection_id, hit.uid)
        try:
            props = await mail_properties(ctx, store, hit.folder, item, _PREVIEW_OPTIONS)
        except MailboxNotFound:
            props = None
        if props is None:
            continue  # gone since the SEARCH
        results.append(
            E(
                F,
                "Result",
                E(ns.AIRSYNC, "Class", text="Email"),
                E(ns.AIRSYNC, "ServerId", text=item.server_id),
                E(ns.AIRSYNC, "CollectionId", text=hit.collection_id),
                E(F, "Properties", *find_properties(props)),
            )
        )
    _finish(response, results, start, len(hits))
    return SUCCESS


async def _gal(ctx: CommandContext, criterion: _Element, response: _Element) -> int:
    text = _text(_child(criterion, "Query"))
    if not text:
        raise _Invalid(INVALID_REQUEST, "GALSearchCriterion without a query")
    options = _child(criterion, "Options")
    start, end = parse_range(_text(_child(options, "Range")))
    pictures = Pictures.from_request(_child(options, "Picture"))
    directory = directory_for(ctx.runtime)
    entries: list[DirectoryEntry] = []
    if directory is not None:
        try:
            entries = await directory.search(ctx.user, text, photos=pictures is not None)
        except DirectoryUnavailable as e:
            log.warn("GAL Find failed: {error}", error=e)
            raise _Invalid(INVALID_REQUEST, "directory unavailable") from e
    entries.sort(key=lambda e: (_sort_key(e.display_name or e.email or ""), e.email or ""))
    results = [
        E(F, "Result", E(F, "Properties", *gal_properties(e, pictures)))
        for e in entries[start : end + 1]
    ]
    _finish(response, results, start, len(entries))
    return SUCCESS


def _finish(response: _Element, results: list[_Element], start: int, total: int) -> None:
    # MS-ASCMD 2.2.3.155.1: no Result at all when nothing matches.
    response.extend(results)
    if results:
        response.append(E(F, "Range", text=f"{start}-{start + len(results) - 1}"))
    response.append(E(F, "Total", text=total))


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != f"{{{F}}}Find":
        raise EasStatusError(INVALID_REQUEST, message="Find without its root element")
    execute = _child(request, "ExecuteSearch")
    mailbox = _child(execute, "MailBoxSearchCriterion")
    gal = _child(execute, "GALSearchCriterion")  # "GalSearchCriterion" on the wire page
    response = E(F, "Response")
    store_name = E(ns.ITEMOPERATIONS, "Store", text="Mailbox" if gal is None else "GAL")
    status_el = E(F, "Status", text=SUCCESS)
    response.extend([store_name, status_el])
    try:
        if mailbox is not None:
            status = await _mailbox(ctx, mailbox, response)
        elif gal is not None:
            status = await _gal(ctx, gal, response)
        else:
            raise _Invalid(INVALID_REQUEST, "ExecuteSearch without a criterion")
    except _Invalid as e:
        log.info("Find refused ({status}): {why}", status=e.status, why=str(e))
        for extra in list(response)[2:]:
            response.remove(extra)
        status = e.status
    status_el.text = str(status)
    return CommandResult.wbxml(E(F, "Find", E(F, "Status", text=SUCCESS), response))


__all__ = ["MAX_RESULTS", "handle"]
