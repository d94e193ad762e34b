"""The user's OBM calendar as one EAS Calendar folder, synchronized both ways through obm-sync.

- `CalendarFolderSource`: the one calendar folder FolderSync shows (Java Opush: backend id =
  the login, display name ``<login> calendar``, type 8).
- `CalendarItemSource`: the sync engine's view of it.  A first listing is ``getFirstSync``
  (``getFirstSyncEventDate`` from the FilterType's date when the device filters), later ones
  ``getSync`` from the ``lastSync`` obm-sync returned; events the user declined, and the
  standalone occurrences obm-sync serves with a ``recurrenceId``, are not shown (Java Opush).
  Unanswered invitations never arrive: obm-sync leaves them out for a push origin.
  Device Adds go to ``createEvent`` with the hashed clientId (OP-155), Changes to
  ``modifyEvent``, Deletes to ``removeEvent``.
- `ObmMeetingResponses`: the MeetingResponse command's calendar hook
  (``changeParticipationState``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from lxml.etree import _Element

from opush.backends.interfaces import Credentials
from opush.backends.obmsync import xml as obm
from opush.backends.obmsync.client import ObmSyncClient, hashed_client_id
from opush.backends.obmsync.errors import (
    EventAlreadyExists,
    EventNotFound,
    ObmSyncError,
    ObmSyncUnavailable,
)
from opush.content import calendar as cal
from opush.content.email import ics
from opush.log import logger, request_context
from opush.storage.interfaces import FolderKind, FolderRef
from opush.sync.hierarchy import FolderNotFound, FolderType, ParentNotFound
from opush.sync.ids import InvalidServerId, parse_server_id
from opush.sync.interfaces import (
    ClientChangeResult,
    Json,
    RenderRequest,
    SourceChanges,
    SourceItem,
)

log = logger("OBM-SYNC")

#: A new sync state's date in the Java server: the epoch plus one second.
FIRST_SYNC_DATE = 1000

OK = 1
CONVERSION_ERROR = 6
NOT_FOUND = 8


def device_key() -> str:
    """The requesting device (from the request context), for the hashed clientId."""
    ctx = request_context.get()
    return ctx.device_id if ctx is not None else ""


class CalendarFolderSource:
    """The calendar folder of the user (one per user, as obm-sync has one calendar each)."""

    kind = FolderKind.CALENDAR
    creatable_types: frozenset[int] = frozenset()

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    async def list_folders(self) -> list[FolderRef]:
        login = self.credentials.user.login
        return [
            FolderRef(FolderKind.CALENDAR, login, f"{login} calendar", int(FolderType.CALENDAR))
        ]

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        raise ParentNotFound("obm-sync has one calendar per user")

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> dict[str, str]:
        raise FolderNotFound(folder.backend_id)

    async def delete(self, folder: FolderRef) -> list[str]:
        raise FolderNotFound(folder.backend_id)


def _end(event: obm.Event) -> datetime | None:
    """The date FilterType compares (None: always kept): a recurring event's last occurrence
    bound when it has one, else its end."""
    if event.recurrence.recurring:
        return cal.from_ms(event.recurrence.end) if event.recurrence.end is not None else None
    if event.date is None:
        return None
    return cal.from_ms(event.date) + timedelta(seconds=max(event.duration, 0))


#: Changes that make attendees answer again (the Java server raised the sequence for them).
def _important(old: obm.Event, new: obm.Event) -> bool:
    return (
        old.date != new.date
        or old.duration != new.duration
        or old.location != new.location
        or old.all_day != new.all_day
        or old.recurrence.kind != new.recurrence.kind
        or old.recurrence.freq != new.recurrence.freq
        or old.recurrence.days != new.recurrence.days
        or old.recurrence.end != new.recurrence.end
    )


class CalendarItemSource:
    """One user's obm-sync calendar for the sync engine (item id = OBM event id)."""

    item_class = "Calendar"

    def __init__(self, client: ObmSyncClient, credentials: Credentials, calendar: str) -> None:
        self.client = client
        self.credentials = credentials
        self.calendar = calendar
        #: Set by the engine before a listing: the FilterType's oldest date, or None.
        self.filter_cutoff: datetime | None = None
        self._events: dict[str, obm.Event] = {}
        self._email: str | None = None

    async def email(self) -> str:
        if self._email is None:
            self._email = self.credentials.user.email or await self.client.get_user_email(
                self.credentials
            )
        return self._email

    def _shown(self, event: obm.Event, email: str) -> bool:
        if event.id is None or event.recurrence_id is not None:
            return False
        return cal.user_state(event, email) != "DECLINED"

    async def changes(self, cursor: Json | None) -> SourceChanges:
        email = await self.email()
        if cursor is None:
            if self.filter_cutoff is not None:
                answer = await self.client.get_first_sync_event_date(
                    self.credentials, self.calendar, cal.to_ms(self.filter_cutoff)
                )
            else:
                answer = await self.client.get_first_sync(
                    self.credentials, self.calendar, FIRST_SYNC_DATE
                )
        else:
            answer = await self.client.get_sync(
                self.credentials, self.calendar, int(cursor.get("last", FIRST_SYNC_DATE))
            )
        changed: list[SourceItem] = []
        gone = {str(r.id) for r in answer.removed}
        for event in answer.updated:
            if not self._shown(event, email):
                if event.id is not None and event.recurrence_id is None:
                    gone.add(str(event.id))
                continue
            item_id = str(event.id)
            self._events[item_id] = event
            changed.append(SourceItem(item_id, _end(event)))
            gone.discard(item_id)
        return SourceChanges(
            cursor={"last": answer.last_sync},
            changed=tuple(changed),
            gone=frozenset(gone),
            complete=cursor is None,
        )

    async def _event(self, item_id: str) -> obm.Event | None:
        cached = self._events.get(item_id)
        if cached is not None:
            return cached
        if not item_id.isdigit():
            return None
        try:
            event = await self.client.get_event_from_id(
                self.credentials, self.calendar, int(item_id)
            )
        except EventNotFound:
            return None
        self._events[item_id] = event
        return event

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        email = await self.email()
        out: dict[str, list[_Element]] = {}
        for item_id in item_ids:
            event = await self._event(item_id)
            if event is None or not self._shown(event, email):
                continue
            item = cal.from_event(event, email)
            out[item_id] = cal.render_item(item, request.version, request.options)
        return out

    def _parse(self, data: _Element, default_zone: str | None = None) -> cal.CalendarItem | None:
        try:
            return cal.parse_item(data, default_zone=default_zone or cal.DEFAULT_ZONE)
        except cal.CalendarItemError as e:
            log.warn("calendar item from the device not understood: {e}", e=e)
            return None

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        email = await self.email()
        user = self.credentials.user
        try:
            if item.uid:
                try:
                    existing = await self.client.get_event_from_ext_id(
                        self.credentials, self.calendar, item.uid
                    )
                except EventNotFound:
                    existing = None
                if existing is not None and existing.id is not None:
                    await self._update(existing, item)
                    return ClientChangeResult(OK, str(existing.id))
            event = cal.to_event(
                item, owner=self.calendar, owner_email=email, owner_name=user.display_name
            )
            hashed = hashed_client_id(user.login_at_domain, device_key(), client_id)
            try:
                event_id = await self.client.create_event(
                    self.credentials, self.calendar, event, notification=True, client_id=hashed
                )
            except EventAlreadyExists:
                event_id = await self.client.get_event_obm_id_from_ext_id(
                    self.credentials, self.calendar, event.ext_id or ""
                )
        except ObmSyncUnavailable:
            raise
        except ObmSyncError as e:
            log.warn("obm-sync refused a calendar Add: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        self._events.pop(str(event_id), None)
        return ClientChangeResult(OK, str(event_id))

    async def _update(self, existing: obm.Event, item: cal.CalendarItem) -> None:
        """The device changed an event: its owner's changes go to ``modifyEvent``; changes to
        someone else's invitation mean the user takes part (the Java server accepted it)."""
        email = await self.email()
        user = self.credentials.user
        if (
            existing.owner not in (None, self.calendar)
            and (existing.owner_email or "").lower() != email.lower()
        ):
            await self.client.change_participation_state(
                self.credentials,
                self.calendar,
                existing.ext_id or "",
                "ACCEPTED",
                existing.sequence,
                notification=True,
            )
            return
        event = cal.to_event(
            item,
            owner=self.calendar,
            owner_email=email,
            owner_name=user.display_name,
            base=existing,
        )
        if _important(existing, event):
            event = attrs.evolve(event, sequence=existing.sequence + 1)
        await self.client.modify_event(
            self.credentials, self.calendar, event, update_attendees=True, notification=True
        )

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        existing = await self._event(item_id)
        if existing is None:
            return ClientChangeResult(NOT_FOUND)
        item = self._parse(data, existing.tz)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        try:
            await self._update(existing, item)
        except EventNotFound:
            return ClientChangeResult(NOT_FOUND)
        except ObmSyncUnavailable:
            raise
        except ObmSyncError as e:
            if "did not exist" in str(e):
                return ClientChangeResult(NOT_FOUND)
            log.warn("obm-sync refused a calendar Change: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        self._events.pop(item_id, None)
        return ClientChangeResult(OK)

    async def apply_occurrence(
        self, item_id: str, instance_id: str, data: _Element | None, request: RenderRequest
    ) -> ClientChangeResult:
        """16.x Change/Delete of one occurrence (MS-ASAIRS 2.2.2.25): the owner's series gets
        the exception (``modifyEvent``); in someone else's meeting the user accepts or
        declines that occurrence only (``changeParticipationState`` with its recurrenceId)."""
        existing = await self._event(item_id)
        if existing is None:
            return ClientChangeResult(NOT_FOUND)
        email = await self.email()
        item = cal.from_event(existing, email)
        try:
            changed = cal.with_occurrence(item, instance_id, data)
        except cal.CalendarItemError as e:
            log.warn("occurrence {i!r} not understood: {e}", i=instance_id, e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        if changed is None:  # not a series: the occurrence is the event
            if data is None:
                await self.apply_delete([item_id], False)
                return ClientChangeResult(OK)
            return await self.apply_change(item_id, data, request)
        try:
            if (
                existing.owner not in (None, self.calendar)
                and (existing.owner_email or "").lower() != email.lower()
            ):
                await self.client.change_participation_state(
                    self.credentials,
                    self.calendar,
                    existing.ext_id or "",
                    "DECLINED" if data is None else "ACCEPTED",
                    existing.sequence,
                    notification=True,
                    recurrence_id=cal.to_ms(cal.parse_date(instance_id)),
                )
            else:
                await self._update(existing, changed)
        except EventNotFound:
            return ClientChangeResult(NOT_FOUND)
        except ObmSyncUnavailable:
            raise
        except ObmSyncError as e:
            log.warn("obm-sync refused an occurrence change: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        self._events.pop(item_id, None)
        return ClientChangeResult(OK)

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        for item_id in item_ids:
            existing = await self._event(item_id)
            if existing is None or existing.id is None:
                continue
            try:
                # The owner's event is deleted; someone else's is declined (obm-sync decides).
                await self.client.remove_event(
                    self.credentials,
                    self.calendar,
                    existing.id,
                    existing.sequence,
                    notification=True,
                )
            except EventNotFound:
                pass
            self._events.pop(item_id, None)


# ------------------------------------------------------------------------- MeetingResponse


_UID = re.compile(r"^UID[;:](?:[^:\r\n]*:)?(.*)$", re.MULTILINE | re.IGNORECASE)


def ics_uid(ics: str) -> str | None:
    """The UID of an invitation's VEVENT (lines unfolded, RFC 5545 3.1)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", ics)
    found = _UID.search(unfolded)
    return found.group(1).strip() if found else None


_PARTSTATS = {"ACCEPTED", "DECLINED", "TENTATIVE", "NEEDS-ACTION", "DELEGATED"}


def _mailto(value: str) -> str:
    return value[7:] if value.lower().startswith("mailto:") else value


def external_event(invitation_ics: str, user_email: str) -> obm.Event | None:
    """The OBM event (``isInternal=false``) of an invitation sent from outside OBM; None when
    it cannot be one (no start, or a recurrence this conversion does not carry)."""
    root = ics.parse_ics(invitation_ics)
    vcal = next(root.find("VCALENDAR"), root)
    vevent = next((e for e in vcal.find("VEVENT") if e.get("RECURRENCE-ID") is None), None)
    if vevent is None or vevent.get("RRULE") is not None:
        return None
    zones = ics.Zones(vcal)
    start = ics.parse_time(vevent.get("DTSTART"), zones)
    if start is None:
        return None
    end = ics.parse_time(vevent.get("DTEND"), zones)
    end_utc = end.utc if end is not None else start.utc + timedelta(days=1 if start.all_day else 0)
    dtstart = vevent.get("DTSTART")
    tzid = (dtstart.params.get("TZID") if dtstart is not None else None) or "UTC"
    tzid = tzid.strip('"')
    attendees: list[obm.Attendee] = []
    organizer = vevent.get("ORGANIZER")
    if organizer is not None:
        attendees.append(
            obm.Attendee(
                email=_mailto(organizer.value),
                display_name=organizer.params.get("CN"),
                state="ACCEPTED",
                required="CHAIR",
                is_organizer=True,
            )
        )
    for prop in vevent.props:
        if prop.name != "ATTENDEE":
            continue
        email = _mailto(prop.value)
        if any(a.email.lower() == email.lower() for a in attendees):
            continue
        state = prop.params.get("PARTSTAT", "NEEDS-ACTION").upper()
        role = {"OPT-PARTICIPANT": "OPT", "NON-PARTICIPANT": "NON", "CHAIR": "CHAIR"}
        attendees.append(
            obm.Attendee(
                email=email,
                display_name=prop.params.get("CN"),
                state=state if state in _PARTSTATS else "NEEDS-ACTION",
                required=role.get(prop.params.get("ROLE", "").upper(), "REQ"),
            )
        )
    if not any(a.email.lower() == user_email.lower() for a in attendees):
        # obm-sync wants the calendar's owner among an external event's attendees.
        attendees.append(obm.Attendee(email=user_email))
    text = {
        name: ics.unescape(vevent.value(name) or "") or None
        for name in ("SUMMARY", "LOCATION", "DESCRIPTION")
    }
    return obm.Event(
        all_day=start.all_day,
        is_internal=False,
        ext_id=vevent.value("UID"),
        title=text["SUMMARY"],
        location=text["LOCATION"],
        description=text["DESCRIPTION"],
        owner_email=attendees[0].email if organizer is not None else None,
        tz=tzid if cal.zone(tzid).key == tzid else "UTC",
        date=cal.to_ms(start.utc),
        duration=max(int((end_utc - start.utc).total_seconds()), 0),
        sequence=int(vevent.value("SEQUENCE") or 0)
        if (vevent.value("SEQUENCE") or "0").isdigit()
        else 0,
        attendees=tuple(attendees),
    )


def _instance_ms(instance_id: str | None) -> int | None:
    if not instance_id:
        return None
    try:
        return cal.to_ms(cal.parse_date(instance_id))
    except cal.CalendarItemError:
        return None


class ObmMeetingResponses:
    """``runtime.services["meeting_responses"]``: the answer goes to obm-sync with
    ``changeParticipationState``; the organizer's mail is the MeetingResponse command's."""

    def __init__(self, client: ObmSyncClient) -> None:
        self.client = client

    async def _answer(
        self, ctx: Any, event: obm.Event, answer: Any, instance_id: str | None
    ) -> None:
        credentials: Credentials = ctx.credentials
        await self.client.change_participation_state(
            credentials,
            credentials.user.login,
            event.ext_id or "",
            answer.partstat,
            event.sequence,
            notification=False,
            recurrence_id=_instance_ms(instance_id),
        )

    async def _server_id(self, ctx: Any, event: obm.Event) -> str | None:
        collection = await ctx.runtime.state.find_collection(
            ctx.device.user, ctx.device.device_id, FolderKind.CALENDAR, ctx.credentials.user.login
        )
        if collection is None or event.id is None:
            return None
        return f"{collection.collection_id}:{event.id}"

    async def record(
        self, ctx: Any, invitation_ics: str, answer: Any, instance_id: str | None
    ) -> str | None:
        """An invitation received by mail; its event is in the user's calendar when an OBM
        user sent it (obm-sync put it there, unanswered)."""
        uid = ics_uid(invitation_ics)
        if uid is None:
            return None
        credentials: Credentials = ctx.credentials
        login = credentials.user.login
        try:
            event = await self.client.get_event_from_ext_id(credentials, login, uid)
        except EventNotFound:
            # From outside OBM: put it in the calendar first (the Java server did too).
            external = external_event(invitation_ics, credentials.user.email)
            if external is None:
                log.info("invitation {uid} not recorded in obm-sync", uid=uid)
                return None
            try:
                event_id = await self.client.create_event(
                    credentials, login, external, notification=False, client_id=None
                )
            except EventAlreadyExists:
                event_id = await self.client.get_event_obm_id_from_ext_id(credentials, login, uid)
            event = await self.client.get_event_from_id(credentials, login, event_id)
        await self._answer(ctx, event, answer, instance_id)
        return await self._server_id(ctx, event)

    async def record_calendar_item(
        self,
        ctx: Any,
        collection_id: str | None,
        server_id: str | None,
        answer: Any,
        instance_id: str | None,
    ) -> str | None:
        try:
            _cid, item = parse_server_id(server_id)
        except InvalidServerId:
            raise ValueError(f"not a calendar item: {server_id!r}") from None
        credentials: Credentials = ctx.credentials
        event = await self.client.get_event_from_id(
            credentials, credentials.user.login, int(item) if item.isdigit() else -1
        )
        await self._answer(ctx, event, answer, instance_id)
        return server_id
