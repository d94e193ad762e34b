"""Task items: EAS Tasks class (MS-ASTASK) <-> ``TaskItem``, both ways, per protocol version.

``TaskItem`` is what a device sends or receives (MS-ASTASK 2.2.2); `parse_item` reads an
``ApplicationData`` element, `render_item` writes its children.  The backends convert the
model to and from their own formats (``opush.content.vtodo`` for CalDAV VTODOs).

Dates: MS-ASTASK carries each date twice, the user's wall clock (StartDate, DueDate, written
as if it were UTC) and the instant (UtcStartDate, UtcDueDate), both MS-ASDTYPE 2.3 dateTime
(``2026-11-22T00:00:00.000Z``).  The model keeps both (``due_local`` naive, ``due`` aware UTC)
so that what a phone wrote comes back exactly; one missing is derived from the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import attrs
from lxml.etree import _Element

from opush.content.calendar import BodyOptions, Recurrence
from opush.content.email.htmltext import html_to_text
from opush.wbxml import E, ns

TASKS = ns.TASKS
BASE = ns.AIRSYNCBASE

#: MS-ASTASK 2.2.2.16 Importance.
LOW, NORMAL, HIGH = 0, 1, 2


class TaskItemError(ValueError):
    """The device's task cannot be understood (Sync answers the command with Status 6)."""


@attrs.frozen
class TaskRecurrence:
    """MS-ASTASK 2.2.2.21 Recurrence: the pattern (same fields as a calendar's, MS-ASCAL
    2.2.2.38), ``start`` of the series (2.2.2.26 Start, required), ``regenerate`` (2.2.2.20:
    the next task is due a period after the previous one is completed, not on the pattern)
    and ``dead_occur`` (2.2.2.9: the last occurrence)."""

    pattern: Recurrence
    start: datetime
    regenerate: bool = False
    dead_occur: bool = False


@attrs.frozen
class TaskItem:
    """One task as EAS carries it.  Aware datetimes are UTC instants; ``*_local`` naive
    wall-clock times of the user (MS-ASTASK 2.2.2.10 DueDate, 2.2.2.24 StartDate)."""

    subject: str | None = None
    body: str | None = None
    categories: tuple[str, ...] = ()
    complete: bool = False
    date_completed: datetime | None = None
    start: datetime | None = None
    start_local: datetime | None = None
    due: datetime | None = None
    due_local: datetime | None = None
    #: 0 low, 1 normal, 2 high.
    importance: int = NORMAL
    #: 0 normal, 1 personal, 2 private, 3 confidential (MS-ASTASK 2.2.2.23).
    sensitivity: int = 0
    #: The instant the reminder fires (ReminderSet 1 + ReminderTime); None: no reminder.
    reminder: datetime | None = None
    recurrence: TaskRecurrence | None = None
    uid: str | None = None


# ----------------------------------------------------------------------------- dates


def format_date(value: datetime) -> str:
    """MS-ASDTYPE 2.3 dateTime; a naive value (a wall clock) is written as if it were UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_date(text: str | None) -> datetime:
    """An aware UTC datetime, to the second (devices send .000 milliseconds)."""
    value = (text or "").strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ"):
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC, microsecond=0)
    raise TaskItemError(f"not an EAS date: {text!r}")


def _pair(utc_text: str | None, local_text: str | None) -> tuple[datetime | None, datetime | None]:
    """(instant, wall clock) from UtcXDate / XDate; one missing is taken from the other."""
    utc = parse_date(utc_text) if utc_text else None
    local = parse_date(local_text).replace(tzinfo=None) if local_text else None
    if utc is None and local is not None:
        utc = local.replace(tzinfo=UTC)
    if local is None and utc is not None:
        local = utc.replace(tzinfo=None)
    return utc, local


# ----------------------------------------------------------------------------- parse


def _find(parent: _Element, name: str, namespace: str = TASKS) -> _Element | None:
    return parent.find(f"{{{namespace}}}{name}")


def _text(parent: _Element, name: str, namespace: str = TASKS) -> str | None:
    el = _find(parent, name, namespace)
    return None if el is None else (el.text or "").strip()


def _int(parent: _Element, name: str) -> int | None:
    value = _text(parent, name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise TaskItemError(f"{name}: not a number {value!r}") from e


def _body(parent: _Element) -> str | None:
    """AirSyncBase:Body (plain text, or HTML made plain), or 2.5's Tasks:Body."""
    body = _find(parent, "Body", BASE)
    if body is not None:
        data = _find(body, "Data", BASE)
        text = data.text if data is not None else None
        if text and (_text(body, "Type", BASE) or "1") == "2":
            text = html_to_text(text)
        return text or None
    old = _find(parent, "Body")
    return (old.text or None) if old is not None else None


def _recurrence(el: _Element) -> TaskRecurrence:
    kind = _int(el, "Type")
    if kind not in (0, 1, 2, 3, 5, 6):
        raise TaskItemError(f"Recurrence Type {kind!r}")
    start = _text(el, "Start")
    if not start:
        raise TaskItemError("a task Recurrence needs a Start (MS-ASTASK 2.2.2.26)")
    until = _text(el, "Until")
    occurrences = _int(el, "Occurrences")
    return TaskRecurrence(
        pattern=Recurrence(
            type=kind,
            interval=min(max(_int(el, "Interval") or 1, 1), 999),
            until=parse_date(until) if until else None,
            occurrences=min(occurrences, 999) if occurrences else None,
            day_of_week=_int(el, "DayOfWeek") or None,
            day_of_month=_int(el, "DayOfMonth"),
            week_of_month=_int(el, "WeekOfMonth"),
            month_of_year=_int(el, "MonthOfYear"),
        ),
        start=parse_date(start),
        regenerate=_int(el, "Regenerate") == 1,
        dead_occur=_int(el, "DeadOccur") == 1,
    )


def parse_item(data: _Element) -> TaskItem:
    """An ``ApplicationData`` element of the Tasks class.  Raises TaskItemError."""
    complete = _int(data, "Complete") == 1
    completed_text = _text(data, "DateCompleted")
    date_completed = parse_date(completed_text) if completed_text else None
    start, start_local = _pair(_text(data, "UtcStartDate"), _text(data, "StartDate"))
    due, due_local = _pair(_text(data, "UtcDueDate"), _text(data, "DueDate"))
    reminder_text = _text(data, "ReminderTime")
    reminder = (
        parse_date(reminder_text) if reminder_text and _int(data, "ReminderSet") == 1 else None
    )
    categories: tuple[str, ...] = ()
    container = _find(data, "Categories")
    if container is not None:
        categories = tuple(
            (c.text or "").strip()
            for c in container.iterchildren(f"{{{TASKS}}}Category")
            if (c.text or "").strip()
        )
    importance = _int(data, "Importance")
    sensitivity = _int(data, "Sensitivity")
    recurrence_el = _find(data, "Recurrence")
    return TaskItem(
        subject=_text(data, "Subject") or None,
        body=_body(data),
        categories=categories,
        complete=complete,
        # MS-ASTASK 2.2.2.8: DateCompleted is required when Complete is 1.
        date_completed=date_completed if complete else None,
        start=start,
        start_local=start_local,
        due=due,
        due_local=due_local,
        importance=importance if importance in (LOW, NORMAL, HIGH) else NORMAL,
        sensitivity=sensitivity if sensitivity in (0, 1, 2, 3) else 0,
        reminder=reminder,
        recurrence=_recurrence(recurrence_el) if recurrence_el is not None else None,
    )


# ----------------------------------------------------------------------------- render


def _render_body(text: str | None, version: tuple[int, int], options: BodyOptions) -> _Element:
    value = text or ""
    if version < (12, 0):
        return E(TASKS, "Body", text=value)
    data = value.encode("utf-8")
    truncated = options.truncation is not None and len(data) > options.truncation
    if truncated:
        value = data[: options.truncation].decode("utf-8", "ignore")
    return E(
        BASE,
        "Body",
        E(BASE, "Type", text=1),
        E(BASE, "EstimatedDataSize", text=len(data)),
        E(BASE, "Truncated", text=1) if truncated else None,
        E(BASE, "Data", text=value) if value else None,
    )


def _render_recurrence(r: TaskRecurrence, version: tuple[int, int]) -> _Element:
    p = r.pattern
    el = E(TASKS, "Recurrence", E(TASKS, "Type", text=p.type))
    el.append(E(TASKS, "Start", text=format_date(r.start)))
    if p.until is not None:
        el.append(E(TASKS, "Until", text=format_date(p.until)))
    if p.occurrences is not None:
        el.append(E(TASKS, "Occurrences", text=p.occurrences))
    el.append(E(TASKS, "Interval", text=p.interval))
    for tag, value in (
        ("DayOfMonth", p.day_of_month),
        ("DayOfWeek", p.day_of_week),
        ("WeekOfMonth", p.week_of_month),
        ("MonthOfYear", p.month_of_year),
    ):
        if value is not None:
            el.append(E(TASKS, tag, text=value))
    el.append(E(TASKS, "Regenerate", text=1 if r.regenerate else 0))
    el.append(E(TASKS, "DeadOccur", text=1 if r.dead_occur else 0))
    if version >= (14, 0):
        el.append(E(TASKS, "CalendarType", text=1))  # Gregorian (MS-ASTASK 2.2.2.4)
    if version >= (14, 1) and p.type == 1:
        el.append(E(TASKS, "FirstDayOfWeek", text=1))  # Monday (MS-ASTASK 2.2.2.14)
    return el


def render_item(
    item: TaskItem, version: tuple[int, int], options: Iterable[_Element] = ()
) -> list[_Element]:
    """ApplicationData children, in the order Exchange sends them (MS-ASTASK 4.1)."""
    out: list[_Element] = [_render_body(item.body, version, BodyOptions.from_options(options))]
    out.append(E(TASKS, "Subject", text=item.subject or ""))
    out.append(E(TASKS, "Importance", text=item.importance))
    if item.start is not None:
        out.append(E(TASKS, "UtcStartDate", text=format_date(item.start)))
        out.append(E(TASKS, "StartDate", text=format_date(_local(item.start, item.start_local))))
    if item.due is not None:
        out.append(E(TASKS, "UtcDueDate", text=format_date(item.due)))
        out.append(E(TASKS, "DueDate", text=format_date(_local(item.due, item.due_local))))
    if item.categories:
        out.append(E(TASKS, "Categories", *(E(TASKS, "Category", text=c) for c in item.categories)))
    if item.recurrence is not None:
        out.append(_render_recurrence(item.recurrence, version))
    out.append(E(TASKS, "Complete", text=1 if item.complete else 0))
    if item.complete:
        # Required with Complete 1 (MS-ASTASK 2.2.2.8); a task completed elsewhere without
        # a date is dated by its due date, else its start, else the epoch.
        when = item.date_completed or item.due or item.start or datetime(1970, 1, 1, tzinfo=UTC)
        out.append(E(TASKS, "DateCompleted", text=format_date(when)))
    out.append(E(TASKS, "Sensitivity", text=item.sensitivity))
    if item.reminder is not None:
        out.append(E(TASKS, "ReminderTime", text=format_date(item.reminder)))
    out.append(E(TASKS, "ReminderSet", text=1 if item.reminder is not None else 0))
    return out


def _local(utc: datetime, local: datetime | None) -> datetime:
    return local if local is not None else utc.replace(tzinfo=None)
