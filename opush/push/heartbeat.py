"""How long a Ping or a hanging Sync may wait, and what to answer when the device asks for
something else.

MS-ASCMD 2.2.3.88.1 (Ping HeartbeatInterval) and 2.2.3.88.2 (Sync HeartbeatInterval): the
valid range is implementation specific (Exchange: 60..3540 s); opush takes it from opush.ini
``push.heartbeat.min``/``push.heartbeat.max``.  Out of range, Ping answers Status 5 with the
limit in HeartbeatInterval (2.2.3.177.11), Sync answers Status 14 with the limit in Limit
(2.2.3.97).  Sync's Wait is in minutes, 1..59 (2.2.3.198); Wait and HeartbeatInterval
together are a protocol error, Sync Status 4.
"""

from __future__ import annotations

import attrs

#: MS-ASCMD 2.2.3.198: valid Wait values are 1 through 59 (minutes).
WAIT_MIN_MINUTES = 1
WAIT_MAX_MINUTES = 59
#: Exchange's range (MS-ASCMD 2.2.3.88.1 note <6>), opush.ini's defaults.
DEFAULT_MINIMUM = 60
DEFAULT_MAXIMUM = 3540


class HeartbeatOutOfRange(Exception):
    """The requested interval is outside the bounds; `limit` is the bound it crossed, in the
    unit of the request (seconds for HeartbeatInterval, minutes for Wait)."""

    def __init__(self, requested: int, limit: int) -> None:
        super().__init__(f"interval {requested} out of range (limit {limit})")
        self.requested = requested
        self.limit = limit


class WaitAndHeartbeat(Exception):
    """A Sync carried both Wait and HeartbeatInterval (MS-ASCMD 2.2.3.198: Status 4)."""


@attrs.frozen
class HeartbeatBounds:
    """Accepted heartbeat range in seconds (opush.ini push.heartbeat.min/max)."""

    minimum: int = DEFAULT_MINIMUM
    maximum: int = DEFAULT_MAXIMUM

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"bad heartbeat bounds {self.minimum}..{self.maximum}")

    def check(self, seconds: int) -> int:
        """`seconds` if accepted, else HeartbeatOutOfRange with the bound crossed."""
        if seconds < self.minimum:
            raise HeartbeatOutOfRange(seconds, self.minimum)
        if seconds > self.maximum:
            raise HeartbeatOutOfRange(seconds, self.maximum)
        return seconds

    @classmethod
    def from_config(cls, config: object) -> HeartbeatBounds:
        """From a loaded Config (duck-typed: ``config.opush.push_heartbeat_min/max``);
        defaults when absent."""
        section = getattr(config, "opush", None)
        low = getattr(section, "push_heartbeat_min", None)
        high = getattr(section, "push_heartbeat_max", None)
        minimum = low if isinstance(low, int) else DEFAULT_MINIMUM
        maximum = high if isinstance(high, int) else DEFAULT_MAXIMUM
        return cls(minimum, max(minimum, maximum))


def sync_wait_seconds(
    wait_minutes: int | None, heartbeat_seconds: int | None, bounds: HeartbeatBounds
) -> int | None:
    """Seconds a Sync may hang (None: it does not hang).

    Raises WaitAndHeartbeat for both elements (Sync Status 4), HeartbeatOutOfRange for an
    interval outside the bounds (Sync Status 14 with Limit = `exc.limit`, in minutes for
    Wait, seconds for HeartbeatInterval: MS-ASCMD 2.2.3.97).
    """
    if wait_minutes is not None and heartbeat_seconds is not None:
        raise WaitAndHeartbeat("Sync with both Wait and HeartbeatInterval")
    if heartbeat_seconds is not None:
        return bounds.check(heartbeat_seconds)
    if wait_minutes is None:
        return None
    # Wait is 1..59 minutes, and no longer than the server's own bounds allow.
    low = max(WAIT_MIN_MINUTES, -(-bounds.minimum // 60))
    high = min(WAIT_MAX_MINUTES, bounds.maximum // 60)
    if wait_minutes < low:
        raise HeartbeatOutOfRange(wait_minutes, low)
    if wait_minutes > high:
        raise HeartbeatOutOfRange(wait_minutes, max(high, WAIT_MIN_MINUTES))
    return wait_minutes * 60
