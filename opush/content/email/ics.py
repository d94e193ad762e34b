"""Meeting requests in mail: a small, tolerant iCalendar reader and the MS-ASEMAIL MeetingRequest.

Invitations come from every calendar on earth and many are not valid RFC 5545 (no DTSTAMP:
OP-217; broken dates, unknown TZIDs, garbage: OP-223).  The reader never raises; it keeps what it
understands, and :func:`meeting_request` returns None when there is no usable event, so the mail
still syncs as a plain message.
"""

from __future__ import annotations

import base64
import calendar
import re
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from opush.content.email import tzblob
from opush.content.email.headers import format_address
from opush.content.email.xml import AIRSYNCBASE, CALENDAR, EMAIL, EMAIL2, E, Element, sub

EPOCH_DTSTAMP = "1970-01-01T00:00:00.000Z"  # OP-217 default, as the Java server used


@attrs.define
class Prop:
    name: str
    params: dict[str, str]
    value: str


@attrs.define
class Component:
    name: str
    props: list[Prop] = attrs.field(factory=list)
    children: list[Component] = attrs.field(factory=list)

    def get(self, name: str) -> Prop | None:
        for p in self.props:
            if p.name == name:
                return p
        return None

    def all(self, name: str) -> list[Prop]:
        return [p for p in self.props if p.name == name]

    def value(self, name: str) -> str | None:
        p = self.get(name)
        return p.value if p is not None else None

    def find(self, name: str) -> Iterator[Component]:
        for c in self.children:
            if c.name == name:
                yield c
            yield from c.find(name)


_LINE = re.compile(r"\r\n|\n|\r")


def _split_line(line: str) -> Prop | None:
    # NAME *(;PARAM=VALUE) : VALUE, with quoted parameter values that may contain ':' and ';'.
    in_quote = False
    colon = -1
    for i, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == ":" and not in_quote:
            colon = i
            break
    if colon <= 0:
        return None
    head, value = line[:colon], line[colon + 1 :]
    pieces = re.findall(r'(?:[^;"]|"[^"]*")+', head)
    if not pieces:
        return None
    params: dict[str, str] = {}
    for piece in pieces[1:]:
        if "=" in piece:
            k, v = piece.split("=", 1)
            params[k.strip().upper()] = v.strip().strip('"')
    return Prop(pieces[0].strip().upper(), params, value)


def parse_ics(text: str) -> Component:
    """Parse iCalendar text into a tree under a synthetic ROOT; never raises."""
    root = Component("ROOT")
    stack = [root]
    lines: list[str] = []
    for raw in _LINE.split(text):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]
        else:
            lines.append(raw)
    for line in lines:
        if not line.strip():
            continue
        prop = _split_line(line)
        if prop is None:
            continue
        if prop.name == "BEGIN":
            comp = Component(prop.value.strip().upper())
            stack[-1].children.append(comp)
            stack.append(comp)
        elif prop.name == "END":
            name = prop.value.strip().upper()
            # Pop to the matching BEGIN; an unmatched END is ignored.
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].name == name:
                    del stack[depth:]
                    break
        else:
            stack[-1].props.append(prop)
    return root


def unescape(value: str) -> str:
    return (
        value.replace("\\n", "\n")
        .replace("\\N", "\n")
        .replace("\\,", ",")
        .replace("\\;", ";")
        .replace("\\\\", "\\")
    )


# --- Dates and zones -----------------------------------------------------------------------------

_DT = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})?(Z)?)?")


@attrs.frozen
class ZoneSource:
    """How to turn local times of one TZID into UTC, and its yearly rule for the blob."""

    tz: tzinfo | None
    rule: tzblob.TimeZoneRule | None


def _vtimezone_rule(comp: Component) -> tzblob.TimeZoneRule | None:
    std = next(comp.find("STANDARD"), None)
    dst = next(comp.find("DAYLIGHT"), None)
    if std is None:
        return None
    std_off = _offset_minutes(std.value("TZOFFSETTO"))
    if std_off is None:
        return None
    name = (comp.value("TZID") or "").strip()
    if dst is None:
        return tzblob.TimeZoneRule(standard_offset=std_off, standard_name=name)
    dst_off = _offset_minutes(dst.value("TZOFFSETTO"))
    to_std = _rrule_transition(std)
    to_dst = _rrule_transition(dst)
    if dst_off is None or to_std is None or to_dst is None:
        return tzblob.TimeZoneRule(standard_offset=std_off, standard_name=name)
    return tzblob.TimeZoneRule(
        standard_offset=std_off,
        daylight_offset=dst_off,
        to_standard=to_std,
        to_daylight=to_dst,
        standard_name=name,
        daylight_name=name,
    )


def _offset_minutes(value: str | None) -> int | None:
    m = re.match(r"^\s*([+-])(\d{2})(\d{2})", value or "")
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return -minutes if m.group(1) == "-" else minutes


_DAYS = {"SU": 0, "MO": 1, "TU": 2, "WE": 3, "TH": 4, "FR": 5, "SA": 6}


def _rrule_transition(comp: Component) -> tzblob.Transition | None:
    rrule = _rrule_parts(comp.value("RRULE") or "")
    start = _DT.match((comp.value("DTSTART") or "").strip())
    hour = int(start.group(4)) if start and start.group(4) else 2
    minute = int(start.group(5)) if start and start.group(5) else 0
    try:
        month = int(rrule.get("BYMONTH", start.group(2) if start else "0"))
    except ValueError:
        return None
    m = re.match(r"^([+-]?\d)?(SU|MO|TU|WE|TH|FR|SA)$", rrule.get("BYDAY", ""))
    if not m or not 1 <= month <= 12:
        return None
    nth = int(m.group(1) or "1")
    week = 5 if nth < 0 else max(1, min(nth, 5))
    return tzblob.Transition(
        month=month, weekday=_DAYS[m.group(2)], week=week, hour=hour, minute=minute
    )


def _rrule_parts(value: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for item in value.split(";"):
        if "=" in item:
            k, v = item.split("=", 1)
            parts[k.strip().upper()] = v.strip().upper()
    return parts


def _nth_weekday(year: int, t: tzblob.Transition) -> datetime:
    first_weekday, days = calendar.monthrange(year, t.month)
    first_sunday_based = (first_weekday + 1) % 7  # weekday of the 1st, Sunday = 0
    day = 1 + (t.weekday - first_sunday_based) % 7 + 7 * (t.week - 1)
    while day > days:
        day -= 7
    return datetime(year, t.month, day, t.hour, t.minute)


def _rule_offset(rule: tzblob.TimeZoneRule, local: datetime) -> int:
    if rule.daylight_offset is None or rule.to_daylight is None or rule.to_standard is None:
        return rule.standard_offset
    start = _nth_weekday(local.year, rule.to_daylight)
    end = _nth_weekday(local.year, rule.to_standard)
    if start < end:
        in_dst = start <= local < end
    else:  # southern hemisphere
        in_dst = not (end <= local < start)
    return rule.daylight_offset if in_dst else rule.standard_offset


class Zones:
    """TZID resolution: the calendar's VTIMEZONEs first, then the IANA database."""

    def __init__(self, root: Component) -> None:
        self._vtz: dict[str, tzblob.TimeZoneRule] = {}
        for comp in root.find("VTIMEZONE"):
            tzid = (comp.value("TZID") or "").strip()
            rule = _vtimezone_rule(comp)
            if tzid and rule is not None:
                self._vtz[tzid] = rule

    def source(self, tzid: str | None) -> ZoneSource | None:
        if not tzid:
            return None
        tzid = tzid.strip().strip('"')
        tz: tzinfo | None = None
        try:
            tz = ZoneInfo(tzid.lstrip("/"))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            tz = None
        rule = self._vtz.get(tzid)
        if tz is None and rule is None:
            return None
        return ZoneSource(tz=tz, rule=rule)


@attrs.frozen
class IcsTime:
    utc: datetime
    all_day: bool
    zone: ZoneSource | None


def parse_time(prop: Prop | None, zones: Zones) -> IcsTime | None:
    if prop is None:
        return None
    m = _DT.match(prop.value.strip())
    if not m:
        return None
    try:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if m.group(4) is None:
            return IcsTime(datetime(year, month, day, tzinfo=UTC), True, None)
        local = datetime(year, month, day, int(m.group(4)), int(m.group(5)), int(m.group(6) or 0))
    except ValueError:
        return None
    if m.group(7):
        return IcsTime(local.replace(tzinfo=UTC), False, None)
    zone = zones.source(prop.params.get("TZID"))
    if zone is None:
        return IcsTime(local.replace(tzinfo=UTC), False, None)  # floating: taken as UTC
    if zone.tz is not None:
        return IcsTime(local.replace(tzinfo=zone.tz).astimezone(UTC), False, zone)
    assert zone.rule is not None
    offset = _rule_offset(zone.rule, local)
    return IcsTime((local - timedelta(minutes=offset)).replace(tzinfo=UTC), False, zone)


def _duration(value: str | None) -> timedelta | None:
    m = re.match(
        r"^([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$",
        (value or "").strip(),
    )
    if not m:
        return None
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups()[1:])
    delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return -delta if m.group(1) == "-" else delta


def eas_datetime(value: datetime) -> str:
    """MS-ASDTYPE 2.3 dateTime as Exchange writes it: 2014-09-24T07:48:51.828Z."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# --- MeetingRequest ------------------------------------------------------------------------------


@attrs.frozen
class Invitation:
    """What the mail converter needs from a text/calendar part."""

    method: str
    message_class: str
    element: Element


_CLASS_BY_METHOD = {
    "REQUEST": "IPM.Schedule.Meeting.Request",
    "CANCEL": "IPM.Schedule.Meeting.Canceled",
}
_REPLY_CLASS = {
    "ACCEPTED": "IPM.Schedule.Meeting.Resp.Pos",
    "DECLINED": "IPM.Schedule.Meeting.Resp.Neg",
    "TENTATIVE": "IPM.Schedule.Meeting.Resp.Tent",
}
_SENSITIVITY = {"PUBLIC": 0, "PRIVATE": 2, "CONFIDENTIAL": 3}
_BUSY = {"FREE": 0, "TENTATIVE": 1, "BUSY": 2, "OOF": 3}
_WEEKDAY_BITS = {"SU": 1, "MO": 2, "TU": 4, "WE": 8, "TH": 16, "FR": 32, "SA": 64}


def global_obj_id(uid: str) -> str:
    """MS-ASEMAIL 2.2.2.37 GlobalObjId, vCal-Uid form, base64 as Exchange sends it."""
    class_id = bytes.fromhex("040000008200E00074C5B7101A82E008")
    data = b"vCal-Uid" + b"\x01\x00\x00\x00" + uid.encode("utf-8") + b"\x00"
    blob = class_id + b"\x00" * 4 + b"\x00" * 8 + b"\x00" * 8 + struct.pack("<I", len(data)) + data
    return base64.b64encode(blob).decode("ascii")


def _recurrence(rrule_value: str, start: IcsTime, version: tuple[int, int]) -> Element | None:
    rr = _rrule_parts(rrule_value)
    freq = rr.get("FREQ")
    local = start.utc
    if start.zone is not None and start.zone.tz is not None:
        local = start.utc.astimezone(start.zone.tz)
    rec = E(EMAIL, "Recurrence")
    byday = [d for d in rr.get("BYDAY", "").split(",") if d]
    day_bits = 0
    nth: int | None = None
    for d in byday:
        m = re.match(r"^([+-]?\d)?(SU|MO|TU|WE|TH|FR|SA)$", d)
        if m:
            day_bits |= _WEEKDAY_BITS[m.group(2)]
            if m.group(1):
                nth = int(m.group(1))
    if nth is None and rr.get("BYSETPOS", "").lstrip("+-").isdigit():
        nth = int(rr["BYSETPOS"])
    # MS-ASEMAIL 2.2.2.70 Type: 0 daily, 1 weekly, 2 monthly (day), 3 monthly (nth), 5 yearly,
    # 6 yearly (nth).
    if freq == "DAILY":
        rec_type = 0
    elif freq == "WEEKLY":
        rec_type = 1
        if not day_bits:  # OP-240: the weekday of the start
            day_bits = _WEEKDAY_BITS[("MO", "TU", "WE", "TH", "FR", "SA", "SU")[local.weekday()]]
    elif freq == "MONTHLY":
        rec_type = 3 if day_bits and nth is not None else 2
    elif freq == "YEARLY":
        rec_type = 6 if day_bits and nth is not None else 5
    else:
        return None
    sub(rec, EMAIL, "Type", rec_type)
    until = rr.get("UNTIL")
    count = rr.get("COUNT")
    if until:
        m = _DT.match(until)
        if m:
            try:
                y, mo, dd = int(m.group(1)), int(m.group(2)), int(m.group(3))
                hh, mm, ss = int(m.group(4) or 23), int(m.group(5) or 59), int(m.group(6) or 59)
                u = datetime(y, mo, dd, hh, mm, ss, tzinfo=UTC)
                sub(rec, EMAIL, "Until", eas_datetime(u))
            except ValueError:
                pass
    elif count and count.isdigit():
        sub(rec, EMAIL, "Occurrences", int(count))
    interval = rr.get("INTERVAL", "")
    # OP-243: no INTERVAL means 1.
    sub(rec, EMAIL, "Interval", max(int(interval), 1) if interval.isdigit() else 1)
    if rec_type in (1, 3, 6) and day_bits:
        sub(rec, EMAIL, "DayOfWeek", day_bits)
    if rec_type in (2, 5):
        bymd = rr.get("BYMONTHDAY", "")
        sub(rec, EMAIL, "DayOfMonth", int(bymd) if bymd.isdigit() else local.day)
    if rec_type in (3, 6) and nth is not None:
        sub(rec, EMAIL, "WeekOfMonth", 5 if nth < 0 else min(nth, 5))
    if rec_type in (5, 6):
        bymonth = rr.get("BYMONTH", "")
        sub(rec, EMAIL, "MonthOfYear", int(bymonth) if bymonth.isdigit() else local.month)
    return E(EMAIL, "Recurrences", rec)


def meeting_request(ics_text: str, version: tuple[int, int]) -> Invitation | None:
    """MS-ASEMAIL 2.2.2.48 MeetingRequest of an invitation; None if not one or unusable."""
    root = parse_ics(ics_text)
    vcal = next(root.find("VCALENDAR"), root)
    method = (vcal.value("METHOD") or "").strip().upper()
    events = list(vcal.find("VEVENT"))
    if not events:
        return None
    event = next((e for e in events if e.get("RECURRENCE-ID") is None), events[0])
    if method == "REPLY":
        att = event.get("ATTENDEE")
        partstat = (att.params.get("PARTSTAT", "") if att else "").upper()
        cls = _REPLY_CLASS.get(partstat)
        if cls is None:
            return None
        # Replies carry no MeetingRequest (MS-ASEMAIL 2.2.2.48: only to attendees).
        return Invitation(method=method, message_class=cls, element=E(EMAIL, "MeetingRequest"))
    message_class = _CLASS_BY_METHOD.get(method)
    if message_class is None:
        return None
    zones = Zones(vcal)
    start = parse_time(event.get("DTSTART"), zones)
    if start is None:
        return None
    end = parse_time(event.get("DTEND"), zones)
    end_utc = end.utc if end is not None else None
    if end_utc is None:
        dur = _duration(event.value("DURATION"))
        end_utc = start.utc + (
            dur if dur is not None else timedelta(days=1 if start.all_day else 0)
        )
    mr = E(EMAIL, "MeetingRequest")
    sub(mr, EMAIL, "AllDayEvent", 1 if start.all_day else 0)
    sub(mr, EMAIL, "StartTime", eas_datetime(start.utc))
    stamp = parse_time(event.get("DTSTAMP"), zones)
    sub(mr, EMAIL, "DtStamp", eas_datetime(stamp.utc) if stamp else EPOCH_DTSTAMP)  # OP-217
    sub(mr, EMAIL, "EndTime", eas_datetime(end_utc))
    recurrence_id = parse_time(event.get("RECURRENCE-ID"), zones)
    rrule = event.value("RRULE")
    instance_type = 1 if rrule else (3 if recurrence_id is not None else 0)
    sub(mr, EMAIL, "InstanceType", instance_type)
    location = unescape(event.value("LOCATION") or "").strip()
    if location:
        if version >= (16, 0):
            loc = E(AIRSYNCBASE, "Location")
            sub(loc, AIRSYNCBASE, "DisplayName", location)
            mr.append(loc)
        else:
            sub(mr, EMAIL, "Location", location)
    organizer = event.get("ORGANIZER")
    if organizer is not None:
        addr = re.sub(r"^mailto:", "", organizer.value.strip(), flags=re.IGNORECASE)
        if addr:
            sub(mr, EMAIL, "Organizer", format_address(organizer.params.get("CN", ""), addr))
    if recurrence_id is not None:
        sub(mr, EMAIL, "RecurrenceId", eas_datetime(recurrence_id.utc))
    alarm = next(event.find("VALARM"), None)
    if alarm is not None:
        trigger = _duration(alarm.value("TRIGGER"))
        if trigger is not None and trigger <= timedelta(0):
            # MS-ASEMAIL 2.2.2.63 Reminder: seconds before the start.
            sub(mr, EMAIL, "Reminder", int(-trigger.total_seconds()))
    rsvp = any(a.params.get("RSVP", "").upper() == "TRUE" for a in event.all("ATTENDEE"))
    sub(mr, EMAIL, "ResponseRequested", 1 if (rsvp or method == "REQUEST") else 0)
    if rrule:
        rec = _recurrence(rrule, start, version)
        if rec is not None:
            mr.append(rec)
    sub(mr, EMAIL, "Sensitivity", _SENSITIVITY.get((event.value("CLASS") or "").upper(), 0))
    busy = (event.value("X-MICROSOFT-CDO-INTENDEDSTATUS") or "").strip().upper()
    if busy in _BUSY:
        busy_status = _BUSY[busy]
    elif (event.value("TRANSP") or "").strip().upper() == "TRANSPARENT":
        busy_status = 0
    else:
        busy_status = 2
    sub(mr, EMAIL, "BusyStatus", busy_status)
    sub(mr, EMAIL, "TimeZone", tzblob.encode_base64(_zone_rule(start)))
    uid = (event.value("UID") or "").strip()
    if version < (16, 0):
        sub(mr, EMAIL, "GlobalObjId", global_obj_id(uid))
    if version >= (14, 0):
        disallow = (event.value("X-MICROSOFT-DISALLOW-COUNTER") or "").strip().upper() == "TRUE"
        sub(mr, EMAIL, "DisallowNewTimeProposal", 1 if disallow else 0)
    if version >= (14, 1):
        # MS-ASEMAIL 2.2.2.47 MeetingMessageType: 1 = initial request, 0 = silent/other.
        sub(mr, EMAIL2, "MeetingMessageType", 1 if method == "REQUEST" else 0)
    if version >= (16, 0) and uid:
        sub(mr, CALENDAR, "UID", uid)
    return Invitation(method=method, message_class=message_class, element=mr)


def _zone_rule(start: IcsTime) -> tzblob.TimeZoneRule:
    zone = start.zone
    if zone is None:
        return tzblob.UTC_RULE
    if zone.rule is not None:
        return zone.rule
    assert zone.tz is not None
    return tzblob.rule_from_tzinfo(zone.tz, start.utc.year, str(zone.tz))
