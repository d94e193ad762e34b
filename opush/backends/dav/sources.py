"""CardDAV address books (and CalDAV calendars as folders) of the standalone profile, plugged
into FolderSync, the sync engine and Ping like the obm profile's (``opush.backends.obmsync``).

- Folders: every address book of the user (the first, or the one named like "contacts"/
  "default", is the default Contacts folder, type 9; others user contacts folders, type 14);
  every calendar holding VEVENTs likewise (8 / 13).  A user without an address book or a
  calendar gets one (extended MKCOL), as a phone expects both.
- Items (address books): item id = the resource's name in its collection.  Changes come from
  RFC 6578 sync-collection (O(changes)); an expired token lists everything again; a server
  without it is diffed by ETag.  Rendering fetches a window in one addressbook-multiget.
  Device Adds are PUT as new ``<uuid>.vcf`` (If-None-Match), deduplicated per device by
  content (OP-139); Changes are merged into the stored card (If-Match, retried once when it
  changed meanwhile); Deletes are DELETEs.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from lxml.etree import _Element

from opush.backends.dav.client import (
    DavClient,
    DavError,
    InvalidSyncToken,
    Resource,
    basename,
)
from opush.backends.interfaces import BackendUnavailable, Credentials
from opush.content import contacts as cn
from opush.content import vcard
from opush.log import logger, request_context
from opush.storage.interfaces import FolderKind, FolderRef, MappingKind, StateStore
from opush.sync.hierarchy import FolderExists, FolderNotFound, FolderType, InvalidFolderName
from opush.sync.interfaces import ClientChangeResult, Json, RenderRequest, SourceChanges, SourceItem

log = logger("opush.backends.dav")

OK = 1
CONVERSION_ERROR = 6
NOT_FOUND = 8
VCARD_TYPE = "text/vcard; charset=utf-8"
_DEFAULT_NAMES = ("contacts", "default", "addressbook", "calendar", "personal")


def _default_first(refs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(href, name) with the default collection first: a well-known name, else the oldest."""

    def rank(pair: tuple[str, str]) -> tuple[int, str]:
        href, name = pair
        known = basename(href).lower() in _DEFAULT_NAMES or name.lower() in _DEFAULT_NAMES
        return (0 if known else 1, href)

    return sorted(refs, key=rank)


class DavFolderSource:
    """The user's address books (``kind`` CONTACTS) or calendars (``kind`` CALENDAR).

    FolderCreate of a user calendar (13) or contacts folder (14) makes a collection (extended
    MKCOL), FolderUpdate renames it (PROPPATCH displayname; the collection keeps its URL, so
    its items keep their ids), FolderDelete deletes it; the default folders are protected by
    the commands (MS-ASCMD 2.2.1.3/5/6)."""

    def __init__(self, client: DavClient, kind: FolderKind) -> None:
        self.client = client
        self.kind = kind
        self.creatable_types = frozenset(
            {
                int(
                    FolderType.USER_CONTACTS
                    if kind is FolderKind.CONTACTS
                    else FolderType.USER_CALENDAR
                )
            }
        )

    @property
    def _dav_kind(self) -> str:
        return "addressbook" if self.kind is FolderKind.CONTACTS else "calendar"

    async def list_folders(self) -> list[FolderRef]:
        found = await self._collections()
        if not found:
            name, display = (
                ("contacts", "Contacts")
                if self.kind is FolderKind.CONTACTS
                else ("calendar", "Calendar")
            )
            await self.client.make_collection(name, self._dav_kind, display)
            found = await self._collections()
        ordered = _default_first(found)
        default_type, other_type = (
            (FolderType.CONTACTS, FolderType.USER_CONTACTS)
            if self.kind is FolderKind.CONTACTS
            else (FolderType.CALENDAR, FolderType.USER_CALENDAR)
        )
        refs: list[FolderRef] = []
        for i, (href, name) in enumerate(ordered):
            refs.append(
                FolderRef(
                    self.kind,
                    href,
                    name,
                    int(default_type if i == 0 else other_type),
                    None if i == 0 else ordered[0][0],
                )
            )
        return refs

    async def _collections(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for c in await self.client.collections():
            if c.kind != self._dav_kind:
                continue
            if self._dav_kind == "calendar" and c.components and "VEVENT" not in c.components:
                continue  # a tasks-only list
            out.append((c.href, c.display_name))
        return out

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        if not name.strip() or any(c in name for c in "\r\n\x00"):
            raise InvalidFolderName(name)
        existing = await self._collections()
        if any(display == name for _, display in existing):
            raise FolderExists(name)
        slug = str(uuid.uuid4())
        href = await self.client.make_collection(slug, self._dav_kind, name)
        # The collection as the server lists it (its own encoding of the path).
        href = next((h for h, _ in await self._collections() if basename(h) == slug), href)
        default = _default_first(existing)[0][0] if existing else None
        return FolderRef(self.kind, href, name, folder_type, default)

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> dict[str, str]:
        if not name.strip() or any(c in name for c in "\r\n\x00"):
            raise InvalidFolderName(name)
        existing = await self._collections()
        if folder.backend_id not in {h for h, _ in existing}:
            raise FolderNotFound(folder.backend_id)
        if any(display == name and h != folder.backend_id for h, display in existing):
            raise FolderExists(name)
        await self.client.set_display_name(folder.backend_id, name)
        return {folder.backend_id: folder.backend_id}

    async def delete(self, folder: FolderRef) -> list[str]:
        existing = await self._collections()
        if folder.backend_id not in {h for h, _ in existing}:
            raise FolderNotFound(folder.backend_id)
        await self.client.delete(folder.backend_id)
        return [folder.backend_id]


def _scope(credentials: Credentials) -> tuple[str, str]:
    """(user, device) of the request: the OP-139 content hashes are per device."""
    ctx = request_context.get()
    user = credentials.user.login_at_domain.lower()
    if ctx is None:
        return user, ""
    return (ctx.user or user), ctx.device_id


class DavChangeFeed:
    """Changes of one collection: sync-collection when the server has it, ETag diff if not."""

    def __init__(self, client: DavClient, href: str) -> None:
        self.client = client
        self.href = href

    async def changes(
        self, cursor: Json | None
    ) -> tuple[dict[str, Any], list[str], set[str], bool]:
        """(new cursor, changed item ids, gone item ids, complete listing)."""
        token = cursor.get("token") if cursor else None
        if cursor is None or token is not None:
            try:
                result = await self.client.sync_collection(self.href, token)
            except InvalidSyncToken:
                log.info("sync token of {href} expired: listing it again", href=self.href)
                result = await self.client.sync_collection(self.href, None)
                return (
                    {"token": result.token},
                    [basename(r.href) for r in result.changed],
                    set(),
                    True,
                )
            except DavError as e:
                if e.status not in (400, 403, 405, 415, 501):
                    raise
                # No RFC 6578 here: diff the ETags.
                return await self._etag_diff(None)
            else:
                changed = [basename(r.href) for r in result.changed]
                gone = {basename(h) for h in result.removed} - set(changed)
                return {"token": result.token}, changed, gone, token is None
        return await self._etag_diff(cursor.get("etags") if cursor else None)

    async def _etag_diff(
        self, known: dict[str, str] | None
    ) -> tuple[dict[str, Any], list[str], set[str], bool]:
        now = {basename(h): e for h, e in (await self.client.etags(self.href)).items()}
        if known is None:
            return {"etags": now}, sorted(now), set(), True
        changed = sorted(i for i, e in now.items() if known.get(i) != e)
        gone = set(known) - set(now)
        return {"etags": now}, changed, gone, False


class DavContactsSource:
    """One address book as an ``ItemSource`` (item id = resource name)."""

    item_class = "Contacts"

    def __init__(
        self,
        client: DavClient,
        credentials: Credentials,
        href: str,
        collection_id: int,
        state: StateStore | None = None,
    ) -> None:
        self.client = client
        self.credentials = credentials
        self.href = href if href.endswith("/") else href + "/"
        self.collection_id = collection_id
        self.state = state
        self.feed = DavChangeFeed(client, self.href)
        self._cards: dict[str, Resource] = {}

    def _member(self, item_id: str) -> str:
        return self.href + quote(item_id)

    async def changes(self, cursor: Json | None) -> SourceChanges:
        new, changed, gone, complete = await self.feed.changes(cursor)
        return SourceChanges(
            cursor=new,
            changed=tuple(SourceItem(i) for i in changed),
            gone=frozenset(gone),
            complete=complete,
        )

    async def _fetch(self, item_ids: Sequence[str]) -> None:
        wanted = [i for i in item_ids if i not in self._cards]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            for r in await self.client.multiget(
                self.href, "addressbook", [self._member(i) for i in chunk]
            ):
                self._cards[basename(r.href)] = r

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        await self._fetch(item_ids)
        out: dict[str, list[_Element]] = {}
        for item_id in item_ids:
            card = self._cards.get(item_id)
            if card is None or card.data is None:
                continue
            item = vcard.parse_vcard(card.data)
            if item is None:
                log.warn("{href} is not a readable vCard: not sent", href=card.href)
                continue
            out[item_id] = cn.render_item(item, request.version, request.options)
        return out

    def _parse(self, data: _Element) -> cn.ContactItem | None:
        try:
            return cn.parse_item(data)
        except cn.ContactItemError as e:
            log.warn("contact from the device not understood: {e}", e=e)
            return None

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        digest = cn.content_hash(item)
        user, device = _scope(self.credentials)
        if self.state is not None:
            known = await self.state.get_mapping(
                user, device, self.collection_id, MappingKind.CONTENT_HASH, digest
            )
            if known is not None and await self.client.get(self._member(known)) is not None:
                log.warn(
                    "A creation is discarded, the contact {h} is already {id}", h=digest, id=known
                )
                return ClientChangeResult(OK, known)
        uid = str(uuid.uuid4())
        item_id = f"{uid}.vcf"
        try:
            await self.client.put(
                self._member(item_id), vcard.format_vcard(item, uid=uid), VCARD_TYPE
            )
        except DavError as e:
            log.warn("the CardDAV server refused a contact Add: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        if self.state is not None:
            await self.state.put_mapping(
                user, device, self.collection_id, MappingKind.CONTENT_HASH, digest, item_id
            )
        return ClientChangeResult(OK, item_id)

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        for _attempt in range(2):
            current = await self.client.get(self._member(item_id))
            if current is None:
                return ClientChangeResult(NOT_FOUND)
            uid = _vcard_uid(current.data or "") or item_id.removesuffix(".vcf")
            text = vcard.format_vcard(item, uid=uid, existing=current.data)
            try:
                await self.client.put(
                    self._member(item_id), text, VCARD_TYPE, etag=current.etag or "*"
                )
            except DavError as e:
                if e.status == 412:
                    continue  # changed meanwhile: merge into the newer version
                if e.status == 404:
                    return ClientChangeResult(NOT_FOUND)
                log.warn("the CardDAV server refused a contact Change: {e}", e=e)
                return ClientChangeResult(CONVERSION_ERROR)
            self._cards.pop(item_id, None)
            return ClientChangeResult(OK)
        raise BackendUnavailable(f"{self._member(item_id)} keeps changing")

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        for item_id in item_ids:
            try:
                await self.client.delete(self._member(item_id))
            except DavError as e:
                log.warn("the CardDAV server refused a Delete: {e}", e=e)
            self._cards.pop(item_id, None)


def _vcard_uid(text: str) -> str | None:
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.upper().startswith("UID:"):
            return line[4:].strip() or None
    return None


def content_digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


ICS_TYPE = "text/calendar; charset=utf-8"


class DavCalendarSource(DavContactsSource):
    """One CalDAV calendar as an ``ItemSource`` (item id = resource name; one event each).

    Same change detection and writes as address books; the items are iCalendar events
    (``opush.content.ical``).  Every event is offered whatever the FilterType (no
    time-range query yet)."""

    item_class = "Calendar"

    async def changes(self, cursor: Json | None) -> SourceChanges:
        """As for address books, each changed event dated by its end (a recurring one is
        undated: always in range), so that FilterType (MS-ASCMD 2.2.3.69) keeps past events
        off the device; the events are fetched once, for the window that follows."""
        from opush.content import ical

        new, changed, gone, complete = await self.feed.changes(cursor)
        self._cards = {k: v for k, v in self._cards.items() if k not in changed}
        await self._fetch(changed)
        items: list[SourceItem] = []
        tasks: set[str] = set()
        for item_id in changed:
            resource = self._cards.get(item_id)
            event = ical.parse_event(resource.data) if resource and resource.data else None
            if event is None and resource and resource.data and "BEGIN:VTODO" in resource.data:
                tasks.add(item_id)  # a calendar holding tasks too: they are in Tasks folders
            elif event is None or event.recurrence is not None:
                items.append(SourceItem(item_id))
            else:
                items.append(SourceItem(item_id, event.end))
        return SourceChanges(
            cursor=new,
            changed=tuple(items),
            gone=frozenset(gone) if complete else frozenset(gone | tasks),
            complete=complete,
        )

    async def _fetch(self, item_ids: Sequence[str]) -> None:
        wanted = [i for i in item_ids if i not in self._cards]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            for r in await self.client.multiget(
                self.href, "calendar", [self._member(i) for i in chunk]
            ):
                self._cards[basename(r.href)] = r

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        from opush.content import calendar as cal
        from opush.content import ical

        await self._fetch(item_ids)
        out: dict[str, list[_Element]] = {}
        for item_id in item_ids:
            resource = self._cards.get(item_id)
            if resource is None or resource.data is None:
                continue
            event = ical.parse_event(resource.data, user_email=self.credentials.user.email)
            if event is None:
                log.warn("{href} holds no readable event: not sent", href=resource.href)
                continue
            out[item_id] = cal.render_item(event, request.version, request.options)
        return out

    def _parse_event(self, data: _Element) -> Any:
        from opush.content import calendar as cal

        try:
            return cal.parse_item(data)
        except cal.CalendarItemError as e:
            log.warn("calendar item from the device not understood: {e}", e=e)
            return None

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        from opush.content import ical

        item = self._parse_event(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        uid = item.uid or str(uuid.uuid4())
        item_id = f"{hashlib.sha1(uid.encode()).hexdigest()}.ics"
        existing = await self.client.get(self._member(item_id))
        if existing is not None:
            return ClientChangeResult(OK, item_id)  # the same event sent again
        text = ical.format_event(item, uid=uid, user_email=self.credentials.user.email)
        try:
            await self.client.put(self._member(item_id), text, ICS_TYPE)
        except DavError as e:
            log.warn("the CalDAV server refused an event Add: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        return ClientChangeResult(OK, item_id)

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        from opush.content import ical

        item = self._parse_event(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        for _attempt in range(2):
            current = await self.client.get(self._member(item_id))
            if current is None:
                return ClientChangeResult(NOT_FOUND)
            old = ical.parse_event(current.data or "")
            uid = (old.uid if old is not None else None) or item.uid or item_id.removesuffix(".ics")
            text = ical.format_event(
                item, uid=uid, user_email=self.credentials.user.email, existing=current.data
            )
            try:
                await self.client.put(
                    self._member(item_id), text, ICS_TYPE, etag=current.etag or "*"
                )
            except DavError as e:
                if e.status == 412:
                    continue
                if e.status == 404:
                    return ClientChangeResult(NOT_FOUND)
                log.warn("the CalDAV server refused an event Change: {e}", e=e)
                return ClientChangeResult(CONVERSION_ERROR)
            self._cards.pop(item_id, None)
            return ClientChangeResult(OK)
        raise BackendUnavailable(f"{self._member(item_id)} keeps changing")

    async def apply_occurrence(
        self, item_id: str, instance_id: str, data: _Element | None, request: RenderRequest
    ) -> ClientChangeResult:
        """16.x Change/Delete of one occurrence (MS-ASAIRS 2.2.2.25): an overriding VEVENT
        or an EXDATE in the series' resource; the rest of the series is untouched."""
        from opush.content import calendar as cal
        from opush.content import ical

        for _attempt in range(2):
            current = await self.client.get(self._member(item_id))
            if current is None:
                return ClientChangeResult(NOT_FOUND)
            old = ical.parse_event(current.data or "", user_email=self.credentials.user.email)
            if old is None:
                return ClientChangeResult(CONVERSION_ERROR)
            try:
                changed = cal.with_occurrence(old, instance_id, data)
            except cal.CalendarItemError as e:
                log.warn("occurrence {i!r} not understood: {e}", i=instance_id, e=e)
                return ClientChangeResult(CONVERSION_ERROR)
            if changed is None:  # not a series: the occurrence is the event
                if data is None:
                    await self.apply_delete([item_id], False)
                    return ClientChangeResult(OK)
                return await self.apply_change(item_id, data, request)
            text = ical.format_event(
                changed,
                uid=old.uid or item_id.removesuffix(".ics"),
                user_email=self.credentials.user.email,
                existing=current.data,
            )
            try:
                await self.client.put(
                    self._member(item_id), text, ICS_TYPE, etag=current.etag or "*"
                )
            except DavError as e:
                if e.status == 412:
                    continue
                if e.status == 404:
                    return ClientChangeResult(NOT_FOUND)
                log.warn("the CalDAV server refused an occurrence change: {e}", e=e)
                return ClientChangeResult(CONVERSION_ERROR)
            self._cards.pop(item_id, None)
            return ClientChangeResult(OK)
        raise BackendUnavailable(f"{self._member(item_id)} keeps changing")
