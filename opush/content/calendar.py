"""Calendar items: EAS (MS-ASCAL) <-> OBM events (obm-sync XML records), both ways.

Three layers, each usable alone:

- `CalendarItem` is what a device sends or receives (MS-ASCAL 2.2.2), parsed from and rendered
  to ``ApplicationData`` children (`parse_item`, `render_item`);
- `to_event` / `from_event` convert it to and from `opush.backends.obmsync.xml.Event`;
- `eas_occurrences` / `obm_occurrences` expand a recurrence on either side (the conversions'
  tests check both expansions agree), and `olson_zone` / `timezone_blob` map the EAS
  TIME_ZONE_INFORMATION blob (MS-ASDTYPE 2.7.4) to Olson zones and back.

Where OBM cannot hold what EAS says, the conversion picks the nearest value and says so:
Sensitivity Personal becomes private (OBM privacy has public/private/confidential), BusyStatus
tentative/out of office become busy (OBM opacity is opaque/transparent), only the first
category is kept (one category per OBM event), an Occurrences count becomes the date of the
last occurrence (OBM recurrences end at a date).
"""

from __future__ import annotations

import base64
import binascii
import calendar as _calendar
import functools
import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import attrs
from lxml import etree
from lxml.etree import _Element

from opush.backends.obmsync import xml as obm
from opush.content.email.htmltext import html_to_text
from opush.content.email.tzblob import (
    TimeZoneRule,
    Transition,
    encode_base64,
    rule_from_tzinfo,
)
from opush.wbxml import E, ns

CAL = ns.CALENDAR
BASE = ns.AIRSYNCBASE

#: OBM's default zone (an invalid ``tz`` is read as Europe/Paris by obm-sync, research §2.3).
DEFAULT_ZONE = "Europe/Paris"


class CalendarItemError(ValueError):
    """The device's item cannot be understood (Sync answers the command with Status 6)."""


# ----------------------------------------------------------------------------------- model


@attrs.frozen
class Attendee:
    """MS-ASCAL 2.2.2.3: ``status`` AttendeeStatus (0 unknown, 2 tentative, 3 accepted,
    4 declined, 5 not responded), ``type`` AttendeeType (1 required, 2 optional, 3 resource)."""

    email: str
    name: str | None = None
    status: int | None = None
    type: int = 1


@attrs.frozen
class Recurrence:
    """MS-ASCAL 2.2.2.38 Recurrence.  ``type``: 0 daily, 1 weekly, 2 monthly (day of month),
    3 monthly (nth weekday), 5 yearly (date), 6 yearly (nth weekday).  ``day_of_week`` is the
    EAS bit mask (1 Sunday, 2 Monday, ... 64 Saturday); ``week_of_month`` 5 = last."""

    type: int
    interval: int = 1
    until: datetime | None = None
    occurrences: int | None = None
    day_of_week: int | None = None
    day_of_month: int | None = None
    week_of_month: int | None = None
    month_of_year: int | None = None


@attrs.frozen
class CalException:
    """One changed or deleted occurrence (MS-ASCAL 2.2.2.19 Exception); ``exception_start``
    is the original start of the occurrence; None fields inherit the series' values."""

    exception_start: datetime
    deleted: bool = False
    start: datetime | None = None
    end: datetime | None = None
    subject: str | None = None
    location: str | None = None
    body: str | None = None
    all_day: bool | None = None
    reminder: int | None = None
    busy_status: int | None = None
    sensitivity: int | None = None


@attrs.frozen
class CalendarItem:
    """One calendar item as EAS carries it; instants are aware UTC datetimes, ``timezone``
    the Olson zone its wall-clock times (all-day days, recurrences) live in."""

    start: datetime
    end: datetime
    timezone: str = "UTC"
    all_day: bool = False
    subject: str | None = None
    location: str | None = None
    body: str | None = None
    organizer_name: str | None = None
    organizer_email: str | None = None
    uid: str | None = None
    dtstamp: datetime | None = None
    #: Minutes before the start; None: no reminder.
    reminder: int | None = None
    #: 0 normal, 1 personal, 2 private, 3 confidential.
    sensitivity: int = 0
    #: 0 free, 1 tentative, 2 busy, 3 out of office (4 working elsewhere, 16.0).
    busy_status: int = 2
    categories: tuple[str, ...] = ()
    attendees: tuple[Attendee, ...] = ()
    #: 0 appointment, 1 meeting (the user organizes it), 3 meeting received.
    meeting_status: int = 0
    #: The user's own answer to a received meeting (14.0 ResponseType).
    response_type: int | None = None
    recurrence: Recurrence | None = None
    exceptions: tuple[CalException, ...] = ()


# ----------------------------------------------------------------------------- date formats


def format_compact(when: datetime) -> str:
    """MS-ASCAL dates: ``20120131T090000Z`` (MS-ASDTYPE 2.3 compact form)."""
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_date(text: str | None) -> datetime:
    """Compact (``20120131T090000Z``) or extended (``2012-01-31T09:00:00.000Z``) UTC date."""
    value = (text or "").strip()
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%S"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise CalendarItemError(f"not an EAS date: {text!r}")


def to_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


# ------------------------------------------------------------------------------- time zones


_PREFERRED_ZONES = (
    "Europe/Paris",
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Brussels",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Zurich",
    "Europe/Moscow",
    "Europe/Helsinki",
    "Europe/Lisbon",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Montreal",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "Asia/Ho_Chi_Minh",
    "Asia/Dubai",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Africa/Casablanca",
    "Africa/Tunis",
    "Africa/Algiers",
    "Africa/Dakar",
)


def zone(name: str | None) -> ZoneInfo:
    """The Olson zone; an unknown one is OBM's default (obm-sync reads it as Europe/Paris)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


@functools.cache
def _candidates() -> tuple[str, ...]:
    others = sorted(
        z
        for z in available_timezones()
        if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/", "posix", "right"))
    )
    return _PREFERRED_ZONES + tuple(z for z in others if z not in _PREFERRED_ZONES)


@functools.cache
def _zone_rule(name: str, year: int) -> TimeZoneRule:
    return rule_from_tzinfo(ZoneInfo(name), year, name=name[:31])


def timezone_blob(name: str, year: int) -> str:
    """The base64 TimeZone element of an Olson zone, as its rule stands in ``year``."""
    try:
        return encode_base64(_zone_rule(name, year))
    except (ZoneInfoNotFoundError, ValueError):
        return encode_base64(_zone_rule(DEFAULT_ZONE, year))


def _systemtime(raw: bytes) -> Transition | None:
    _year, month, weekday, week, hour, minute, _s, _ms = struct.unpack("<8H", raw)
    if month == 0:
        return None
    return Transition(
        month=month, weekday=weekday, week=min(max(week, 1), 5), hour=hour, minute=minute
    )


def decode_blob(blob: str | bytes) -> tuple[TimeZoneRule, str]:
    """The rule a TIME_ZONE_INFORMATION carries, and its StandardName.  CalendarItemError when
    it is not one (MS-ASDTYPE 2.7.4: 172 bytes)."""
    try:
        raw = base64.b64decode(blob, validate=False) if isinstance(blob, str) else blob
    except (binascii.Error, ValueError) as e:
        raise CalendarItemError(f"TimeZone is not base64: {e}") from e
    if len(raw) < 172:
        raise CalendarItemError(f"TimeZone blob of {len(raw)} bytes, 172 expected")
    (bias,) = struct.unpack("<i", raw[0:4])
    std_name = raw[4:68].decode("utf-16-le", "replace").split("\x00", 1)[0]
    std_date = _systemtime(raw[68:84])
    (std_bias,) = struct.unpack("<i", raw[84:88])
    dst_date = _systemtime(raw[152:168])
    (dst_bias,) = struct.unpack("<i", raw[168:172])
    standard = -(bias + std_bias)
    if std_date is None or dst_date is None or dst_bias == 0:
        return TimeZoneRule(standard_offset=standard), std_name
    return (
        TimeZoneRule(
            standard_offset=standard,
            daylight_offset=-(bias + dst_bias),
            to_standard=std_date,
            to_daylight=dst_date,
        ),
        std_name,
    )


def _same(a: TimeZoneRule, b: TimeZoneRule, *, hours: bool) -> bool:
    if a.standard_offset != b.standard_offset or a.daylight_offset != b.daylight_offset:
        return False
    for x, y in ((a.to_standard, b.to_standard), (a.to_daylight, b.to_daylight)):
        if (x is None) != (y is None):
            return False
        if x is not None and y is not None:
            if (x.month, x.weekday, x.week) != (y.month, y.weekday, y.week):
                return False
            if hours and (x.hour, x.minute) != (y.hour, y.minute):
                return False
    return True


def olson_zone(blob: str | bytes, year: int, default: str | None = None) -> str:
    """The Olson zone a device's TimeZone means in ``year``.

    The blob's StandardName when it names a zone with this rule (some devices send Olson ids),
    else the first zone (common ones first) with the same offsets and transition days, else
    one with the same offsets.  A rule no zone has gives ``default`` (OP-97: an unmatched
    TimeZone must not silently become UTC, that put iOS all-day events a day early), and a
    fixed offset without ``default`` an ``Etc/GMT`` zone.
    """
    rule, name = decode_blob(blob)
    if name and "/" in name:
        try:
            if _same(_zone_rule(name, year), rule, hours=False):
                return name
        except (ZoneInfoNotFoundError, ValueError):
            pass
    if rule.daylight_offset is None and rule.standard_offset == 0 and default is None:
        return "UTC"
    for exact in (True, False):
        for candidate in _candidates():
            try:
                if _same(_zone_rule(candidate, year), rule, hours=exact):
                    return candidate
            except (ZoneInfoNotFoundError, ValueError):
                continue
    if default is not None:
        return default
    if rule.daylight_offset is None and rule.standard_offset % 60 == 0:
        hours = rule.standard_offset // 60
        # Etc/GMT signs are inverted (POSIX): Etc/GMT-2 is two hours east of UTC.
        return "UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"
    return DEFAULT_ZONE


# ------------------------------------------------------------------------- EAS parse/render


def _local(el: _Element) -> str:
    return etree.QName(el).localname


def _find(parent: _Element, name: str, namespaces: Sequence[str] = (CAL,)) -> _Element | None:
    for namespace in namespaces:
        found = parent.find(f"{{{namespace}}}{name}")
        if found is not None:
            return found
    return None


def _text(parent: _Element, name: str, namespaces: Sequence[str] = (CAL,)) -> str | None:
    found = _find(parent, name, namespaces)
    if found is None:
        return None
    return (found.text or "").strip()


def _int(parent: _Element, name: str, namespaces: Sequence[str] = (CAL,)) -> int | None:
    value = _text(parent, name, namespaces)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError as e:
        raise CalendarItemError(f"{name}: not a number {value!r}") from e


def _nonempty(value: str | None) -> str | None:
    return value if value else None


def _body(parent: _Element) -> str | None:
    """AirSyncBase:Body (plain text, or HTML made plain), or 2.5's Calendar:Body."""
    body = parent.find(f"{{{BASE}}}Body")
    if body is not None:
        data = body.find(f"{{{BASE}}}Data")
        text = data.text if data is not None else None
        if text and (_text(body, "Type", (BASE,)) or "1") == "2":
            text = html_to_text(text)
        return _nonempty(text)
    return _nonempty(_text_raw(parent, "Body"))


def _text_raw(parent: _Element, name: str) -> str | None:
    found = parent.find(f"{{{CAL}}}{name}")
    return None if found is None else (found.text or "")


def _location(parent: _Element) -> str | None:
    loc = parent.find(f"{{{CAL}}}Location")
    if loc is not None:
        return _nonempty(loc.text)
    loc = parent.find(f"{{{BASE}}}Location")  # 16.0: AirSyncBase:Location/DisplayName
    if loc is not None:
        name = loc.find(f"{{{BASE}}}DisplayName")
        return _nonempty(name.text if name is not None else loc.text)
    return None


def _default(value: int | None, default: int) -> int:
    return default if value is None else value


def _bool(parent: _Element, name: str) -> bool | None:
    value = _int(parent, name)
    return None if value is None else value == 1


def parse_recurrence(el: _Element) -> Recurrence:
    kind = _int(el, "Type")
    if kind not in (0, 1, 2, 3, 5, 6):
        raise CalendarItemError(f"Recurrence Type {kind!r}")
    until = _text(el, "Until")
    return Recurrence(
        type=kind,
        interval=min(max(_int(el, "Interval") or 1, 1), 999),
        until=parse_date(until) if until else None,
        # Outlook's limit; a count beyond it would only cost time.
        occurrences=min(occurrences, 999) if (occurrences := _int(el, "Occurrences")) else None,
        day_of_week=_int(el, "DayOfWeek") or None,
        day_of_month=_int(el, "DayOfMonth"),
        week_of_month=_int(el, "WeekOfMonth"),
        month_of_year=_int(el, "MonthOfYear"),
    )


def _parse_attendees(parent: _Element) -> tuple[Attendee, ...]:
    container = parent.find(f"{{{CAL}}}Attendees")
    if container is None:
        return ()
    out = []
    for a in container.iterchildren(f"{{{CAL}}}Attendee"):
        email = _text(a, "Email")
        if not email:
            continue
        name = _nonempty(_text_raw(a, "Name"))
        out.append(
            Attendee(
                email=email,
                # Name is required (MS-ASCAL 2.2.2.29): we send the address when there is none.
                name=name if name != email else None,
                status=_int(a, "AttendeeStatus"),
                type=_int(a, "AttendeeType") or 1,
            )
        )
    return tuple(out)


def parse_item(data: _Element, *, default_zone: str = DEFAULT_ZONE) -> CalendarItem:
    """An ``ApplicationData`` (or ``Properties``) element of the Calendar class.

    Without a TimeZone the zone is ``default_zone`` (OP-97).  Raises CalendarItemError."""
    start_text, end_text = _text(data, "StartTime"), _text(data, "EndTime")
    if not start_text:
        raise CalendarItemError("a calendar item needs a StartTime")
    start = parse_date(start_text)
    end = parse_date(end_text) if end_text else start
    if end < start:
        end = start
    tz_text = _text(data, "Timezone")
    tz_name = olson_zone(tz_text, start.year, default_zone) if tz_text else default_zone
    recurrence_el = data.find(f"{{{CAL}}}Recurrence")
    categories_el = data.find(f"{{{CAL}}}Categories")
    exceptions: list[CalException] = []
    exceptions_el = data.find(f"{{{CAL}}}Exceptions")
    for x in exceptions_el.iterchildren(f"{{{CAL}}}Exception") if exceptions_el is not None else ():
        original = _text(x, "ExceptionStartTime") or _text(x, "InstanceId", (BASE,))
        if not original:
            continue
        x_start, x_end = _text(x, "StartTime"), _text(x, "EndTime")
        exceptions.append(
            CalException(
                exception_start=parse_date(original),
                deleted=_bool(x, "Deleted") or False,
                start=parse_date(x_start) if x_start else None,
                end=parse_date(x_end) if x_end else None,
                subject=_nonempty(_text_raw(x, "Subject")),
                location=_location(x),
                body=_body(x),
                all_day=_bool(x, "AllDayEvent"),
                reminder=_int(x, "Reminder"),
                busy_status=_int(x, "BusyStatus"),
                sensitivity=_int(x, "Sensitivity"),
            )
        )
    dtstamp = _text(data, "DtStamp")
    return CalendarItem(
        start=start,
        end=end,
        timezone=tz_name,
        all_day=_bool(data, "AllDayEvent") or False,
        subject=_nonempty(_text_raw(data, "Subject")),
        location=_location(data),
        body=_body(data),
        organizer_name=_nonempty(_text_raw(data, "OrganizerName")),
        organizer_email=_nonempty(_text(data, "OrganizerEmail")),
        uid=_nonempty(_text(data, "UID")) or _nonempty(_text(data, "ClientUid")),
        dtstamp=parse_date(dtstamp) if dtstamp else None,
        reminder=_int(data, "Reminder"),
        sensitivity=_int(data, "Sensitivity") or 0,
        busy_status=_default(_int(data, "BusyStatus"), 2),
        categories=tuple(
            c.text.strip()
            for c in (
                categories_el.iterchildren(f"{{{CAL}}}Category")
                if categories_el is not None
                else ()
            )
            if c.text and c.text.strip()
        ),
        attendees=_parse_attendees(data),
        meeting_status=_int(data, "MeetingStatus") or 0,
        response_type=_int(data, "ResponseType"),
        recurrence=parse_recurrence(recurrence_el) if recurrence_el is not None else None,
        exceptions=tuple(exceptions),
    )


def with_occurrence(
    item: CalendarItem, instance_id: str, data: _Element | None
) -> CalendarItem | None:
    """``item`` after a 16.x Sync Change (``data``) or Delete (None) of one occurrence
    (MS-ASAIRS 2.2.2.25 InstanceId: the occurrence's original start, compact UTC form): it
    becomes an Exception of the series (MS-ASCAL 2.2.2.19), replacing an earlier one for the
    same occurrence.  None when ``item`` does not recur.  Raises CalendarItemError for an
    InstanceId that is not a date."""
    if item.recurrence is None:
        return None
    instance = parse_date(instance_id)
    others = tuple(x for x in item.exceptions if x.exception_start != instance)
    if data is None:
        x = CalException(exception_start=instance, deleted=True)
    else:
        start_text, end_text = _text(data, "StartTime"), _text(data, "EndTime")
        sent: dict[str, Any] = {
            "start": parse_date(start_text) if start_text else None,
            "end": parse_date(end_text) if end_text else None,
            "subject": _nonempty(_text_raw(data, "Subject")),
            "location": _location(data),
            "body": _body(data),
            "all_day": _bool(data, "AllDayEvent"),
            "reminder": _int(data, "Reminder"),
            "busy_status": _int(data, "BusyStatus"),
            "sensitivity": _int(data, "Sensitivity"),
        }
        previous = next((x for x in item.exceptions if x.exception_start == instance), None)
        if previous is not None and not previous.deleted:
            # What the device leaves out keeps what an earlier change of it set.
            sent = {k: v if v is not None else getattr(previous, k) for k, v in sent.items()}
        x = CalException(exception_start=instance, **sent)
    exceptions = tuple(sorted((*others, x), key=lambda e: e.exception_start))
    return attrs.evolve(item, exceptions=exceptions)


@attrs.frozen
class BodyOptions:
    """What the collection's Options ask of bodies (AirSyncBase:BodyPreference Type 1)."""

    truncation: int | None = None

    @classmethod
    def from_options(cls, options: Iterable[_Element]) -> BodyOptions:
        for option in options:
            for pref in option.iter(f"{{{BASE}}}BodyPreference"):
                if (_text(pref, "Type", (BASE,)) or "1") in ("1", "2"):
                    size = _text(pref, "TruncationSize", (BASE,))
                    return cls(int(size) if size and size.isdigit() else None)
        return cls()


def _render_body(text: str | None, version: tuple[int, int], options: BodyOptions) -> _Element:
    value = text or ""
    if version < (12, 0):
        return E(CAL, "Body", text=value)
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


def _render_location(text: str, version: tuple[int, int]) -> _Element:
    if version >= (16, 0):
        return E(BASE, "Location", E(BASE, "DisplayName", text=text))
    return E(CAL, "Location", text=text)


def _render_attendees(attendees: Sequence[Attendee], version: tuple[int, int]) -> _Element:
    out = E(CAL, "Attendees")
    for a in attendees:
        el = E(
            CAL, "Attendee", E(CAL, "Email", text=a.email), E(CAL, "Name", text=a.name or a.email)
        )
        if version >= (12, 0):
            if a.status is not None:
                el.append(E(CAL, "AttendeeStatus", text=a.status))
            el.append(E(CAL, "AttendeeType", text=a.type))
        out.append(el)
    return out


def _render_recurrence(r: Recurrence, version: tuple[int, int]) -> _Element:
    el = E(CAL, "Recurrence", E(CAL, "Type", text=r.type))
    if r.until is not None:
        el.append(E(CAL, "Until", text=format_compact(r.until)))
    if r.occurrences is not None:
        el.append(E(CAL, "Occurrences", text=r.occurrences))
    el.append(E(CAL, "Interval", text=r.interval))
    for tag, value in (
        ("DayOfWeek", r.day_of_week),
        ("DayOfMonth", r.day_of_month),
        ("WeekOfMonth", r.week_of_month),
        ("MonthOfYear", r.month_of_year),
    ):
        if value is not None:
            el.append(E(CAL, tag, text=value))
    if version >= (14, 1) and r.type == 1:
        # The expansion's weeks start on Monday (obm_occurrences, ISO weeks).
        el.append(E(CAL, "FirstDayOfWeek", text=1))
    return el


def render_item(
    item: CalendarItem, version: tuple[int, int], options: Iterable[_Element] = ()
) -> list[_Element]:
    """ApplicationData children in Exchange's order (MS-ASCAL 2.2.2)."""
    body_options = BodyOptions.from_options(options)
    out: list[_Element] = [
        E(CAL, "Timezone", text=timezone_blob(item.timezone, item.start.year)),
        E(CAL, "AllDayEvent", text=1 if item.all_day else 0),
    ]
    out.append(_render_body(item.body, version, body_options))
    out.append(E(CAL, "BusyStatus", text=item.busy_status))
    if item.organizer_name:
        out.append(E(CAL, "OrganizerName", text=item.organizer_name))
    if item.organizer_email:
        out.append(E(CAL, "OrganizerEmail", text=item.organizer_email))
    out.append(E(CAL, "DtStamp", text=format_compact(item.dtstamp or item.start)))
    out.append(E(CAL, "EndTime", text=format_compact(item.end)))
    if item.location:
        out.append(_render_location(item.location, version))
    if item.reminder is not None:
        out.append(E(CAL, "Reminder", text=item.reminder))
    out.append(E(CAL, "Sensitivity", text=item.sensitivity))
    out.append(E(CAL, "Subject", text=item.subject or ""))
    out.append(E(CAL, "StartTime", text=format_compact(item.start)))
    if item.uid:
        out.append(E(CAL, "UID", text=item.uid))
    out.append(E(CAL, "MeetingStatus", text=item.meeting_status))
    if item.attendees:
        out.append(_render_attendees(item.attendees, version))
    if item.categories:
        out.append(E(CAL, "Categories", *(E(CAL, "Category", text=c) for c in item.categories)))
    if item.recurrence is not None:
        out.append(_render_recurrence(item.recurrence, version))
    if item.exceptions:
        out.append(
            E(
                CAL,
                "Exceptions",
                *(_render_exception(x, version, body_options) for x in item.exceptions),
            )
        )
    if version >= (14, 0) and item.response_type is not None:
        out.append(E(CAL, "ResponseType", text=item.response_type))
    return out


def _render_exception(x: CalException, version: tuple[int, int], options: BodyOptions) -> _Element:
    el = E(CAL, "Exception")
    if x.deleted:
        el.append(E(CAL, "Deleted", text=1))
    if version >= (16, 0):
        el.append(E(BASE, "InstanceId", text=format_compact(x.exception_start)))
    else:
        el.append(E(CAL, "ExceptionStartTime", text=format_compact(x.exception_start)))
    if x.deleted:
        return el
    if x.all_day is not None:
        el.append(E(CAL, "AllDayEvent", text=1 if x.all_day else 0))
    if x.body is not None:
        el.append(_render_body(x.body, version, options))
    if x.busy_status is not None:
        el.append(E(CAL, "BusyStatus", text=x.busy_status))
    if x.end is not None:
        el.append(E(CAL, "EndTime", text=format_compact(x.end)))
    if x.location is not None:
        el.append(_render_location(x.location, version))
    if x.reminder is not None:
        el.append(E(CAL, "Reminder", text=x.reminder))
    if x.sensitivity is not None:
        el.append(E(CAL, "Sensitivity", text=x.sensitivity))
    if x.subject is not None:
        el.append(E(CAL, "Subject", text=x.subject))
    if x.start is not None:
        el.append(E(CAL, "StartTime", text=format_compact(x.start)))
    return el


# ---------------------------------------------------------------------------- EAS <-> OBM


#: MS-ASCAL Sensitivity -> OBM privacy (0 public, 1 private, 2 confidential) and back.
_PRIVACY = {0: 0, 1: 1, 2: 1, 3: 2}
_SENSITIVITY = {0: 0, 1: 2, 2: 3}
#: AttendeeStatus <-> OBM participation state.
_STATE = {0: "NEEDS-ACTION", 2: "TENTATIVE", 3: "ACCEPTED", 4: "DECLINED", 5: "NEEDS-ACTION"}
_STATUS = {"NEEDS-ACTION": 5, "TENTATIVE": 2, "ACCEPTED": 3, "DECLINED": 4}
#: AttendeeType <-> OBM role.
_ROLE = {1: "REQ", 2: "OPT", 3: "NON"}
_TYPE = {"REQ": 1, "CHAIR": 1, "OPT": 2, "NON": 3}
#: MeetingResponse UserResponse / ResponseType of the user's own state.
_RESPONSE_TYPE = {"NEEDS-ACTION": 5, "TENTATIVE": 2, "ACCEPTED": 3, "DECLINED": 4}

_OBM_KINDS = {
    0: "daily",
    1: "weekly",
    2: "monthlybydate",
    3: "monthlybyday",
    5: "yearly",
    6: "yearlybyday",
}


def days_string(mask: int) -> str:
    """EAS DayOfWeek mask (1 = Sunday) -> OBM ``days`` (Sunday first, ``0100010``)."""
    return "".join("1" if mask & (1 << i) else "0" for i in range(7))


def days_mask(days: str) -> int:
    return sum(1 << i for i, c in enumerate(days[:7]) if c == "1")


def _weekday_bit(local: datetime | date) -> int:
    """EAS bit of a date's weekday (Python Monday=0 -> EAS Sunday=1, Monday=2...)."""
    return 1 << ((local.weekday() + 1) % 7)


def _week_of_month(day: int) -> int:
    return min((day - 1) // 7 + 1, 5)


def local_start(item_start: datetime, tz_name: str) -> datetime:
    return item_start.astimezone(zone(tz_name))


def _occurrence_starts(item: CalendarItem) -> list[datetime]:
    """The first ``occurrences`` starts (for an Occurrences count's end date)."""
    r = item.recurrence
    assert r is not None and r.occurrences is not None
    out: list[datetime] = []
    for when in _eas_rule(item.start, item.timezone, attrs.evolve(r, until=None), None):
        out.append(when)
        if len(out) >= r.occurrences:
            break
    return out


def _obm_recurrence(item: CalendarItem) -> obm.Recurrence:
    r = item.recurrence
    if r is None:
        return obm.Recurrence()
    local = local_start(item.start, item.timezone)
    days: str | None = None
    kind = _OBM_KINDS[r.type]
    if r.type == 0 and r.day_of_week:
        kind, days = "weekly", days_string(r.day_of_week)
    elif r.type == 1:
        # OP-240: a weekly recurrence without DayOfWeek repeats on the start's weekday.
        days = days_string(r.day_of_week or _weekday_bit(local))
    end: int | None = None
    if r.until is not None:
        end = to_ms(r.until)
    elif r.occurrences:
        starts = _occurrence_starts(item)
        end = to_ms(starts[-1]) if starts else to_ms(item.start)
    deleted = tuple(to_ms(x.exception_start) for x in item.exceptions if x.deleted)
    return obm.Recurrence(kind=kind, freq=r.interval, days=days, end=end, exceptions=deleted)


def to_event(
    item: CalendarItem,
    *,
    owner: str,
    owner_email: str,
    owner_name: str | None = None,
    base: obm.Event | None = None,
) -> obm.Event:
    """The OBM event for a device's item.  ``owner``: the calendar's login; ``base``: the
    stored event a Change applies to (its id, extId, sequence and owner are kept)."""
    organizer_email = item.organizer_email or owner_email
    organizer_name = item.organizer_name or (owner_name if organizer_email == owner_email else None)
    attendees: list[obm.Attendee] = [
        obm.Attendee(
            email=organizer_email,
            display_name=organizer_name,
            state="ACCEPTED",
            required="CHAIR",
            is_organizer=True,
        )
    ]
    seen = {organizer_email.lower()}
    for a in item.attendees:
        if a.email.lower() in seen:
            continue
        seen.add(a.email.lower())
        attendees.append(
            obm.Attendee(
                email=a.email,
                display_name=a.name,
                state=_STATE.get(a.status if a.status is not None else 5, "NEEDS-ACTION"),
                required=_ROLE.get(a.type, "REQ"),
            )
        )
    if owner_email.lower() not in seen:
        # obm-sync's calendar U holds the events U attends: the owner is always one.
        attendees.append(obm.Attendee(email=owner_email, display_name=owner_name, state="ACCEPTED"))
    if base is not None:
        # The device's view of other attendees' answers is stale: obm-sync's is kept.
        attendees = [
            attrs.evolve(a, state=old.state)
            if (old := base.attendee(a.email)) is not None
            and a.email.lower() != owner_email.lower()
            else a
            for a in attendees
        ]
    event = obm.Event(
        all_day=item.all_day,
        id=base.id if base is not None else None,
        sequence=base.sequence if base is not None else 0,
        timeupdate=to_ms(item.dtstamp) if item.dtstamp is not None else None,
        ext_id=(base.ext_id if base is not None else None) or item.uid or str(uuid.uuid4()),
        opacity="TRANSPARENT" if item.busy_status == 0 else "OPAQUE",
        title=item.subject,
        description=item.body,
        owner=base.owner if base is not None and base.owner else owner,
        owner_email=base.owner_email if base is not None and base.owner_email else owner_email,
        tz=item.timezone,
        date=to_ms(item.start),
        duration=int((item.end - item.start).total_seconds()),
        category=item.categories[0] if item.categories else None,
        location=item.location,
        alert=item.reminder * 60 if item.reminder is not None else None,
        privacy=_PRIVACY.get(item.sensitivity, 0),
        attendees=tuple(attendees),
    )
    recurrence = _obm_recurrence(item)
    if recurrence.recurring:
        moved = tuple(_obm_exception(event, x) for x in item.exceptions if not x.deleted)
        recurrence = attrs.evolve(recurrence, event_exceptions=moved)
    return attrs.evolve(event, recurrence=recurrence)


def _obm_exception(parent: obm.Event, x: CalException) -> obm.Event:
    parent_start = from_ms(parent.date or 0)
    offset = x.exception_start - parent_start
    start = x.start or (parent_start + offset)
    end = x.end or (start + timedelta(seconds=parent.duration))
    return attrs.evolve(
        parent,
        id=None,
        recurrence_id=to_ms(x.exception_start),
        date=to_ms(start),
        duration=int((end - start).total_seconds()),
        title=x.subject if x.subject is not None else parent.title,
        location=x.location if x.location is not None else parent.location,
        description=x.body if x.body is not None else parent.description,
        all_day=x.all_day if x.all_day is not None else parent.all_day,
        alert=x.reminder * 60 if x.reminder is not None else parent.alert,
        opacity=(
            ("TRANSPARENT" if x.busy_status == 0 else "OPAQUE")
            if x.busy_status is not None
            else parent.opacity
        ),
        privacy=_PRIVACY.get(x.sensitivity, 0) if x.sensitivity is not None else parent.privacy,
        recurrence=obm.Recurrence(),
    )


def _eas_recurrence(event: obm.Event) -> Recurrence | None:
    r = event.recurrence
    if not r.recurring or r.kind not in (
        "daily",
        "weekly",
        "monthlybydate",
        "monthlybyday",
        "yearly",
        "yearlybyday",
    ):
        return None
    local = from_ms(event.date or 0).astimezone(zone(event.tz))
    until = from_ms(r.end) if r.end is not None else None
    interval = max(r.freq or 1, 1)
    if r.kind == "daily":
        return Recurrence(type=0, interval=interval, until=until)
    if r.kind == "weekly":
        mask = days_mask(r.days) if r.days else 0
        return Recurrence(
            type=1, interval=interval, until=until, day_of_week=mask or _weekday_bit(local)
        )
    if r.kind == "monthlybydate":
        return Recurrence(type=2, interval=interval, until=until, day_of_month=local.day)
    if r.kind == "monthlybyday":
        return Recurrence(
            type=3,
            interval=interval,
            until=until,
            day_of_week=_weekday_bit(local),
            week_of_month=_week_of_month(local.day),
        )
    if r.kind == "yearly":
        return Recurrence(
            type=5,
            interval=interval,
            until=until,
            day_of_month=local.day,
            month_of_year=local.month,
        )
    return Recurrence(
        type=6,
        interval=interval,
        until=until,
        day_of_week=_weekday_bit(local),
        week_of_month=_week_of_month(local.day),
        month_of_year=local.month,
    )


def _eas_exception(parent: obm.Event, x: obm.Event) -> CalException:
    start = from_ms(x.date or 0)
    return CalException(
        exception_start=from_ms(x.recurrence_id or 0),
        start=start,
        end=start + timedelta(seconds=x.duration),
        subject=x.title if x.title != parent.title else None,
        location=x.location if x.location != parent.location else None,
        body=x.description if x.description != parent.description else None,
        all_day=x.all_day if x.all_day != parent.all_day else None,
        reminder=(x.alert // 60 if x.alert is not None else None)
        if x.alert != parent.alert
        else None,
        busy_status=(0 if x.opacity == "TRANSPARENT" else 2)
        if x.opacity != parent.opacity
        else None,
        sensitivity=_SENSITIVITY.get(x.privacy, 0) if x.privacy != parent.privacy else None,
    )


def from_event(event: obm.Event, user_email: str) -> CalendarItem:
    """The EAS item of an OBM event as ``user_email`` sees it (MeetingStatus, ResponseType)."""
    start = from_ms(event.date or 0)
    organizer = next((a for a in event.attendees if a.is_organizer), None)
    organizer_email = organizer.email if organizer is not None else event.owner_email
    organizer_name = organizer.display_name if organizer is not None else None
    others = tuple(
        Attendee(
            email=a.email,
            name=a.display_name,
            status=_STATUS.get(a.state, 0),
            type=_TYPE.get(a.required, 1),
        )
        for a in event.attendees
        if a is not organizer
    )
    mine = organizer_email is not None and organizer_email.lower() == user_email.lower()
    if not others:
        meeting_status, response = 0, None
    elif mine:
        meeting_status, response = 1, None
    else:
        meeting_status = 3
        me = event.attendee(user_email)
        response = _RESPONSE_TYPE.get(me.state, 0) if me is not None else 0
    exceptions = [
        CalException(exception_start=from_ms(ms), deleted=True)
        for ms in event.recurrence.exceptions
    ]
    exceptions += [_eas_exception(event, x) for x in event.recurrence.event_exceptions]
    recurrence = _eas_recurrence(event)
    return CalendarItem(
        start=start,
        end=start + timedelta(seconds=max(event.duration, 0)),
        timezone=event.tz or DEFAULT_ZONE,
        all_day=event.all_day,
        subject=event.title,
        location=event.location,
        body=event.description,
        organizer_name=organizer_name,
        organizer_email=organizer_email,
        uid=event.ext_id,
        dtstamp=from_ms(event.timeupdate) if event.timeupdate is not None else None,
        reminder=event.alert // 60 if event.alert is not None else None,
        sensitivity=_SENSITIVITY.get(event.privacy, 0),
        busy_status=0 if event.opacity == "TRANSPARENT" else 2,
        categories=(event.category,) if event.category else (),
        attendees=others,
        meeting_status=meeting_status,
        response_type=response,
        recurrence=recurrence,
        exceptions=tuple(sorted(exceptions, key=lambda x: x.exception_start)) if recurrence else (),
    )


def user_state(event: obm.Event, email: str) -> str | None:
    me = event.attendee(email)
    return me.state if me is not None else None


# ------------------------------------------------------------------------------ recurrences


def _localize(naive: datetime, tz: ZoneInfo) -> datetime:
    return naive.replace(tzinfo=tz).astimezone(UTC)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> int | None:
    """Day of the ``nth`` (5 = last) Python ``weekday`` of a month."""
    days = _calendar.monthrange(year, month)[1]
    matching = [d for d in range(1, days + 1) if date(year, month, d).weekday() == weekday]
    if nth >= 5:
        return matching[-1]
    return matching[nth - 1] if nth <= len(matching) else None


def _mask_weekdays(mask: int) -> list[int]:
    """Python weekdays (Monday = 0) of an EAS mask."""
    return sorted((i - 1) % 7 for i in range(7) if mask & (1 << i))


def _eas_rule(
    start: datetime, tz_name: str, r: Recurrence, horizon: datetime | None
) -> Iterator[datetime]:
    """Starts of an EAS recurrence (MS-ASCAL 2.2.2.38), in wall-clock time of the zone, from the
    series start, up to Until and ``horizon``; Occurrences is the caller's."""
    tz = zone(tz_name)
    local = start.astimezone(tz).replace(tzinfo=None)
    first_day = local.date()
    clock = local.time()
    interval = max(r.interval, 1)
    # A device's nonsense (no valid weekday bit, the 30th of February) must end, not spin.
    mask = (r.day_of_week or 0) & 127 or _weekday_bit(first_day)
    last_year = first_day.year + 400

    def emit(d: date) -> datetime:
        return _localize(datetime.combine(d, clock), tz)

    def done(when: datetime) -> bool:
        return (r.until is not None and when > r.until) or (horizon is not None and when > horizon)

    if r.type == 0 and not r.day_of_week:
        k = 0
        while True:
            when = emit(first_day + timedelta(days=k * interval))
            if done(when):
                return
            yield when
            k += 1
    if r.type in (0, 1):
        weekdays = _mask_weekdays(mask)
        week0 = first_day - timedelta(days=first_day.weekday())  # ISO week: Monday first
        step = interval if r.type == 1 else 1
        w = 0
        while True:
            week = week0 + timedelta(weeks=w * step)
            for wd in weekdays:
                day = week + timedelta(days=wd)
                if day < first_day:
                    continue
                when = emit(day)
                if done(when):
                    return
                yield when
            w += 1
    d: date | None
    if r.type in (2, 3):
        m = 0
        while True:
            month_index = first_day.month - 1 + m * interval
            year, month = first_day.year + month_index // 12, month_index % 12 + 1
            if year > last_year or (horizon is not None and year > horizon.year + 1):
                return
            if r.type == 2:
                day_num = r.day_of_month or first_day.day
                d = (
                    date(year, month, day_num)
                    if day_num <= _calendar.monthrange(year, month)[1]
                    else None
                )
            else:
                weekday = _mask_weekdays(mask)[0]
                n = _nth_weekday(year, month, weekday, r.week_of_month or 1)
                d = date(year, month, n) if n is not None else None
            m += 1
            if d is None or d < first_day:
                continue
            when = emit(d)
            if done(when):
                return
            yield when
    if r.type in (5, 6):
        y = 0
        while True:
            year = first_day.year + y * interval
            month = r.month_of_year or first_day.month
            if year > last_year or (horizon is not None and year > horizon.year + 1):
                return
            if r.type == 5:
                day_num = r.day_of_month or first_day.day
                d = (
                    date(year, month, day_num)
                    if day_num <= _calendar.monthrange(year, month)[1]
                    else None
                )
            else:
                weekday = _mask_weekdays(mask)[0]
                n = _nth_weekday(year, month, weekday, r.week_of_month or 1)
                d = date(year, month, n) if n is not None else None
            y += 1
            if d is None or d < first_day:
                continue
            when = emit(d)
            if done(when):
                return
            yield when


def eas_occurrences(item: CalendarItem, until: datetime) -> list[datetime]:
    """Occurrence starts of an EAS item up to ``until``: its rule (Until or Occurrences),
    less deleted occurrences, moved ones at their new start; sorted."""
    r = item.recurrence
    if r is None:
        return [item.start] if item.start <= until else []
    starts: list[datetime] = []
    for when in _eas_rule(item.start, item.timezone, r, None if r.occurrences else until):
        if r.occurrences is not None and len(starts) >= r.occurrences:
            break
        if when > until:
            break
        starts.append(when)
    changed = {x.exception_start: x for x in item.exceptions}
    out: list[datetime] = []
    for when in starts:
        x = changed.get(when)
        if x is None:
            out.append(when)
        elif not x.deleted:
            out.append(x.start or when)
    return sorted(w for w in out if w <= until)


def obm_occurrences(event: obm.Event, until: datetime) -> list[datetime]:
    """Occurrence starts of an OBM event up to ``until``, the way OBM exports it to iCalendar
    (RRULE from kind/freq/days/end, EXDATEs, RECURRENCE-ID overrides), expanded by dateutil."""
    from dateutil import rrule

    start = from_ms(event.date or 0)
    r = event.recurrence
    if not r.recurring:
        return [start] if start <= until else []
    tz = zone(event.tz)
    local = start.astimezone(tz).replace(tzinfo=None)
    freq = max(r.freq or 1, 1)
    end_local = from_ms(r.end).astimezone(tz).replace(tzinfo=None) if r.end is not None else None
    horizon = until.astimezone(tz).replace(tzinfo=None) + timedelta(days=2)
    stop = min(end_local, horizon) if end_local is not None else horizon
    wd = (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU)
    kwargs: dict[str, object] = {
        "dtstart": local,
        "interval": freq,
        "until": stop,
        "wkst": rrule.MO,
    }
    if r.kind == "daily":
        rule = rrule.rrule(rrule.DAILY, **kwargs)
    elif r.kind == "weekly":
        days = [wd[(i - 1) % 7] for i, c in enumerate((r.days or "")[:7]) if c == "1"]
        rule = rrule.rrule(rrule.WEEKLY, byweekday=days or [wd[local.weekday()]], **kwargs)
    elif r.kind == "monthlybydate":
        rule = rrule.rrule(rrule.MONTHLY, bymonthday=local.day, **kwargs)
    elif r.kind == "monthlybyday":
        nth = _week_of_month(local.day)
        rule = rrule.rrule(
            rrule.MONTHLY, byweekday=wd[local.weekday()](-1 if nth == 5 else nth), **kwargs
        )
    elif r.kind == "yearly":
        rule = rrule.rrule(rrule.YEARLY, bymonth=local.month, bymonthday=local.day, **kwargs)
    else:
        nth = _week_of_month(local.day)
        rule = rrule.rrule(
            rrule.YEARLY,
            bymonth=local.month,
            byweekday=wd[local.weekday()](-1 if nth == 5 else nth),
            **kwargs,
        )
    removed = set(r.exceptions) | {x.recurrence_id for x in r.event_exceptions}
    out = [when for when in (_localize(naive, tz) for naive in rule) if to_ms(when) not in removed]
    out += [from_ms(x.date or 0) for x in r.event_exceptions]
    return sorted(w for w in out if w <= until)
