"""iCalendar (RFC 5545) VEVENT <-> ``CalendarItem`` (MS-ASCAL), for CalDAV calendars.

Reading uses the tolerant reader of ``opush.content.email.ics`` (events from every client on
earth; never raises: an unreadable resource is skipped with a log line).  One CalDAV resource
is one event: the master VEVENT, RECURRENCE-ID overrides (EAS Exceptions) and EXDATEs
(deleted occurrences).  RRULEs EAS can express (MS-ASCAL 2.2.2.38: daily, weekly, monthly by
date or nth weekday, yearly by date or nth weekday) become a Recurrence; others keep the first
occurrence only (logged).  Writing produces VERSION 2.0 with a VTIMEZONE for the item's zone
(its yearly rule), so recurrences keep their wall-clock time across DST; a device Change is
merged into the stored resource, keeping what opush does not model (X- properties, other
alarms, CREATED) and incrementing SEQUENCE.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opush.content.calendar import Attendee, CalendarItem, CalException, Recurrence, _zone_rule
from opush.content.email import ics
from opush.content.email.tzblob import TimeZoneRule, Transition
from opush.log import logger

log = logger("opush.content.ical")

_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # EAS bit i = 1 << i
_PARTSTAT_STATUS = {"ACCEPTED": 3, "DECLINED": 4, "TENTATIVE": 2, "NEEDS-ACTION": 5}
_STATUS_PARTSTAT = {
    3: "ACCEPTED",
    4: "DECLINED",
    2: "TENTATIVE",
    5: "NEEDS-ACTION",
    0: "NEEDS-ACTION",
}
_CLASS_SENSITIVITY = {"PUBLIC": 0, "PRIVATE": 2, "CONFIDENTIAL": 3}
_SENSITIVITY_CLASS = {0: "PUBLIC", 1: "PRIVATE", 2: "PRIVATE", 3: "CONFIDENTIAL"}
_BUSY = {"FREE": 0, "TENTATIVE": 1, "BUSY": 2, "OOF": 3, "WORKINGELSEWHERE": 4}
_BUSY_NAMES = {v: k for k, v in _BUSY.items()}


# ------------------------------------------------------------------------------ reading


def _mailto(value: str) -> str:
    v = value.strip()
    return v[7:] if v.lower().startswith("mailto:") else v


def _zone_name(t: ics.IcsTime | None) -> str:
    if t is None or t.zone is None or t.zone.tz is None:
        return "UTC"
    key = getattr(t.zone.tz, "key", None)
    return str(key) if key else "UTC"


def _rrule(value: str, start: datetime) -> Recurrence | None:
    parts = dict(p.split("=", 1) for p in value.strip().split(";") if "=" in p)
    parts = {k.upper(): v.upper() for k, v in parts.items()}
    freq = parts.get("FREQ")
    interval = int(parts.get("INTERVAL", "1") or 1)
    count = int(parts["COUNT"]) if parts.get("COUNT", "").isdigit() else None
    until = None
    if "UNTIL" in parts:
        t = ics.parse_time(ics.Prop("UNTIL", {}, parts["UNTIL"]), ics.Zones(ics.Component("ROOT")))
        until = t.utc if t else None
    byday = [d for d in parts.get("BYDAY", "").split(",") if d]
    setpos = parts.get("BYSETPOS")
    monthday = parts.get("BYMONTHDAY")
    month = parts.get("BYMONTH")
    if any("," in (v or "") for v in (monthday, month)):
        return None

    def rec(kind: int, **fields: int | None) -> Recurrence:
        return Recurrence(type=kind, interval=interval, until=until, occurrences=count, **fields)

    def mask(days: list[str]) -> int | None:
        bits = 0
        for d in days:
            name = d[-2:]
            if name not in _DAYS:
                return None
            bits |= 1 << _DAYS.index(name)
        return bits

    def nth(days: list[str]) -> tuple[int, int] | None:
        """(mask, week of month 1..5, 5 = last) of ``2TU`` / ``-1FR`` or BYSETPOS."""
        m = re.fullmatch(r"([+-]?\d)?(SU|MO|TU|WE|TH|FR|SA)", days[0]) if len(days) == 1 else None
        if m is None:
            if setpos and all(d in _DAYS for d in days):
                n = int(setpos)
                bits = mask(days)
                if bits and (1 <= n <= 4 or n == -1):
                    return bits, 5 if n == -1 else n
                return None
            return None
        n = int(m.group(1) or setpos or 0)
        if n == -1:
            n = 5
        if not 1 <= n <= 5:
            return None
        return 1 << _DAYS.index(m.group(2)), n

    if freq == "DAILY":
        if byday:
            bits = mask(byday)
            return rec(1, day_of_week=bits) if bits else None
        return rec(0)
    if freq == "WEEKLY":
        bits = mask(byday) if byday else 1 << ((start.weekday() + 1) % 7)
        return rec(1, day_of_week=bits) if bits else None
    if freq == "MONTHLY":
        if byday:
            found = nth(byday)
            if found is None:
                return None
            return rec(3, day_of_week=found[0], week_of_month=found[1])
        day = int(monthday) if monthday and monthday.isdigit() else start.day
        return rec(2, day_of_month=day)
    if freq == "YEARLY":
        month_of_year = int(month) if month and month.isdigit() else start.month
        if byday:
            found = nth(byday)
            if found is None:
                return None
            return rec(
                6,
                day_of_week=found[0],
                week_of_month=found[1],
                month_of_year=month_of_year,
            )
        day = int(monthday) if monthday and monthday.isdigit() else start.day
        return rec(5, day_of_month=day, month_of_year=month_of_year)
    return None


def _reminder(event: ics.Component) -> int | None:
    for alarm in event.find("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None or trigger.params.get("VALUE", "").upper() == "DATE-TIME":
            continue
        if trigger.params.get("RELATED", "START").upper() != "START":
            continue
        delta = ics._duration(trigger.value)
        if delta is not None and delta <= timedelta(0):
            return int(-delta.total_seconds() // 60)
    return None


def _text(event: ics.Component, name: str) -> str | None:
    v = event.value(name)
    return ics.unescape(v) if v else None


def _times(event: ics.Component, zones: ics.Zones) -> tuple[ics.IcsTime, datetime] | None:
    start = ics.parse_time(event.get("DTSTART"), zones)
    if start is None:
        return None
    end_t = ics.parse_time(event.get("DTEND"), zones)
    if end_t is not None:
        end = end_t.utc
    else:
        duration = ics._duration(event.value("DURATION"))
        default = timedelta(days=1) if start.all_day else timedelta(0)
        end = start.utc + (duration if duration is not None else default)
    return start, max(end, start.utc)


def _all_day_utc(t: ics.IcsTime) -> datetime:
    return t.utc  # DATE values are read as UTC midnights


def parse_event(ics_text: str, *, user_email: str | None = None) -> CalendarItem | None:
    """The event of one CalDAV resource; None when it holds no usable VEVENT."""
    try:
        return _parse(ics_text, user_email)
    except Exception as e:  # one broken event must never break a Sync
        log.warn("unreadable iCalendar event ({error!r})", error=e)
        return None


def _parse(text: str, user_email: str | None) -> CalendarItem | None:
    root = ics.parse_ics(text)
    zones = ics.Zones(root)
    events = list(root.find("VEVENT"))
    master = next((e for e in events if e.get("RECURRENCE-ID") is None), None)
    if master is None:
        return None
    times = _times(master, zones)
    if times is None:
        return None
    start_t, end = times
    me = (user_email or "").lower()
    organizer = master.get("ORGANIZER")
    attendees: list[Attendee] = []
    response_type = None
    for a in master.all("ATTENDEE"):
        email = _mailto(a.value)
        status = _PARTSTAT_STATUS.get(a.params.get("PARTSTAT", "NEEDS-ACTION").upper(), 0)
        role = a.params.get("ROLE", "REQ-PARTICIPANT").upper()
        cutype = a.params.get("CUTYPE", "INDIVIDUAL").upper()
        kind = 3 if cutype in ("RESOURCE", "ROOM") else (2 if role == "OPT-PARTICIPANT" else 1)
        attendees.append(Attendee(email, _unparam(a.params.get("CN")) or None, status, kind))
        if me and email.lower() == me:
            response_type = status
    organizer_email = _mailto(organizer.value) if organizer is not None else None
    if not attendees:
        meeting_status = 0
    elif organizer_email is None or (me and organizer_email.lower() == me):
        meeting_status = 1
    else:
        meeting_status = 3
    busy_name = (master.value("X-MICROSOFT-CDO-BUSYSTATUS") or "").strip().upper()
    if busy_name in _BUSY:
        busy = _BUSY[busy_name]
    else:
        busy = 0 if (master.value("TRANSP") or "").strip().upper() == "TRANSPARENT" else 2
    recurrence = None
    rrule = master.value("RRULE")
    if rrule:
        recurrence = _rrule(rrule, start_t.utc)
        if recurrence is None:
            log.info("RRULE {rule} has no EAS form: first occurrence only", rule=rrule)
    exceptions: list[CalException] = []
    if recurrence is not None:
        for prop in master.all("EXDATE"):
            for value in prop.value.split(","):
                t = ics.parse_time(ics.Prop("EXDATE", prop.params, value), zones)
                if t is not None:
                    exceptions.append(CalException(exception_start=t.utc, deleted=True))
        for override in events:
            rid = ics.parse_time(override.get("RECURRENCE-ID"), zones)
            if rid is None:
                continue
            o_times = _times(override, zones)

            def differs(value: object, inherited: object) -> object:
                # MS-ASCAL 2.2.2.19: an Exception carries what differs from the series.
                return None if value == inherited else value

            all_day = o_times[0].all_day if o_times else None
            exceptions.append(
                CalException(
                    exception_start=rid.utc,
                    start=o_times[0].utc if o_times else None,
                    end=o_times[1] if o_times else None,
                    subject=differs(_text(override, "SUMMARY"), _text(master, "SUMMARY")),  # type: ignore[arg-type]
                    location=differs(_text(override, "LOCATION"), _text(master, "LOCATION")),  # type: ignore[arg-type]
                    body=differs(_text(override, "DESCRIPTION"), _text(master, "DESCRIPTION")),  # type: ignore[arg-type]
                    all_day=differs(all_day, start_t.all_day),  # type: ignore[arg-type]
                    reminder=differs(_reminder(override), _reminder(master)),  # type: ignore[arg-type]
                )
            )
        exceptions.sort(key=lambda x: x.exception_start)
    dtstamp = ics.parse_time(master.get("DTSTAMP"), zones)
    categories = tuple(
        c.strip()
        for p in master.all("CATEGORIES")
        for c in ics.unescape(p.value).split(",")
        if c.strip()
    )
    return CalendarItem(
        start=start_t.utc,
        end=end,
        timezone=_zone_name(start_t),
        all_day=start_t.all_day,
        subject=_text(master, "SUMMARY"),
        location=_text(master, "LOCATION"),
        body=_text(master, "DESCRIPTION"),
        organizer_name=_unparam(organizer.params.get("CN")) if organizer is not None else None,
        organizer_email=organizer_email,
        uid=(master.value("UID") or "").strip() or None,
        dtstamp=dtstamp.utc if dtstamp else None,
        reminder=_reminder(master),
        sensitivity=_CLASS_SENSITIVITY.get((master.value("CLASS") or "PUBLIC").strip().upper(), 0),
        busy_status=busy,
        categories=categories,
        attendees=tuple(attendees),
        meeting_status=meeting_status,
        response_type=response_type,
        recurrence=recurrence,
        exceptions=tuple(exceptions),
    )


# ------------------------------------------------------------------------------ writing


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    out: list[str] = []
    current, size, limit = "", 0, 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append(current)
            current, size, limit = "", 0, 74
        current += ch
        size += n
    out.append(current)
    return "\r\n ".join(out)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _known_zone(name: str) -> ZoneInfo | None:
    if name in ("", "UTC"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(value: datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y%m%dT%H%M%S")


def _offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def _transition_rule(t: Transition) -> str:
    week = -1 if t.week == 5 else t.week
    return f"FREQ=YEARLY;BYMONTH={t.month};BYDAY={week}{_DAYS[t.weekday]}"


def _vtimezone(name: str, year: int) -> list[str]:
    """A VTIMEZONE from the zone's yearly rule (what EAS's TimeZone blob carries too)."""
    rule: TimeZoneRule = _zone_rule(name, year)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{name}"]
    if rule.daylight_offset is None or rule.to_daylight is None or rule.to_standard is None:
        lines += [
            "BEGIN:STANDARD",
            "DTSTART:19700101T000000",
            f"TZOFFSETFROM:{_offset(rule.standard_offset)}",
            f"TZOFFSETTO:{_offset(rule.standard_offset)}",
            "END:STANDARD",
        ]
    else:
        for kind, t, before, after in (
            ("DAYLIGHT", rule.to_daylight, rule.standard_offset, rule.daylight_offset),
            ("STANDARD", rule.to_standard, rule.daylight_offset, rule.standard_offset),
        ):
            lines += [
                f"BEGIN:{kind}",
                f"DTSTART:1970{t.month:02d}01T{t.hour:02d}{t.minute:02d}00",
                f"RRULE:{_transition_rule(t)}",
                f"TZOFFSETFROM:{_offset(before)}",
                f"TZOFFSETTO:{_offset(after)}",
                f"END:{kind}",
            ]
    lines.append("END:VTIMEZONE")
    return lines


def _when(name: str, value: datetime, item: CalendarItem, tz: ZoneInfo | None) -> str:
    if item.all_day:
        local = value.astimezone(tz) if tz is not None else value.astimezone(UTC)
        return f"{name};VALUE=DATE:{local.strftime('%Y%m%d')}"
    if tz is not None:
        return f"{name};TZID={item.timezone}:{_local(value, tz)}"
    return f"{name}:{_utc(value)}"


def _recurrence_rule(r: Recurrence) -> str:
    parts: list[str] = []
    days = [d for i, d in enumerate(_DAYS) if (r.day_of_week or 0) & (1 << i)]
    if r.type == 0:
        parts.append("FREQ=DAILY")
    elif r.type == 1:
        parts += ["FREQ=WEEKLY", f"BYDAY={','.join(days)}"] if days else ["FREQ=WEEKLY"]
    elif r.type == 2:
        parts += (
            ["FREQ=MONTHLY", f"BYMONTHDAY={r.day_of_month}"] if r.day_of_month else ["FREQ=MONTHLY"]
        )
    elif r.type in (3, 6):
        week = -1 if (r.week_of_month or 1) == 5 else (r.week_of_month or 1)
        parts.append("FREQ=MONTHLY" if r.type == 3 else "FREQ=YEARLY")
        if r.type == 6 and r.month_of_year:
            parts.append(f"BYMONTH={r.month_of_year}")
        if len(days) == 1:
            parts.append(f"BYDAY={week}{days[0]}")
        elif days:
            parts += [f"BYDAY={','.join(days)}", f"BYSETPOS={week}"]
    elif r.type == 5:
        parts.append("FREQ=YEARLY")
        if r.month_of_year:
            parts.append(f"BYMONTH={r.month_of_year}")
        if r.day_of_month:
            parts.append(f"BYMONTHDAY={r.day_of_month}")
    if r.interval and r.interval != 1:
        parts.append(f"INTERVAL={r.interval}")
    if r.occurrences:
        parts.append(f"COUNT={r.occurrences}")
    elif r.until is not None:
        parts.append(f"UNTIL={_utc(r.until)}")
    return ";".join(parts)


def _event_lines(
    item: CalendarItem,
    uid: str,
    tz: ZoneInfo | None,
    *,
    start: datetime,
    end: datetime,
    subject: str | None,
    location: str | None,
    body: str | None,
    reminder: int | None,
    sequence: int,
    recurrence_id: datetime | None = None,
) -> list[str]:
    lines = ["BEGIN:VEVENT", f"UID:{uid}", f"DTSTAMP:{_utc(item.dtstamp or datetime.now(UTC))}"]
    if recurrence_id is not None:
        lines.append(_when("RECURRENCE-ID", recurrence_id, item, tz))
    lines += [_when("DTSTART", start, item, tz), _when("DTEND", end, item, tz)]
    lines.append(f"SEQUENCE:{sequence}")
    if subject:
        lines.append("SUMMARY:" + _escape(subject))
    if location:
        lines.append("LOCATION:" + _escape(location))
    if body:
        lines.append("DESCRIPTION:" + _escape(body))
    lines.append("CLASS:" + _SENSITIVITY_CLASS.get(item.sensitivity, "PUBLIC"))
    lines.append("TRANSP:" + ("TRANSPARENT" if item.busy_status == 0 else "OPAQUE"))
    lines.append("X-MICROSOFT-CDO-BUSYSTATUS:" + _BUSY_NAMES.get(item.busy_status, "BUSY"))
    if item.categories:
        lines.append("CATEGORIES:" + ",".join(_escape(c) for c in item.categories))
    if item.organizer_email:
        cn = f";CN={_param(item.organizer_name)}" if item.organizer_name else ""
        lines.append(f"ORGANIZER{cn}:mailto:{item.organizer_email}")
    for a in item.attendees:
        role = {1: "REQ-PARTICIPANT", 2: "OPT-PARTICIPANT", 3: "NON-PARTICIPANT"}.get(
            a.type, "REQ-PARTICIPANT"
        )
        params = [f"PARTSTAT={_STATUS_PARTSTAT.get(a.status or 0, 'NEEDS-ACTION')}", f"ROLE={role}"]
        if a.type == 3:
            params.append("CUTYPE=RESOURCE")
        if a.name:
            params.append(f"CN={_param(a.name)}")
        lines.append(f"ATTENDEE;{';'.join(params)}:mailto:{a.email}")
    return lines


def _alarm(reminder: int | None, subject: str | None) -> list[str]:
    if reminder is None:
        return []
    return [
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:" + _escape(subject or "Reminder"),
        f"TRIGGER:-PT{reminder}M",
        "END:VALARM",
    ]


def _param(value: str | None) -> str:
    """A parameter value (RFC 5545 3.1, with RFC 6868 ^-escapes for what it cannot hold)."""
    v = (value or "").replace("^", "^^").replace("\n", "^n").replace('"', "^'")
    return f'"{v}"' if any(c in v for c in ";:,") else v


def _unparam(value: str | None) -> str | None:
    """RFC 6868: ``^^`` -> ``^``, ``^n`` -> newline, ``^'`` -> ``"``."""
    if value is None or "^" not in value:
        return value
    return re.sub(r"\^(\^|n|')", lambda m: {"^": "^", "n": "\n", "'": '"'}[m.group(1)], value)


def format_event(
    item: CalendarItem,
    *,
    uid: str,
    user_email: str | None = None,
    existing: str | None = None,
) -> str:
    """The VCALENDAR of ``item``; ``existing`` (the resource a device Change replaces) keeps
    its unmodelled properties and its SEQUENCE, plus one."""
    tz = _known_zone(item.timezone)
    sequence = 0
    kept: list[str] = []
    if existing:
        old = ics.parse_ics(existing)
        master = next((e for e in old.find("VEVENT") if e.get("RECURRENCE-ID") is None), None)
        if master is not None:
            seq = (master.value("SEQUENCE") or "0").strip()
            sequence = int(seq) + 1 if seq.isdigit() else 1
            for p in master.props:
                unmodelled = p.name.startswith("X-") and p.name != "X-MICROSOFT-CDO-BUSYSTATUS"
                if unmodelled or p.name in ("CREATED", "URL", "STATUS", "PRIORITY"):
                    params = "".join(f";{k}={_param(v)}" for k, v in p.params.items())
                    kept.append(f"{p.name}{params}:{p.value}")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//opush//EN", "CALSCALE:GREGORIAN"]
    if tz is not None and not item.all_day:
        lines += _vtimezone(item.timezone, item.start.astimezone(tz).year)
    master_lines = _event_lines(
        item, uid, tz, start=item.start, end=item.end, subject=item.subject,
        location=item.location, body=item.body, reminder=item.reminder, sequence=sequence,
    )  # fmt: skip
    if item.recurrence is not None:
        master_lines.append("RRULE:" + _recurrence_rule(item.recurrence))
        for x in item.exceptions:
            if x.deleted:
                master_lines.append(_when("EXDATE", x.exception_start, item, tz))
    master_lines.extend(kept)
    master_lines += _alarm(item.reminder, item.subject)
    master_lines.append("END:VEVENT")
    lines += master_lines
    if item.recurrence is not None:
        for x in item.exceptions:
            if x.deleted:
                continue
            length = item.end - item.start
            start = x.start or x.exception_start
            override = _event_lines(
                item, uid, tz, start=start, end=x.end or start + length,
                subject=x.subject if x.subject is not None else item.subject,
                location=x.location if x.location is not None else item.location,
                body=x.body if x.body is not None else item.body,
                reminder=x.reminder if x.reminder is not None else item.reminder,
                sequence=sequence, recurrence_id=x.exception_start,
            )  # fmt: skip
            override += _alarm(x.reminder if x.reminder is not None else item.reminder, x.subject)
            override.append("END:VEVENT")
            lines += override
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
