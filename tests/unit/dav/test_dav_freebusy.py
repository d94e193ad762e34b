"""MergedFreeBusy (MS-ASCMD 2.2.3.99) from VFREEBUSY periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.dav.freebusy import _periods, merged_free_busy

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

PERIOD = st.tuples(st.integers(0, 600), st.integers(1, 300), st.sampled_from([0, 1, 2, 3]))


@settings(max_examples=150, deadline=None)
@given(periods=st.lists(PERIOD, max_size=6), minutes=st.integers(1, 600))
def test_each_half_hour_is_the_worst_period_touching_it(
    periods: list[tuple[int, int, int]], minutes: int
) -> None:
    start, end = T0, T0 + timedelta(minutes=minutes)
    spans = [
        (T0 + timedelta(minutes=a), T0 + timedelta(minutes=a + d), digit) for a, d, digit in periods
    ]
    merged = merged_free_busy(start, end, spans)
    assert len(merged) == -(-minutes // 30)  # one digit per started half-hour
    for i, digit in enumerate(merged):
        lo = start + timedelta(minutes=30 * i)
        hi = min(lo + timedelta(minutes=30), end)
        expected = max((d for s, e, d in spans if s < hi and e > lo), default=0)
        assert int(digit) == expected


def test_vfreebusy_periods_and_types() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nBEGIN:VFREEBUSY\r\n"
        "FREEBUSY:20261201T090000Z/20261201T100000Z,20261201T103000Z/PT30M\r\n"
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20261201T110000Z/20261201T113000Z\r\n"
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20261201T113000Z/20261201T120000Z\r\n"
        "FREEBUSY:garbage\r\n"
        "END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    spans = _periods(text)
    assert len(spans) == 4
    assert merged_free_busy(T0, T0 + timedelta(hours=4), spans) == "00220213"
