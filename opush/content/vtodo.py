"""iCalendar (RFC 5545) VTODO <-> ``TaskItem`` (MS-ASTASK), for CalDAV task lists.

Mapping (RFC 5545 3.6.2 and 3.8):

- SUMMARY / DESCRIPTION / CATEGORIES <-> Subject / Body / Categories;
- DTSTART / DUE <-> StartDate+UtcStartDate / DueDate+UtcDueDate.  A wall clock at midnight
  (what phones send for "due on that day") is written as a DATE, as other task clients do;
  any other time as UTC.  The offset between the device's wall clock and the instant is kept
  in ``X-OPUSH-START-OFFSET`` / ``X-OPUSH-DUE-OFFSET`` (minutes) so that both come back as
  the device wrote them; without it (a task from another client) a DATE is midnight UTC and
  a TZID time has its zone's wall clock.
- STATUS:COMPLETED, PERCENT-COMPLETE:100 and COMPLETED <-> Complete and DateCompleted;
- PRIORITY 1-4 / 5 (or none) / 6-9 <-> Importance high / normal / low (RFC 5545 3.8.1.9);
- CLASS <-> Sensitivity (personal is ``X-PERSONAL``, which other clients treat as PRIVATE,
  RFC 5545 3.8.1.3);
- RRULE <-> Recurrence (the patterns EAS has, as for events), ``X-OPUSH-REGENERATE`` and
  ``X-OPUSH-DEAD-OCCUR`` for MS-ASTASK's Regenerate / DeadOccur;
- VALARM with an absolute (or start/due relative) TRIGGER <-> ReminderSet/ReminderTime.

Reading never raises (an unreadable resource is skipped with a log line).  Writing a device
Change keeps what opush does not model (X- properties, RELATED-TO, CREATED, other clients'
properties) and increments SEQUENCE.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opush.content import ical
from opush.content.email import ics
from opush.content.tasks import HIGH, LOW, NORMAL, TaskItem, TaskRecurrence
from opush.log import logger

log = logger("opush.content.vtodo")

_CLASS_SENSITIVITY = {"PUBLIC": 0, "X-PERSONAL": 1, "PRIVATE": 2, "CONFIDENTIAL": 3}
_SENSITIVITY_CLASS = {0: "PUBLIC", 1: "X-PERSONAL", 2: "PRIVATE", 3: "CONFIDENTIAL"}
_PRIORITY = {HIGH: 1, NORMAL: 5, LOW: 9}
#: An offset beyond any zone's (UTC-12..UTC+14) is not trusted.
_MAX_OFFSET = 14 * 60

#: Properties this module writes; every other one of a stored VTODO survives a Change.
_MODELLED = frozenset(
    {
        "UID", "DTSTAMP", "SEQUENCE", "SUMMARY", "DESCRIPTION", "CATEGORIES", "DTSTART", "DUE",
        "DURATION", "COMPLETED", "STATUS", "PERCENT-COMPLETE", "PRIORITY", "CLASS", "RRULE",
        "LAST-MODIFIED", "X-OPUSH-START-OFFSET", "X-OPUSH-DUE-OFFSET", "X-OPUSH-REGENERATE",
        "X-OPUSH-DEAD-OCCUR",
    }
)  # fmt: skip


# ------------------------------------------------------------------------------ reading


def is_vtodo(text: str) -> bool:
    """Whether a calendar resource holds a task (a calendar may hold events and tasks)."""
    return "BEGIN:VTODO" in text.upper()


def parse_task(text: str) -> TaskItem | None:
    """The task of one CalDAV resource; None when it holds no VTODO."""
    try:
        return _parse(text)
    except Exception as e:  # one broken task must never break a Sync
        log.warn("unreadable iCalendar task ({error!r})", error=e)
        return None


def _offset(todo: ics.Component, name: str) -> int | None:
    value = (todo.value(name) or "").strip()
    try:
        minutes = int(value)
    except ValueError:
        return None
    return minutes if abs(minutes) <= _MAX_OFFSET else None


def _when(
    todo: ics.Component, name: str, offset_name: str, zones: ics.Zones
) -> tuple[datetime | None, datetime | None]:
    """(instant, wall clock) of DTSTART or DUE."""
    t = ics.parse_time(todo.get(name), zones)
    if t is None:
        return None, None
    offset = _offset(todo, offset_name)
    if t.all_day:
        local = t.utc.replace(tzinfo=None)
        utc = t.utc - timedelta(minutes=offset) if offset is not None else t.utc
        return utc, local
    if offset is not None:
        return t.utc, (t.utc + timedelta(minutes=offset)).replace(tzinfo=None)
    if t.zone is not None and t.zone.tz is not None:
        return t.utc, t.utc.astimezone(t.zone.tz).replace(tzinfo=None)
    return t.utc, t.utc.replace(tzinfo=None)


def _categories(todo: ics.Component) -> tuple[str, ...]:
    out: list[str] = []
    for prop in todo.all("CATEGORIES"):
        current, escaped = "", False
        for ch in prop.value:
            if escaped:
                current += "\\" + ch
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == ",":
                out.append(current)
                current = ""
            else:
                current += ch
        out.append(current)
    return tuple(c for c in (ics.unescape(v).strip() for v in out) if c)


def _importance(value: str | None) -> int:
    try:
        priority = int((value or "0").strip())
    except ValueError:
        return NORMAL
    if 1 <= priority <= 4:
        return HIGH
    if 6 <= priority <= 9:
        return LOW
    return NORMAL


def _reminder(
    todo: ics.Component, zones: ics.Zones, start: datetime | None, due: datetime | None
) -> datetime | None:
    for alarm in todo.find("VALARM"):
        trigger = alarm.get("TRIGGER")
        if trigger is None:
            continue
        if trigger.params.get("VALUE", "").upper() == "DATE-TIME":
            t = ics.parse_time(trigger, zones)
            if t is not None:
                return t.utc
            continue
        delta = ics._duration(trigger.value)
        if delta is None:
            continue
        # RFC 5545 3.8.6.3: relative to DTSTART, or to DUE with RELATED=END.
        base = due if trigger.params.get("RELATED", "START").upper() == "END" else start
        if base is not None:
            return base + delta
    return None


def _parse(text: str) -> TaskItem | None:
    root = ics.parse_ics(text)
    zones = ics.Zones(root)
    todos = list(root.find("VTODO"))
    todo = next((t for t in todos if t.get("RECURRENCE-ID") is None), None)
    if todo is None:
        return None
    start, start_local = _when(todo, "DTSTART", "X-OPUSH-START-OFFSET", zones)
    due, due_local = _when(todo, "DUE", "X-OPUSH-DUE-OFFSET", zones)
    if due is None and start is not None:
        duration = ics._duration(todo.value("DURATION"))
        if duration is not None:
            due = start + duration
            due_local = (start_local or start.replace(tzinfo=None)) + duration
    status = (todo.value("STATUS") or "").strip().upper()
    percent = (todo.value("PERCENT-COMPLETE") or "").strip()
    completed_t = ics.parse_time(todo.get("COMPLETED"), zones)
    complete = status == "COMPLETED" or completed_t is not None or percent == "100"
    if status in ("NEEDS-ACTION", "IN-PROCESS"):
        complete = False
    date_completed = None
    if complete:
        stamp = ics.parse_time(todo.get("LAST-MODIFIED") or todo.get("DTSTAMP"), zones)
        date_completed = (completed_t or stamp or ics.IcsTime(_EPOCH, False, None)).utc
    recurrence = None
    rrule = todo.value("RRULE")
    if rrule:
        first = start or due
        pattern = ical._rrule(rrule, first) if first is not None else None
        if pattern is None or first is None:
            log.info("RRULE {rule!r} of a task has no EAS form: not recurring", rule=rrule)
        else:
            recurrence = TaskRecurrence(
                pattern=pattern,
                start=first,
                regenerate=(todo.value("X-OPUSH-REGENERATE") or "").strip() == "1",
                dead_occur=(todo.value("X-OPUSH-DEAD-OCCUR") or "").strip() == "1",
            )
    description = todo.value("DESCRIPTION")
    summary = todo.value("SUMMARY")
    return TaskItem(
        subject=ics.unescape(summary) or None if summary else None,
        body=ics.unescape(description) or None if description else None,
        categories=_categories(todo),
        complete=complete,
        date_completed=date_completed,
        start=start,
        start_local=start_local,
        due=due,
        due_local=due_local,
        importance=_importance(todo.value("PRIORITY")),
        sensitivity=_CLASS_SENSITIVITY.get((todo.value("CLASS") or "PUBLIC").strip().upper(), 2),
        reminder=_reminder(todo, zones, start, due),
        recurrence=recurrence,
        uid=(todo.value("UID") or "").strip() or None,
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------ writing


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _offset_minutes(utc: datetime, local: datetime) -> int:
    return round((local - utc.replace(tzinfo=None)).total_seconds() / 60)


def _date_lines(
    name: str, offset_name: str, utc: datetime, local: datetime | None, as_date: bool
) -> list[str]:
    local = local if local is not None else utc.replace(tzinfo=None)
    offset = _offset_minutes(utc, local)
    line = f"{name};VALUE=DATE:{local:%Y%m%d}" if as_date else f"{name}:{_utc(utc)}"
    lines = [line]
    if offset and abs(offset) <= _MAX_OFFSET:
        lines.append(f"{offset_name}:{offset}")
    return lines


def _midnight(local: datetime | None, utc: datetime) -> bool:
    value = local if local is not None else utc.replace(tzinfo=None)
    if value.time() != datetime.min.time():
        return False
    # A wall clock more than a zone away from its instant cannot be a DATE read back exactly.
    return abs(_offset_minutes(utc, value)) <= _MAX_OFFSET


def format_task(
    item: TaskItem, *, uid: str, existing: str | None = None, now: datetime | None = None
) -> str:
    """The VCALENDAR of ``item``; ``existing`` (the resource a device Change replaces) keeps
    its unmodelled properties and its SEQUENCE, plus one."""
    stamp = now or datetime.now(UTC)
    sequence = 0
    kept: list[str] = []
    if existing:
        old = ics.parse_ics(existing)
        master = next((t for t in old.find("VTODO") if t.get("RECURRENCE-ID") is None), None)
        if master is not None:
            seq = (master.value("SEQUENCE") or "0").strip()
            sequence = int(seq) + 1 if seq.isdigit() else 1
            for p in master.props:
                if p.name not in _MODELLED:
                    params = "".join(f";{k}={ical._param(v)}" for k, v in p.params.items())
                    kept.append(f"{p.name}{params}:{p.value}")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//opush//EN", "CALSCALE:GREGORIAN"]
    lines += ["BEGIN:VTODO", f"UID:{uid}", f"DTSTAMP:{_utc(stamp)}", f"LAST-MODIFIED:{_utc(stamp)}"]
    lines.append(f"SEQUENCE:{sequence}")
    if item.subject:
        lines.append("SUMMARY:" + ical._escape(item.subject))
    if item.body:
        lines.append("DESCRIPTION:" + ical._escape(item.body))
    # RFC 5545 3.8.2.3: DUE and DTSTART have the same value type.
    dates = [(item.start, item.start_local), (item.due, item.due_local)]
    as_date = all(_midnight(local, utc) for utc, local in dates if utc is not None)
    if item.start is not None:
        lines += _date_lines(
            "DTSTART", "X-OPUSH-START-OFFSET", item.start, item.start_local, as_date
        )
    if item.due is not None:
        lines += _date_lines("DUE", "X-OPUSH-DUE-OFFSET", item.due, item.due_local, as_date)
    if item.complete:
        lines += ["STATUS:COMPLETED", "PERCENT-COMPLETE:100"]
        lines.append(f"COMPLETED:{_utc(item.date_completed or stamp)}")
    else:
        lines.append("STATUS:NEEDS-ACTION")
    lines.append(f"PRIORITY:{_PRIORITY.get(item.importance, 5)}")
    lines.append("CLASS:" + _SENSITIVITY_CLASS.get(item.sensitivity, "PUBLIC"))
    if item.categories:
        lines.append("CATEGORIES:" + ",".join(ical._escape(c) for c in item.categories))
    r = item.recurrence
    if r is not None:
        if item.start is None and item.due is None:
            # RRULE needs DTSTART (RFC 5545 3.8.5.3): the series' start.
            lines.append(f"DTSTART:{_utc(r.start)}")
        lines.append("RRULE:" + ical._recurrence_rule(r.pattern))
        if r.regenerate:
            lines.append("X-OPUSH-REGENERATE:1")
        if r.dead_occur:
            lines.append("X-OPUSH-DEAD-OCCUR:1")
    lines += kept
    if item.reminder is not None:
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:" + ical._escape(item.subject or "Reminder"),
            f"TRIGGER;VALUE=DATE-TIME:{_utc(item.reminder)}",
            "END:VALARM",
        ]
    lines += ["END:VTODO", "END:VCALENDAR"]
    return "\r\n".join(ical._fold(line) for line in lines) + "\r\n"
