"""The EAS time zone blob: base64 of a Windows TIME_ZONE_INFORMATION (MS-ASDTYPE 2.7.4,
MS-ASCAL 2.2.2.42 / MS-ASEMAIL 2.2.2.77 TimeZone).

172 bytes: Bias (int32 minutes, UTC = local + Bias), StandardName (32 UTF-16 units),
StandardDate (SYSTEMTIME), StandardBias, DaylightName, DaylightDate, DaylightBias.  Transition
dates use the "day-in-month" form: wYear 0, wMonth, wDayOfWeek (0 = Sunday), wDay = occurrence
1..5 (5 = last), wHour/wMinute in local time before the change.
"""

from __future__ import annotations

import base64
import calendar
import struct
from datetime import UTC, datetime, timedelta, tzinfo

import attrs


@attrs.frozen
class Transition:
    month: int
    weekday: int  # 0 = Sunday (Windows)
    week: int  # 1..5, 5 = last
    hour: int
    minute: int = 0


@attrs.frozen
class TimeZoneRule:
    """Standard offset and, when the zone has DST, both yearly transitions."""

    standard_offset: int  # minutes east of UTC
    daylight_offset: int | None = None
    to_standard: Transition | None = None
    to_daylight: Transition | None = None
    standard_name: str = ""
    daylight_name: str = ""


UTC_RULE = TimeZoneRule(standard_offset=0, standard_name="UTC")


def _systemtime(t: Transition | None) -> bytes:
    if t is None:
        return b"\x00" * 16
    return struct.pack("<8H", 0, t.month, t.weekday, t.week, t.hour, t.minute, 0, 0)


def _name(text: str) -> bytes:
    raw = text.encode("utf-16-le")[:62]
    return raw + b"\x00" * (64 - len(raw))


def encode_rule(rule: TimeZoneRule) -> bytes:
    """The 172-byte structure for ``rule``."""
    bias = -rule.standard_offset
    has_dst = (
        rule.daylight_offset is not None
        and rule.to_daylight is not None
        and rule.to_standard is not None
    )
    daylight_bias = -(rule.daylight_offset - rule.standard_offset) if has_dst else 0  # type: ignore[operator]
    return (
        struct.pack("<i", bias)
        + _name(rule.standard_name)
        + _systemtime(rule.to_standard if has_dst else None)
        + struct.pack("<i", 0)
        + _name(rule.daylight_name)
        + _systemtime(rule.to_daylight if has_dst else None)
        + struct.pack("<i", daylight_bias)
    )


def encode_base64(rule: TimeZoneRule) -> str:
    return base64.b64encode(encode_rule(rule)).decode("ascii")


def _week_of(day: int, year: int, month: int) -> int:
    if day + 7 > calendar.monthrange(year, month)[1]:
        return 5
    return (day - 1) // 7 + 1


def _transition_at(local_before: datetime) -> Transition:
    weekday = (local_before.weekday() + 1) % 7  # Python Monday=0 -> Windows Sunday=0
    return Transition(
        month=local_before.month,
        weekday=weekday,
        week=_week_of(local_before.day, local_before.year, local_before.month),
        hour=local_before.hour,
        minute=local_before.minute,
    )


def _offset(tz: tzinfo, when: datetime) -> int:
    delta = when.astimezone(tz).utcoffset() or timedelta(0)
    return int(delta.total_seconds() // 60)


def rule_from_tzinfo(tz: tzinfo, year: int, name: str = "") -> TimeZoneRule:
    """Derive the yearly rule of a zone (zoneinfo or fixed) from its offsets in ``year``."""
    start = datetime(year, 1, 1, tzinfo=UTC)
    changes: list[tuple[datetime, int, int]] = []  # (UTC instant, old offset, new offset)
    previous = _offset(tz, start)
    probe = start
    step = timedelta(days=7)
    while probe.year == year:
        nxt = probe + step
        off = _offset(tz, nxt)
        if off != previous:
            lo, hi = probe, nxt  # bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if _offset(tz, mid) == previous:
                    lo = mid
                else:
                    hi = mid
            changes.append((hi.replace(second=0, microsecond=0), previous, off))
            previous = off
        probe = nxt
    if len(changes) < 2:
        return TimeZoneRule(standard_offset=previous, standard_name=name)
    to_dst = next((c for c in changes if c[2] > c[1]), None)
    to_std = next((c for c in changes if c[2] < c[1]), None)
    if to_dst is None or to_std is None:
        return TimeZoneRule(standard_offset=previous, standard_name=name)
    std_offset, dst_offset = to_std[2], to_dst[2]
    return TimeZoneRule(
        standard_offset=std_offset,
        daylight_offset=dst_offset,
        to_daylight=_transition_at(to_dst[0] + timedelta(minutes=to_dst[1])),
        to_standard=_transition_at(to_std[0] + timedelta(minutes=to_std[1])),
        standard_name=name,
        daylight_name=name,
    )
