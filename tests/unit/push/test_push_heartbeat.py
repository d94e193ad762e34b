"""Heartbeat bounds: Ping Status 5 limits and Sync Wait/HeartbeatInterval (Status 14/4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.push.heartbeat import (
    HeartbeatBounds,
    HeartbeatOutOfRange,
    WaitAndHeartbeat,
    sync_wait_seconds,
)


@settings(max_examples=200)
@given(
    low=st.integers(1, 4000),
    span=st.integers(0, 4000),
    asked=st.integers(-10, 10000),
)
def test_interval_is_accepted_or_refused_with_the_crossed_bound(
    low: int, span: int, asked: int
) -> None:
    bounds = HeartbeatBounds(low, low + span)
    if low <= asked <= low + span:
        assert bounds.check(asked) == asked
    else:
        with pytest.raises(HeartbeatOutOfRange) as info:
            bounds.check(asked)
        assert info.value.limit == (low if asked < low else low + span)


def test_defaults_are_exchanges_range() -> None:
    bounds = HeartbeatBounds()
    assert (bounds.minimum, bounds.maximum) == (60, 3540)


def test_bounds_come_from_opush_ini() -> None:
    class Section:
        push_heartbeat_min = 120
        push_heartbeat_max = 900

    class Config:
        opush = Section()

    assert HeartbeatBounds.from_config(Config()) == HeartbeatBounds(120, 900)
    assert HeartbeatBounds.from_config(None) == HeartbeatBounds()


def test_inverted_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        HeartbeatBounds(100, 50)


def test_sync_wait_minutes_and_heartbeat_seconds() -> None:
    bounds = HeartbeatBounds(60, 3540)
    assert sync_wait_seconds(None, None, bounds) is None
    assert sync_wait_seconds(5, None, bounds) == 300
    assert sync_wait_seconds(None, 600, bounds) == 600
    with pytest.raises(WaitAndHeartbeat):
        sync_wait_seconds(5, 600, bounds)
    with pytest.raises(HeartbeatOutOfRange) as low:
        sync_wait_seconds(0, None, bounds)
    assert low.value.limit == 1
    with pytest.raises(HeartbeatOutOfRange) as high:
        sync_wait_seconds(60, None, bounds)
    assert high.value.limit == 59
    with pytest.raises(HeartbeatOutOfRange) as beat:
        sync_wait_seconds(None, 30, bounds)
    assert beat.value.limit == 60


def test_sync_wait_respects_narrower_server_bounds() -> None:
    bounds = HeartbeatBounds(300, 1200)
    assert sync_wait_seconds(5, None, bounds) == 300
    with pytest.raises(HeartbeatOutOfRange) as high:
        sync_wait_seconds(30, None, bounds)
    assert high.value.limit == 20
