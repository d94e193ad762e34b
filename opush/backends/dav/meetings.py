"""MeetingResponse for the standalone profile (``runtime.services["meeting_responses"]``):
the invitation's event goes into the user's default CalDAV calendar with the user's answer
as their PARTSTAT (RFC 5545 3.2.12); a declined meeting leaves the calendar, as Exchange does.
The organizer's iMIP REPLY is the MeetingResponse command's own mail.

An answer to one occurrence of a recurring meeting (MeetingResponse InstanceId, MS-ASCMD
2.2.3.87.1) changes only that occurrence: an overriding VEVENT with its RECURRENCE-ID and the
user's PARTSTAT (RFC 5545 3.8.4.4), or, when declined, an EXDATE on the series so that the
occurrence leaves the calendar like a declined meeting does."""

from __future__ import annotations

import copy
import hashlib
import re
from datetime import datetime, timedelta
from typing import Any

from opush.backends.dav.client import DavError
from opush.backends.dav.sources import ICS_TYPE, DavFolderSource
from opush.backends.interfaces import BackendUnavailable
from opush.content.calendar import CalendarItemError, parse_date
from opush.content.email import ics
from opush.log import logger
from opush.storage.interfaces import FolderKind
from opush.sync.ids import InvalidServerId, parse_server_id

log = logger("opush.backends.dav")

_LINE = re.compile(r"\r\n[ \t]|\n[ \t]")


def _unfold(text: str) -> list[str]:
    return [line for line in _LINE.sub("", text).replace("\r\n", "\n").split("\n") if line]


def _fold(line: str) -> str:
    out: list[str] = []
    current = ""
    for ch in line:
        if len((current + ch).encode("utf-8")) > (75 if not out else 74):
            out.append(current)
            current = ""
        current += ch
    out.append(current)
    return "\r\n ".join(out)


def with_partstat(ics_text: str, email: str, partstat: str) -> str:
    """The calendar object with ``email``'s PARTSTAT set (added as an attendee if absent),
    METHOD dropped (a CalDAV resource is not an iTIP message, RFC 4791 4.1)."""
    me = email.lower()
    out: list[str] = []
    in_event = found = False
    for line in _unfold(ics_text):
        upper = line.upper()
        if upper.startswith("METHOD:"):
            continue
        if upper == "BEGIN:VEVENT":
            in_event, found = True, False
        if in_event and upper.startswith("ATTENDEE") and line.lower().endswith(f"mailto:{me}"):
            head, _, value = line.partition(":")
            params = [
                p for p in head.split(";")[1:] if not p.upper().startswith(("PARTSTAT=", "RSVP="))
            ]
            line = ";".join(["ATTENDEE", *params, f"PARTSTAT={partstat}"]) + ":" + value
            found = True
        if upper == "END:VEVENT":
            if not found:
                out.append(f"ATTENDEE;PARTSTAT={partstat}:mailto:{email}")
            in_event = False
        out.append(line)
    return "\r\n".join(_fold(line) for line in out) + "\r\n"


def _param_value(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ";:,") else value


def _serialize(comp: ics.Component) -> list[str]:
    lines = [f"BEGIN:{comp.name}"]
    for p in comp.props:
        params = "".join(f";{k}={_param_value(v)}" for k, v in p.params.items())
        lines.append(f"{p.name}{params}:{p.value}")
    for child in comp.children:
        lines += _serialize(child)
    lines.append(f"END:{comp.name}")
    return lines


def _time_like(prop: ics.Prop, when: datetime, zones: ics.Zones) -> ics.Prop:
    """``when`` (UTC) written the way ``prop`` (the series' DTSTART) writes times: a date, UTC,
    or local time of its TZID (RFC 5545 3.8.4.4: RECURRENCE-ID has the type of DTSTART)."""
    params = {k: v for k, v in prop.params.items() if k in ("TZID", "VALUE")}
    value = prop.value.strip()
    if params.get("VALUE", "").upper() == "DATE" or (len(value) == 8 and value.isdigit()):
        return ics.Prop(prop.name, params, when.strftime("%Y%m%d"))
    if value.upper().endswith("Z"):
        return ics.Prop(prop.name, params, when.strftime("%Y%m%dT%H%M%SZ"))
    zone = zones.source(params.get("TZID"))
    naive = when.replace(tzinfo=None)
    if zone is None:  # floating time, read as UTC (ics.parse_time)
        local = naive
    elif zone.tz is not None:
        local = when.astimezone(zone.tz).replace(tzinfo=None)
    else:
        assert zone.rule is not None
        guess = naive + timedelta(minutes=ics._rule_offset(zone.rule, naive))
        local = naive + timedelta(minutes=ics._rule_offset(zone.rule, guess))
    return ics.Prop(prop.name, params, local.strftime("%Y%m%dT%H%M%S"))


def _set_partstat(event: ics.Component, email: str, partstat: str) -> None:
    me = f"mailto:{email.lower()}"
    for p in event.all("ATTENDEE"):
        if p.value.strip().lower() == me:
            p.params = {k: v for k, v in p.params.items() if k not in ("PARTSTAT", "RSVP")}
            p.params["PARTSTAT"] = partstat
            return
    event.props.append(ics.Prop("ATTENDEE", {"PARTSTAT": partstat}, f"mailto:{email}"))


_SERIES_ONLY = ("RRULE", "RDATE", "EXDATE", "EXRULE", "DTSTART", "DTEND", "DURATION")


def with_occurrence_partstat(
    ics_text: str, email: str, partstat: str, instance: datetime
) -> str | None:
    """The calendar object with the user's answer to the occurrence starting at ``instance``
    (UTC); None when the object is not a recurring event (the answer is then the series')."""
    root = ics.parse_ics(ics_text)
    cal = next(root.find("VCALENDAR"), None)
    if cal is None:
        return None
    zones = ics.Zones(root)
    events = [c for c in cal.children if c.name == "VEVENT"]
    master = next((e for e in events if e.get("RECURRENCE-ID") is None), None)
    if master is None or master.get("DTSTART") is None:
        return None
    if master.get("RRULE") is None and master.get("RDATE") is None:
        return None
    start = ics.parse_time(master.get("DTSTART"), zones)
    if start is None:
        return None
    end = ics.parse_time(master.get("DTEND"), zones)
    length = (end.utc - start.utc) if end is not None else timedelta(0)
    if end is None and master.get("DURATION") is not None:
        length = ics._duration(master.value("DURATION")) or timedelta(0)
    cal.props = [p for p in cal.props if p.name != "METHOD"]  # RFC 4791 4.1

    def is_instance(e: ics.Component) -> bool:
        rid = ics.parse_time(e.get("RECURRENCE-ID"), zones)
        return rid is not None and rid.utc == instance

    override = next((e for e in events if is_instance(e)), None)
    start_prop = master.get("DTSTART")
    assert start_prop is not None
    _drop_exdate(master, instance, zones)  # re-added below when declined again
    if partstat == "DECLINED":
        if override is not None:
            cal.children.remove(override)
        master.props.append(
            _time_like(ics.Prop("EXDATE", start_prop.params, start_prop.value), instance, zones)
        )
    else:
        if override is None:
            override = ics.Component(
                "VEVENT",
                [copy.deepcopy(p) for p in master.props if p.name not in _SERIES_ONLY],
                copy.deepcopy(master.children),
            )
            rid = _time_like(
                ics.Prop("RECURRENCE-ID", start_prop.params, start_prop.value), instance, zones
            )
            dtstart = _time_like(start_prop, instance, zones)
            end_prop = master.get("DTEND") or ics.Prop("DTEND", start_prop.params, start_prop.value)
            dtend = _time_like(
                ics.Prop("DTEND", end_prop.params, end_prop.value), instance + length, zones
            )
            override.props[1:1] = [rid, dtstart, dtend]
            cal.children.insert(cal.children.index(master) + 1, override)
        _set_partstat(override, email, partstat)
    return "\r\n".join(_fold(line) for line in _serialize(cal)) + "\r\n"


def _drop_exdate(master: ics.Component, instance: datetime, zones: ics.Zones) -> bool:
    """Remove ``instance`` from the series' EXDATEs (an answer replaces an earlier decline);
    True when it was there."""
    found = False
    kept: list[ics.Prop] = []
    for p in master.props:
        if p.name != "EXDATE":
            kept.append(p)
            continue
        values = []
        for v in p.value.split(","):
            t = ics.parse_time(ics.Prop("EXDATE", p.params, v), zones)
            if t is not None and t.utc == instance:
                found = True
            else:
                values.append(v)
        if values:
            kept.append(ics.Prop(p.name, p.params, ",".join(values)))
    master.props = kept
    return found


def _instance(instance_id: str | None) -> datetime | None:
    if not instance_id:
        return None
    try:
        return parse_date(instance_id)
    except CalendarItemError:
        log.info("MeetingResponse InstanceId {i!r} is not a date: series answered", i=instance_id)
        return None


def uid_of(ics_text: str) -> str | None:
    for line in _unfold(ics_text):
        if line.upper().startswith("UID:"):
            return line[4:].strip() or None
    return None


class DavMeetingResponses:
    def __init__(self, accounts: Any) -> None:
        self.accounts = accounts

    async def _calendar(self, ctx: Any) -> tuple[Any, str]:
        client = self.accounts.client(ctx.credentials)
        folders = await DavFolderSource(client, FolderKind.CALENDAR).list_folders()
        return client, folders[0].backend_id

    async def _store(
        self,
        client: Any,
        href: str,
        item_id: str,
        text: str,
        answer: Any,
        email: str,
        instance: datetime | None = None,
    ) -> bool:
        """Put ``text`` with the user's answer at href+item_id (to one occurrence when
        ``instance`` is set); False when the event left the calendar (declined)."""
        member = href + item_id
        for _attempt in range(2):
            current = await client.get(member)
            base = current.data if current is not None and current.data else text
            one = (
                with_occurrence_partstat(base, email, answer.partstat, instance)
                if instance is not None
                else None
            )
            if one is None and answer.partstat == "DECLINED":
                if current is not None:
                    await client.delete(member)
                return False
            try:
                await client.put(
                    member,
                    one if one is not None else with_partstat(base, email, answer.partstat),
                    ICS_TYPE,
                    etag=(current.etag or "*") if current is not None else None,
                )
                return True
            except DavError as e:
                if e.status != 412:
                    raise
        return True

    async def _server_id(self, ctx: Any, href: str, item_id: str) -> str | None:
        collection = await ctx.runtime.state.find_collection(
            ctx.device.user, ctx.device.device_id, FolderKind.CALENDAR, href
        )
        return None if collection is None else f"{collection.collection_id}:{item_id}"

    async def record(
        self, ctx: Any, invitation_ics: str, answer: Any, instance_id: str | None
    ) -> str | None:
        uid = uid_of(invitation_ics)
        if uid is None:
            return None
        # The same name a device Add of this UID gets (DavCalendarSource.apply_add).
        item_id = f"{hashlib.sha1(uid.encode()).hexdigest()}.ics"
        try:
            client, href = await self._calendar(ctx)
            kept = await self._store(
                client,
                href,
                item_id,
                invitation_ics,
                answer,
                ctx.credentials.user.email,
                _instance(instance_id),
            )
        except (DavError, BackendUnavailable) as e:
            # The answer still goes to the organizer (the command's mail): only the calendar
            # copy is missing, e.g. a user without a CalDAV account.
            log.warn("the invitation {uid} could not be put in the calendar: {e}", uid=uid, e=e)
            return None
        return await self._server_id(ctx, href, item_id) if kept else None

    async def invitation_of(self, ctx: Any, server_id: str | None) -> str | None:
        """The calendar object behind a calendar ServerId, for the organizer's mail."""
        try:
            cid, item_id = parse_server_id(server_id)
        except InvalidServerId:
            return None
        collection = await ctx.runtime.state.get_collection(
            ctx.device.user, ctx.device.device_id, cid
        )
        if collection is None or collection.ref.kind is not FolderKind.CALENDAR:
            return None
        current = await self.accounts.client(ctx.credentials).get(
            collection.ref.backend_id + item_id
        )
        return current.data if current is not None else None

    async def record_calendar_item(
        self,
        ctx: Any,
        collection_id: str | None,
        server_id: str | None,
        answer: Any,
        instance_id: str | None,
    ) -> str | None:
        try:
            cid, item_id = parse_server_id(server_id)
        except InvalidServerId:
            raise ValueError(f"not a calendar item: {server_id!r}") from None
        collection = await ctx.runtime.state.get_collection(
            ctx.device.user, ctx.device.device_id, cid
        )
        if collection is None or collection.ref.kind is not FolderKind.CALENDAR:
            raise ValueError(f"not a calendar item: {server_id!r}")
        client = self.accounts.client(ctx.credentials)
        href = collection.ref.backend_id
        current = await client.get(href + item_id)
        if current is None:
            raise ValueError(f"no such event: {server_id!r}")
        await self._store(
            client,
            href,
            item_id,
            current.data or "",
            answer,
            ctx.credentials.user.email,
            _instance(instance_id),
        )
        return server_id
