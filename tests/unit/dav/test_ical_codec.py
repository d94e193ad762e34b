"""iCalendar <-> CalendarItem (opush.content.ical): hypothesis round trips, occurrence sets,
real-world events, merging a device Change into the stored event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opush.content.calendar import (
    Attendee,
    CalendarItem,
    CalException,
    Recurrence,
    eas_occurrences,
)
from opush.content.ical import format_event, parse_event

_text = (
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=25)
    .map(str.strip)
    .filter(bool)
)
_zones = st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"])


@st.composite
def recurrences(draw: st.DrawFn, start: datetime) -> Recurrence | None:
    kind = draw(st.sampled_from([None, 0, 1, 2, 3, 5, 6]))
    if kind is None:
        return None
    end = draw(
        st.one_of(
            st.tuples(st.integers(1, 30), st.none()),
            st.tuples(st.none(), st.integers(30, 400).map(lambda d: start + timedelta(days=d))),
        )
    )
    common = {"interval": draw(st.integers(1, 3)), "occurrences": end[0], "until": end[1]}
    if kind == 0:
        return Recurrence(type=0, **common)  # type: ignore[arg-type]
    if kind == 1:
        return Recurrence(type=1, day_of_week=draw(st.integers(1, 127)), **common)  # type: ignore[arg-type]
    if kind == 2:
        return Recurrence(type=2, day_of_month=draw(st.integers(1, 28)), **common)  # type: ignore[arg-type]
    day = 1 << draw(st.integers(0, 6))
    week = draw(st.integers(1, 5))
    if kind == 3:
        return Recurrence(type=3, day_of_week=day, week_of_month=week, **common)  # type: ignore[arg-type]
    month = draw(st.integers(1, 12))
    if kind == 5:
        return Recurrence(
            type=5, day_of_month=draw(st.integers(1, 28)), month_of_year=month, **common
        )  # type: ignore[arg-type]
    return Recurrence(type=6, day_of_week=day, week_of_month=week, month_of_year=month, **common)  # type: ignore[arg-type]


@st.composite
def items(draw: st.DrawFn) -> CalendarItem:
    zone = draw(_zones)
    start = draw(
        st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1))
    ).replace(second=0, microsecond=0, tzinfo=UTC)
    length = timedelta(minutes=draw(st.integers(0, 600)))
    attendees = tuple(
        Attendee(
            f"p{i}@example.org",
            draw(st.one_of(st.none(), _text)),
            draw(st.sampled_from([2, 3, 4, 5])),
            draw(st.sampled_from([1, 2, 3])),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    recurrence = draw(recurrences(start))
    return CalendarItem(
        start=start,
        end=start + length,
        timezone=zone,
        subject=draw(st.one_of(st.none(), _text)),
        location=draw(st.one_of(st.none(), _text)),
        body=draw(st.one_of(st.none(), _text)),
        organizer_name="Alice" if attendees else None,
        organizer_email="alice@example.org" if attendees else None,
        uid="uid-1",
        dtstamp=datetime(2026, 1, 1, tzinfo=UTC),
        reminder=draw(st.one_of(st.none(), st.integers(0, 10000))),
        sensitivity=draw(st.sampled_from([0, 2, 3])),
        busy_status=draw(st.sampled_from([0, 1, 2, 3])),
        categories=tuple(
            draw(st.lists(_text.filter(lambda t: "," not in t), max_size=3, unique=True))
        ),
        attendees=attendees,
        meeting_status=1 if attendees else 0,
        response_type=None,
        recurrence=recurrence,
        exceptions=(
            (CalException(exception_start=start + timedelta(days=7), deleted=True),)
            if recurrence is not None and draw(st.booleans())
            else ()
        ),
    )


@settings(max_examples=150, deadline=None)
@given(items())
def test_event_survives_icalendar(item: CalendarItem) -> None:
    text = format_event(item, uid="uid-1", user_email="alice@example.org")
    back = parse_event(text, user_email="alice@example.org")
    assert back == item
    if item.recurrence is not None:
        until = item.start + timedelta(days=3650)
        assert eas_occurrences(back, until) == eas_occurrences(item, until)


def test_all_day_birthday_and_unknown_rule() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:b1\r\nDTSTART;VALUE=DATE:20261124\r\n"
        "DTEND;VALUE=DATE:20261125\r\nSUMMARY:Birthday\r\nRRULE:FREQ=YEARLY\r\n"
        "TRANSP:TRANSPARENT\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    item = parse_event(text)
    assert item is not None and item.all_day and item.busy_status == 0
    assert item.recurrence is not None and (
        item.recurrence.type,
        item.recurrence.month_of_year,
    ) == (5, 11)
    odd = text.replace("FREQ=YEARLY", "FREQ=HOURLY")
    single = parse_event(odd)
    assert single is not None and single.recurrence is None
    assert parse_event("garbage") is None


def test_a_device_change_keeps_what_opush_does_not_model() -> None:
    stored = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:k1\r\nDTSTART:20261124T090000Z\r\n"
        "DTEND:20261124T100000Z\r\nSUMMARY:Old\r\nSEQUENCE:3\r\nX-APPLE-TRAVEL-ADVISORY:1\r\n"
        "CREATED:20260101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    item = parse_event(stored)
    assert item is not None
    new = format_event(
        CalendarItem(start=item.start, end=item.end, subject="New"), uid="k1", existing=stored
    )
    assert "SUMMARY:New" in new and "SEQUENCE:4" in new
    assert "X-APPLE-TRAVEL-ADVISORY:1" in new and "CREATED:20260101T000000Z" in new
