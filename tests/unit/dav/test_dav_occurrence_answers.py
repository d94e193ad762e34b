"""Answers to one occurrence of a recurring invitation (MeetingResponse InstanceId) in the
CalDAV copy: only that occurrence changes, in whatever time form the series uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.dav.meetings import with_occurrence_partstat
from opush.content.ical import parse_event

ME = "alice@example.org"


def series(dtstart: str, dtend: str, extra: str = "", zone: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n" + zone + "BEGIN:VEVENT\r\n"
        "UID:weekly-1\r\nDTSTAMP:20261101T000000Z\r\n" + dtstart + "\r\n" + dtend + "\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=10\r\nSUMMARY:Weekly sync\r\n"
        "ORGANIZER;CN=Bob:mailto:bob@example.org\r\n"
        'ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN="Martin, Alice":mailto:'
        + ME
        + "\r\n"
        + extra
        + "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


OUTLOOK_ZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\n"
    "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)

FORMS = {
    "utc": series("DTSTART:20261203T090000Z", "DTEND:20261203T100000Z"),
    "iana": series(
        "DTSTART;TZID=Europe/Paris:20261203T100000", "DTEND;TZID=Europe/Paris:20261203T110000"
    ),
    "outlook-vtimezone": series(
        "DTSTART;TZID=W. Europe Standard Time:20261203T100000",
        "DTEND;TZID=W. Europe Standard Time:20261203T110000",
        zone=OUTLOOK_ZONE,
    ),
}
# The third occurrence, 17 December, 09:00 UTC in every form above.
THIRD = datetime(2026, 12, 17, 9, 0, tzinfo=UTC)


def my_status(text: str) -> list[str]:
    return [
        line.split("PARTSTAT=")[1].split(";")[0].split(":")[0]
        for line in text.replace("\r\n ", "").split("\r\n")
        if line.startswith("ATTENDEE") and line.lower().endswith(ME)
    ]


@pytest.mark.parametrize("form", list(FORMS))
def test_accepting_one_occurrence_overrides_only_it(form: str) -> None:
    out = with_occurrence_partstat(FORMS[form], ME, "ACCEPTED", THIRD)
    assert out is not None and "METHOD" not in out
    assert my_status(out) == ["NEEDS-ACTION", "ACCEPTED"]  # series, then the override
    item = parse_event(out, user_email=ME)
    assert item is not None and item.response_type == 5  # the series is still unanswered
    (x,) = item.exceptions
    assert x.exception_start == THIRD and not x.deleted
    assert x.start == THIRD and x.end == datetime(2026, 12, 17, 10, 0, tzinfo=UTC)
    assert "BEGIN:VALARM" in out.split("RECURRENCE-ID")[1]  # the alarm is the occurrence's too
    # Answering the same occurrence again edits the override, adds none.
    again = with_occurrence_partstat(out, ME, "TENTATIVE", THIRD)
    assert again is not None and my_status(again) == ["NEEDS-ACTION", "TENTATIVE"]
    assert again.count("RECURRENCE-ID") == 1


@pytest.mark.parametrize("form", list(FORMS))
def test_declining_one_occurrence_removes_it(form: str) -> None:
    accepted = with_occurrence_partstat(FORMS[form], ME, "ACCEPTED", THIRD)
    assert accepted is not None
    out = with_occurrence_partstat(accepted, ME, "DECLINED", THIRD)
    assert out is not None and "RECURRENCE-ID" not in out
    item = parse_event(out, user_email=ME)
    assert item is not None
    assert [(x.exception_start, x.deleted) for x in item.exceptions] == [(THIRD, True)]


def test_all_day_series() -> None:
    text = series("DTSTART;VALUE=DATE:20261203", "DTEND;VALUE=DATE:20261204")
    day = datetime(2026, 12, 17, tzinfo=UTC)
    out = with_occurrence_partstat(text, ME, "ACCEPTED", day)
    assert out is not None and "RECURRENCE-ID;VALUE=DATE:20261217" in out
    assert "DTEND;VALUE=DATE:20261218" in out


def test_a_single_event_is_left_to_the_series_answer() -> None:
    single = FORMS["utc"].replace("RRULE:FREQ=WEEKLY;COUNT=10\r\n", "")
    assert with_occurrence_partstat(single, ME, "ACCEPTED", THIRD) is None
    assert with_occurrence_partstat("garbage", ME, "ACCEPTED", THIRD) is None


def test_parameters_with_separators_stay_quoted() -> None:
    out = with_occurrence_partstat(FORMS["utc"], ME, "ACCEPTED", THIRD)
    assert out is not None and 'CN="Martin, Alice"' in out


@settings(max_examples=60, deadline=None)
@given(
    week=st.integers(0, 9),
    answers=st.lists(
        st.sampled_from(["ACCEPTED", "TENTATIVE", "DECLINED"]), min_size=1, max_size=4
    ),
    form=st.sampled_from(sorted(FORMS)),
)
def test_any_answer_sequence_leaves_one_consistent_occurrence(
    week: int, answers: list[str], form: str
) -> None:
    from datetime import timedelta

    instance = datetime(2026, 12, 3, 9, 0, tzinfo=UTC) + timedelta(weeks=week)
    text = FORMS[form]
    for answer in answers:
        out = with_occurrence_partstat(text, ME, answer, instance)
        assert out is not None
        text = out
    item = parse_event(text, user_email=ME)
    assert item is not None and item.recurrence is not None
    mine = [x for x in item.exceptions if x.exception_start == instance]
    assert len(mine) == 1
    if answers[-1] == "DECLINED":
        assert any(x.deleted for x in mine)
        assert text.count("RECURRENCE-ID") == 0
    else:
        assert text.count("RECURRENCE-ID") == 1
        assert my_status(text)[-1] == answers[-1]
