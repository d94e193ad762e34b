"""16.x occurrence edits (Sync Change/Delete with InstanceId) as Exceptions of the series."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opush.content.calendar import (
    CalendarItem,
    CalendarItemError,
    CalException,
    Recurrence,
    with_occurrence,
)
from opush.wbxml import E, ns

CAL = ns.CALENDAR
SERIES = CalendarItem(
    start=datetime(2026, 12, 3, 9, tzinfo=UTC),
    end=datetime(2026, 12, 3, 10, tzinfo=UTC),
    subject="Weekly",
    recurrence=Recurrence(type=1, interval=1, day_of_week=16, occurrences=6),
)


def test_delete_one_occurrence() -> None:
    out = with_occurrence(SERIES, "20261210T090000Z", None)
    assert out is not None and out.subject == "Weekly" and out.recurrence == SERIES.recurrence
    assert out.exceptions == (
        CalException(exception_start=datetime(2026, 12, 10, 9, tzinfo=UTC), deleted=True),
    )


def test_change_one_occurrence_twice_keeps_the_first_edit() -> None:
    first = with_occurrence(
        SERIES,
        "2026-12-10T09:00:00.000Z",
        E(ns.AIRSYNC, "ApplicationData", E(CAL, "Subject", text="Moved"),
          E(CAL, "StartTime", text="20261210T140000Z"), E(CAL, "EndTime", text="20261210T150000Z")),
    )  # fmt: skip
    assert first is not None
    second = with_occurrence(
        first, "20261210T090000Z", E(ns.AIRSYNC, "ApplicationData", E(CAL, "Reminder", text=5))
    )
    assert second is not None
    (x,) = second.exceptions
    assert x.subject == "Moved" and x.reminder == 5
    assert x.start == datetime(2026, 12, 10, 14, tzinfo=UTC)
    # Deleting it afterwards replaces the change.
    third = with_occurrence(second, "20261210T090000Z", None)
    assert third is not None and [x.deleted for x in third.exceptions] == [True]


def test_exceptions_stay_in_order() -> None:
    out = with_occurrence(SERIES, "20261224T090000Z", None)
    assert out is not None
    out = with_occurrence(out, "20261210T090000Z", None)
    assert out is not None
    assert [x.exception_start.day for x in out.exceptions] == [10, 24]


def test_a_single_event_has_no_occurrences() -> None:
    single = CalendarItem(start=SERIES.start, end=SERIES.end)
    assert with_occurrence(single, "20261203T090000Z", None) is None


def test_an_instance_id_that_is_not_a_date() -> None:
    with pytest.raises(CalendarItemError):
        with_occurrence(SERIES, "next tuesday", None)
