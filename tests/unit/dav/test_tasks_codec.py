"""Tasks: ``TaskItem`` <-> EAS Tasks XML per version (opush.content.tasks) and <-> iCalendar
VTODO (opush.content.vtodo): hypothesis round trips, tasks written by other clients, a device
Change merged into the stored VTODO."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.content import tasks as tk
from opush.content import vtodo
from opush.content.calendar import Recurrence
from opush.wbxml import E, WbxmlError, decode, encode, ns

T = ns.TASKS
_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=25)
    .map(str.strip)
    .filter(bool)
)
_body = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\n\t"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() == s and s)
_instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
_offsets = st.integers(-48, 56).map(lambda q: q * 15)  # minutes, UTC-12..UTC+14


@st.composite
def dated(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """(instant, wall clock): a time of day, or a day's midnight (a phone's due date)."""
    offset = timedelta(minutes=draw(_offsets))
    if draw(st.booleans()):
        local = draw(_instants).replace(hour=0, minute=0, second=0, tzinfo=None)
        return (local - offset).replace(tzinfo=UTC), local
    utc = draw(_instants)
    return utc, (utc + offset).replace(tzinfo=None)


@st.composite
def patterns(draw: st.DrawFn, start: datetime) -> Recurrence:
    kind = draw(st.sampled_from([0, 1, 2, 3, 5, 6]))
    count, until = draw(
        st.one_of(
            st.tuples(st.integers(1, 30), st.none()),
            st.tuples(st.none(), st.integers(30, 400).map(lambda d: start + timedelta(days=d))),
        )
    )
    common: dict[str, object] = {
        "interval": draw(st.integers(1, 3)),
        "occurrences": count,
        "until": until,
    }
    day = 1 << draw(st.integers(0, 6))
    week = draw(st.integers(1, 5))
    month = draw(st.integers(1, 12))
    return {
        0: lambda: Recurrence(type=0, **common),  # type: ignore[arg-type]
        1: lambda: Recurrence(type=1, day_of_week=draw(st.integers(1, 127)), **common),  # type: ignore[arg-type]
        2: lambda: Recurrence(type=2, day_of_month=draw(st.integers(1, 28)), **common),  # type: ignore[arg-type]
        3: lambda: Recurrence(type=3, day_of_week=day, week_of_month=week, **common),  # type: ignore[arg-type]
        5: lambda: Recurrence(
            type=5, day_of_month=draw(st.integers(1, 28)), month_of_year=month, **common
        ),  # type: ignore[arg-type]
        6: lambda: Recurrence(
            type=6, day_of_week=day, week_of_month=week, month_of_year=month, **common
        ),  # type: ignore[arg-type]
    }[kind]()


@st.composite
def tasks(draw: st.DrawFn) -> tk.TaskItem:
    start = draw(st.none() | dated())
    due = draw(st.none() | dated())
    complete = draw(st.booleans())
    recurrence = None
    if start is not None and draw(st.booleans()):
        recurrence = tk.TaskRecurrence(
            pattern=draw(patterns(start[0])),
            start=start[0],
            regenerate=draw(st.booleans()),
            dead_occur=draw(st.booleans()),
        )
    return tk.TaskItem(
        subject=draw(st.none() | _text),
        body=draw(st.none() | _body),
        categories=tuple(draw(st.lists(_text, max_size=3, unique=True))),
        complete=complete,
        date_completed=draw(_instants) if complete else None,
        start=start[0] if start else None,
        start_local=start[1] if start else None,
        due=due[0] if due else None,
        due_local=due[1] if due else None,
        importance=draw(st.sampled_from([tk.LOW, tk.NORMAL, tk.HIGH])),
        sensitivity=draw(st.integers(0, 3)),
        reminder=draw(st.none() | _instants),
        recurrence=recurrence,
    )


def wire(item: tk.TaskItem, version: tuple[int, int]) -> tk.TaskItem:
    """The item as a device reads it: rendered, WBXML-encoded at ``version``, decoded."""
    el = E(ns.AIRSYNC, "ApplicationData", *tk.render_item(item, version))
    return tk.parse_item(decode(encode(el, ".".join(map(str, version)))))


@settings(max_examples=150, deadline=None)
@given(tasks(), st.sampled_from([(12, 1), (14, 1), (16, 1)]))
def test_eas_round_trip(item: tk.TaskItem, version: tuple[int, int]) -> None:
    assert wire(item, version) == item


@settings(max_examples=150, deadline=None)
@given(tasks())
def test_vtodo_round_trip(item: tk.TaskItem) -> None:
    text = vtodo.format_task(item, uid="u-1")
    assert vtodo.parse_task(text) == attrs.evolve(item, uid="u-1")


def test_encode_refuses_tags_a_version_lacks() -> None:
    # Tasks:CalendarType is 14.0+ (MS-ASWBXML code page 9): rendering leaves it out at 12.1.
    item = tk.TaskItem(
        subject="s",
        start=datetime(2026, 1, 5, tzinfo=UTC),
        recurrence=tk.TaskRecurrence(Recurrence(type=0), datetime(2026, 1, 5, tzinfo=UTC)),
    )
    at_12 = E(ns.AIRSYNC, "ApplicationData", *tk.render_item(item, (12, 1)))
    assert at_12.find(f".//{{{T}}}CalendarType") is None
    encode(at_12, "12.1")
    at_14 = E(ns.AIRSYNC, "ApplicationData", *tk.render_item(item, (14, 1)))
    assert at_14.find(f".//{{{T}}}CalendarType") is not None
    assert at_14.find(f".//{{{T}}}FirstDayOfWeek") is None  # weekly only
    with pytest.raises(WbxmlError):
        encode(at_14, "12.1")


def test_what_a_phone_sends() -> None:
    """An Android Add (MS-ASTASK 4.1-like): local and UTC dates, reminder, HTML body."""
    data = E(
        ns.AIRSYNC,
        "ApplicationData",
        E(ns.AIRSYNCBASE, "Body", E(ns.AIRSYNCBASE, "Type", text=2),
          E(ns.AIRSYNCBASE, "Data", text="<p>Buy <b>milk</b></p>")),
        E(T, "Subject", text="Shopping"),
        E(T, "Importance", text=2),
        E(T, "UtcDueDate", text="2026-11-23T23:00:00.000Z"),
        E(T, "DueDate", text="2026-11-24T00:00:00.000Z"),
        E(T, "Complete", text=0),
        E(T, "Sensitivity", text=0),
        E(T, "ReminderSet", text=1),
        E(T, "ReminderTime", text="2026-11-24T08:00:00.000Z"),
        E(T, "Categories", E(T, "Category", text="Home")),
    )  # fmt: skip
    item = tk.parse_item(data)
    assert item.subject == "Shopping" and item.body is not None and "milk" in item.body
    assert item.due == datetime(2026, 11, 23, 23, tzinfo=UTC)
    assert item.due_local == datetime(2026, 11, 24)
    assert item.importance == tk.HIGH and item.categories == ("Home",)
    text = vtodo.format_task(item, uid="x")
    assert "DUE;VALUE=DATE:20261124" in text and "PRIORITY:1" in text
    assert "STATUS:NEEDS-ACTION" in text and "TRIGGER;VALUE=DATE-TIME:20261124T080000Z" in text
    # Complete without DateCompleted: MS-ASTASK 2.2.2.8 requires it; we do not invent one.
    done = tk.parse_item(E(ns.AIRSYNC, "ApplicationData", E(T, "Complete", text=1)))
    assert done.complete and done.date_completed is None
    rendered = E(ns.AIRSYNC, "ApplicationData", *tk.render_item(done, (14, 1)))
    assert rendered.findtext(f"{{{T}}}DateCompleted")  # always sent with Complete 1
    with pytest.raises(tk.TaskItemError):
        tk.parse_item(E(ns.AIRSYNC, "ApplicationData", E(T, "Recurrence", E(T, "Type", text=0))))


THUNDERBIRD = """BEGIN:VCALENDAR\r
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN\r
VERSION:2.0\r
BEGIN:VTIMEZONE\r
TZID:Europe/Paris\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:19700329T020000\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
END:DAYLIGHT\r
END:VTIMEZONE\r
BEGIN:VTODO\r
CREATED:20261120T100000Z\r
LAST-MODIFIED:20261121T100000Z\r
DTSTAMP:20261121T100000Z\r
UID:tb-1\r
SUMMARY:Write the report\r
PRIORITY:3\r
STATUS:IN-PROCESS\r
PERCENT-COMPLETE:40\r
CLASS:CONFIDENTIAL\r
CATEGORIES:Work,Urgent\r
DTSTART;TZID=Europe/Paris:20261122T090000\r
DUE;TZID=Europe/Paris:20261125T180000\r
RELATED-TO:parent-1\r
X-MOZ-GENERATION:3\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
TRIGGER;RELATED=END:-PT15M\r
DESCRIPTION:Default Mozilla Description\r
END:VALARM\r
END:VTODO\r
END:VCALENDAR\r
"""


def test_a_thunderbird_task() -> None:
    item = vtodo.parse_task(THUNDERBIRD)
    assert item is not None
    assert item.subject == "Write the report" and item.uid == "tb-1"
    assert not item.complete and item.importance == tk.HIGH and item.sensitivity == 3
    assert item.categories == ("Work", "Urgent")
    assert item.start == datetime(2026, 11, 22, 8, tzinfo=UTC)
    assert item.start_local == datetime(2026, 11, 22, 9)
    assert item.due_local == datetime(2026, 11, 25, 18)
    assert item.reminder == datetime(2026, 11, 25, 16, 45, tzinfo=UTC)  # 15 min before DUE
    # The phone completes it: the stored task keeps what opush does not model.
    done = attrs.evolve(item, complete=True, date_completed=datetime(2026, 11, 24, 12, tzinfo=UTC))
    text = vtodo.format_task(done, uid="tb-1", existing=THUNDERBIRD)
    assert "RELATED-TO:parent-1" in text and "X-MOZ-GENERATION:3" in text
    assert "CREATED:20261120T100000Z" in text and "SEQUENCE:1" in text
    assert "STATUS:COMPLETED" in text and "COMPLETED:20261124T120000Z" in text
    assert "IN-PROCESS" not in text and "PERCENT-COMPLETE:40" not in text
    back = vtodo.parse_task(text)
    assert back is not None and back.complete and back.date_completed == done.date_completed


@pytest.mark.parametrize(
    ("props", "complete", "importance"),
    [
        ("STATUS:COMPLETED", True, tk.NORMAL),
        ("PERCENT-COMPLETE:100\r\nPRIORITY:9", True, tk.LOW),
        ("COMPLETED:20260101T000000Z\r\nPRIORITY:5", True, tk.NORMAL),
        ("STATUS:NEEDS-ACTION\r\nPRIORITY:0", False, tk.NORMAL),
        ("PRIORITY:junk", False, tk.NORMAL),
    ],
)
def test_completion_and_priority_from_other_clients(
    props: str, complete: bool, importance: int
) -> None:
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:o\r\nDTSTAMP:20260102T000000Z\r\n"
        f"SUMMARY:x\r\n{props}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
    item = vtodo.parse_task(text)
    assert item is not None and (item.complete, item.importance) == (complete, importance)
    if complete:
        assert item.date_completed is not None


def test_not_a_task() -> None:
    event = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:e\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    assert not vtodo.is_vtodo(event) and vtodo.parse_task(event) is None
    assert vtodo.parse_task("garbage") is None
