"""EAS calendar items <-> OBM events: round trips keep every field, recurrences expand the
same on both sides over ten years, the TimeZone blob maps to Olson zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from opush.backends.obmsync import xml as obm
from opush.content import calendar as cal
from opush.content.email.tzblob import encode_base64, rule_from_tzinfo
from opush.wbxml import E, decode, encode, ns

USER = "alice@example.org"
ZONES = ["Europe/Paris", "America/New_York", "UTC", "Asia/Tokyo", "Australia/Sydney"]
TEN_YEARS = timedelta(days=3653)

text = st.text(
    alphabet=st.characters(
        codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\r\x85\u2028\u2029"
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and s != "")
emails = st.from_regex(r"[a-z]{1,8}@(example\.org|other\.net)", fullmatch=True).filter(
    lambda e: e != USER
)


@st.composite
def local_start(draw: st.DrawFn, tz: str, all_day: bool) -> datetime:
    day = draw(st.dates(date(2001, 1, 1), date(2030, 12, 31)))
    minutes = 0 if all_day else draw(st.integers(0, 95)) * 15
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minutes)
    aware = naive.replace(tzinfo=ZoneInfo(tz))
    # Skip wall times that do not exist or exist twice (DST changes).
    assume(aware.astimezone(UTC).astimezone(ZoneInfo(tz)).replace(tzinfo=None) == naive)
    assume(naive.replace(tzinfo=ZoneInfo(tz), fold=1).utcoffset() == aware.utcoffset())
    return aware.astimezone(UTC)


@st.composite
def recurrences(draw: st.DrawFn, start: datetime, tz: str) -> cal.Recurrence:
    local = start.astimezone(ZoneInfo(tz))
    kind = draw(st.sampled_from([0, 1, 2, 3, 5, 6]))
    if kind in (2, 5):
        assume(local.day <= 28)
    interval = draw(st.integers(1, 4))
    bit = 1 << ((local.weekday() + 1) % 7)
    until = None
    if draw(st.booleans()):
        until = start + timedelta(days=draw(st.integers(1, 3000)), hours=draw(st.integers(0, 23)))
    week = min((local.day - 1) // 7 + 1, 5)
    fields: dict[str, int | None] = {}
    if kind == 1:
        fields["day_of_week"] = bit | draw(st.integers(0, 127))
    elif kind == 2:
        fields["day_of_month"] = local.day
    elif kind == 3:
        fields.update(day_of_week=bit, week_of_month=week)
    elif kind == 5:
        fields.update(day_of_month=local.day, month_of_year=local.month)
    elif kind == 6:
        fields.update(day_of_week=bit, week_of_month=week, month_of_year=local.month)
    return cal.Recurrence(type=kind, interval=interval, until=until, **fields)  # type: ignore[arg-type]


@st.composite
def items(draw: st.DrawFn, *, recurring: bool | None = None) -> cal.CalendarItem:
    tz = draw(st.sampled_from(ZONES))
    all_day = draw(st.booleans())
    start = draw(local_start(tz, all_day))
    if all_day:
        days = draw(st.integers(1, 3))
        local = start.astimezone(ZoneInfo(tz)).replace(tzinfo=None) + timedelta(days=days)
        end = local.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)
    else:
        end = start + timedelta(minutes=15 * draw(st.integers(0, 40)))
    attendees = draw(
        st.lists(
            st.builds(
                cal.Attendee,
                email=emails,
                name=st.none() | text,
                status=st.sampled_from([2, 3, 4, 5]),
                type=st.sampled_from([1, 2, 3]),
            ),
            max_size=4,
            unique_by=lambda a: a.email.lower(),
        )
    )
    has_recurrence = draw(st.booleans()) if recurring is None else recurring
    recurrence = draw(recurrences(start, tz)) if has_recurrence else None
    item = cal.CalendarItem(
        start=start,
        end=end,
        timezone=tz,
        all_day=all_day,
        subject=draw(st.none() | text),
        location=draw(st.none() | text),
        body=draw(st.none() | text),
        organizer_name=draw(st.none() | text),
        organizer_email=USER,
        uid=draw(st.uuids().map(str)),
        dtstamp=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8))),
        reminder=draw(st.none() | st.integers(0, 10080)),
        sensitivity=draw(st.sampled_from([0, 2, 3])),
        busy_status=draw(st.sampled_from([0, 2])),
        categories=tuple(draw(st.lists(text, max_size=1))),
        attendees=tuple(attendees),
        meeting_status=1 if attendees else 0,
        recurrence=recurrence,
    )
    if recurrence is not None:
        item = attrs.evolve(item, exceptions=draw(exceptions_of(item)))
    return item


@st.composite
def exceptions_of(draw: st.DrawFn, item: cal.CalendarItem) -> tuple[cal.CalException, ...]:
    starts = cal.eas_occurrences(item, item.start + timedelta(days=400))[:12]
    chosen = draw(st.lists(st.sampled_from(starts), max_size=3, unique=True)) if starts else []
    out = []
    for original in sorted(chosen):
        if draw(st.booleans()):
            out.append(cal.CalException(exception_start=original, deleted=True))
            continue
        moved = original + timedelta(hours=draw(st.integers(1, 30)))
        subject = draw(st.none() | text.filter(lambda s: s != item.subject))
        out.append(
            cal.CalException(
                exception_start=original,
                start=moved,
                end=moved + (item.end - item.start),
                subject=subject,
            )
        )
    return tuple(out)


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(items())
def test_eas_item_to_obm_event_and_back_keeps_every_field(item: cal.CalendarItem) -> None:
    event = cal.to_event(item, owner="alice", owner_email=USER)
    # What obm-sync stores is what it parses from the XML opush writes.
    stored = obm.parse_single_event(obm.parse_document(obm.serialize(obm.write_event(None, event))))
    assert cal.from_event(stored, USER) == item


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items(recurring=True), st.booleans(), st.integers(1, 40))
def test_occurrences_are_the_same_on_both_sides_over_ten_years(
    item: cal.CalendarItem, counted: bool, count: int
) -> None:
    if counted:
        assert item.recurrence is not None
        item = attrs.evolve(
            item, recurrence=attrs.evolve(item.recurrence, until=None, occurrences=count)
        )
        # Exceptions of occurrences beyond the count do not exist.
        plain = cal.eas_occurrences(attrs.evolve(item, exceptions=()), item.start + TEN_YEARS)
        item = attrs.evolve(
            item, exceptions=tuple(x for x in item.exceptions if x.exception_start in plain)
        )
    horizon = item.start + TEN_YEARS
    eas = cal.eas_occurrences(item, horizon)
    event = cal.to_event(item, owner="alice", owner_email=USER)
    assert cal.obm_occurrences(event, horizon) == eas
    # ... and the EAS item rendered back from OBM means the same dates.
    back = cal.from_event(event, USER)
    assert cal.eas_occurrences(back, horizon) == eas


def _application_data(item: cal.CalendarItem, version: tuple[int, int]) -> etree._Element:
    return E(ns.AIRSYNC, "ApplicationData", *cal.render_item(item, version))


@FAST
@given(items(), st.sampled_from([(12, 1), (14, 0), (14, 1), (16, 1)]))
def test_rendered_item_survives_wbxml_and_parses_back(
    item: cal.CalendarItem, version: tuple[int, int]
) -> None:
    data = _application_data(item, version)
    wire = decode(encode(E(ns.AIRSYNC, "Sync", data), version=f"{version[0]}.{version[1]}"))
    parsed = cal.parse_item(wire[0])
    assert parsed == item


def test_weekly_without_day_of_week_repeats_on_the_start_weekday_op240() -> None:
    start = datetime(2024, 3, 6, 9, 0, tzinfo=ZoneInfo("Europe/Paris")).astimezone(UTC)  # Wed
    item = cal.CalendarItem(
        start=start,
        end=start + timedelta(hours=1),
        timezone="Europe/Paris",
        recurrence=cal.Recurrence(type=1, interval=1, occurrences=3),
    )
    event = cal.to_event(item, owner="alice", owner_email=USER)
    assert event.recurrence.kind == "weekly"
    assert event.recurrence.days == "0001000"
    assert [
        d.astimezone(ZoneInfo("Europe/Paris")).day
        for d in cal.obm_occurrences(event, start + TEN_YEARS)
    ] == [6, 13, 20]


def test_every_weekday_daily_becomes_weekly_with_days() -> None:
    start = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)  # Monday
    item = cal.CalendarItem(
        start=start,
        end=start,
        recurrence=cal.Recurrence(type=0, day_of_week=62, until=start + timedelta(days=13)),
    )
    event = cal.to_event(item, owner="alice", owner_email=USER)
    assert (event.recurrence.kind, event.recurrence.days) == ("weekly", "0111110")
    assert len(cal.obm_occurrences(event, start + TEN_YEARS)) == 10


def test_lossy_values_take_the_nearest_obm_value() -> None:
    start = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    item = cal.CalendarItem(
        start=start, end=start, sensitivity=1, busy_status=3, categories=("a", "b")
    )
    back = cal.from_event(cal.to_event(item, owner="alice", owner_email=USER), USER)
    assert (back.sensitivity, back.busy_status, back.categories) == (2, 2, ("a",))


# ------------------------------------------------------------------------ time zone blobs


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"])
def test_blob_without_name_maps_to_a_zone_with_the_same_rule(zone: str) -> None:
    blob = encode_base64(rule_from_tzinfo(ZoneInfo(zone), 2024, name=""))
    found = cal.olson_zone(blob, 2024)
    assert cal._same(cal._zone_rule(found, 2024), cal._zone_rule(zone, 2024), hours=True)


def test_blob_naming_its_zone_maps_to_it() -> None:
    blob = cal.timezone_blob("America/Sao_Paulo", 2015)
    assert cal.olson_zone(blob, 2015) == "America/Sao_Paulo"


def test_unmatched_blob_uses_the_default_not_utc_op97() -> None:
    rule = attrs.evolve(cal._zone_rule("Europe/Paris", 2024), standard_offset=37, standard_name="")
    blob = encode_base64(rule)
    assert cal.olson_zone(blob, 2024, default="Europe/Paris") == "Europe/Paris"


def test_truncated_blob_is_an_item_error() -> None:
    with pytest.raises(cal.CalendarItemError):
        cal.decode_blob("AAAA")


# -------------------------------------------------------------------------- device traffic


def test_ios_all_day_event_keeps_its_day_op97() -> None:
    """iOS sends an all-day event as local midnights with its zone's blob (here Paris, with
    the Windows name iOS uses): the OBM event starts at that midnight, not the day before."""
    paris_blob = encode_base64(
        attrs.evolve(
            rule_from_tzinfo(ZoneInfo("Europe/Paris"), 2024),
            standard_name="Europe/Paris",
            daylight_name="Europe/Paris",
        )
    )
    data = E(
        ns.AIRSYNC,
        "ApplicationData",
        E(ns.CALENDAR, "Timezone", text=paris_blob),
        E(ns.CALENDAR, "AllDayEvent", text=1),
        E(ns.CALENDAR, "StartTime", text="20240614T220000Z"),
        E(ns.CALENDAR, "EndTime", text="20240615T220000Z"),
        E(ns.CALENDAR, "Subject", text="Holiday"),
        E(ns.CALENDAR, "Sensitivity", text=0),
        E(ns.CALENDAR, "BusyStatus", text=0),
        E(ns.CALENDAR, "MeetingStatus", text=0),
    )
    item = cal.parse_item(data)
    event = cal.to_event(item, owner="alice", owner_email=USER)
    assert event.all_day and event.tz == "Europe/Paris"
    local = cal.from_ms(event.date or 0).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.day, local.hour) == (15, 0)
    assert event.duration == 86400 and event.opacity == "TRANSPARENT"


def test_obm_event_with_invitation_state_renders_meeting_received() -> None:
    event = obm.Event(
        id=42,
        ext_id="x-1",
        title="Review",
        owner="bob",
        owner_email="bob@example.org",
        tz="Europe/Paris",
        date=1_700_000_000_000,
        duration=3600,
        attendees=(
            obm.Attendee("bob@example.org", "Bob", "ACCEPTED", "CHAIR", is_organizer=True),
            obm.Attendee(USER, "Alice", "TENTATIVE", "OPT"),
        ),
    )
    item = cal.from_event(event, USER)
    assert (item.meeting_status, item.response_type) == (3, 2)
    assert item.organizer_email == "bob@example.org"
    assert item.attendees == (cal.Attendee(USER, "Alice", 2, 2),)


CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not available")
def test_every_calendar_item_in_the_corpus_parses_and_converts() -> None:
    """Real Android, iOS and Exchange calendar traffic: each item parses, converts to an OBM
    event and back with the same start, end, subject and occurrences."""
    seen = 0
    for path in sorted(CORPUS.rglob("*.wbxml")):
        try:
            root = decode(path.read_bytes())
        except Exception:
            continue  # fragments
        for data in root.iter(f"{{{ns.AIRSYNC}}}ApplicationData"):
            if data.find(f"{{{ns.CALENDAR}}}StartTime") is None:
                continue
            item = cal.parse_item(data)
            event = cal.to_event(item, owner="alice", owner_email=USER)
            back = cal.from_event(event, USER)
            assert (back.start, back.end, back.subject) == (item.start, item.end, item.subject)
            horizon = item.start + TEN_YEARS
            assert cal.obm_occurrences(event, horizon) == cal.eas_occurrences(item, horizon)
            seen += 1
    assert seen >= 5


@settings(max_examples=30, deadline=None)
@given(items())
def test_items_encode_for_protocol_2_5(item: cal.CalendarItem) -> None:
    """2.5 has no AirSyncBase: the body is Calendar:Body, attendees have no status."""
    data = _application_data(item, (2, 5))
    wire = decode(encode(E(ns.AIRSYNC, "Sync", data), version="2.5"))
    parsed = cal.parse_item(wire[0])
    assert (parsed.start, parsed.end, parsed.subject, parsed.body) == (
        item.start,
        item.end,
        item.subject,
        item.body,
    )


@pytest.mark.skipif(not CORPUS.is_dir(), reason="corpus not available")
def test_galaxy_s2_weekly_change_with_deleted_occurrences() -> None:
    """A Galaxy S2 (Android 4) Change: an unnamed Paris TimeZone, weekly on Saturday at local
    midnight, three deleted occurrences listed out of order."""
    path = (
        CORPUS
        / "linagora-opush/gs2-exchange-deleteAMovedOccurrenceWhenTzChangesFromDevice"
        / "012-Sync-request.wbxml"
    )
    root = decode(path.read_bytes())
    data = next(root.iter(f"{{{ns.AIRSYNC}}}ApplicationData"))
    item = cal.parse_item(data)
    assert item.timezone == "Europe/Paris"
    assert item.subject == "paris-mars-00-1" and item.reminder == 15
    assert item.recurrence == cal.Recurrence(type=1, interval=1, day_of_week=64)
    assert sum(x.deleted for x in item.exceptions) == 3
    event = cal.to_event(item, owner="alice", owner_email=USER)
    assert event.recurrence.days == "0000001"
    assert len(event.recurrence.exceptions) == 3
    local = cal.from_ms(event.date or 0).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour) == (5, 0)  # Saturday midnight in Paris
    horizon = item.start + timedelta(days=60)
    starts = cal.obm_occurrences(event, horizon)
    assert starts == cal.eas_occurrences(item, horizon)
    assert datetime(2013, 3, 8, 23, 0, tzinfo=UTC) not in starts
    assert datetime(2013, 3, 22, 23, 0, tzinfo=UTC) in starts


def test_impossible_recurrences_end() -> None:
    """The 30th of February every year, a weekday mask without a valid bit: finite answers."""
    start = datetime(2024, 1, 30, 8, 0, tzinfo=UTC)
    feb30 = cal.CalendarItem(
        start=start,
        end=start,
        recurrence=cal.Recurrence(type=5, day_of_month=30, month_of_year=2, occurrences=3),
    )
    event = cal.to_event(feb30, owner="alice", owner_email=USER)
    assert event.recurrence.kind == "yearly"
    bad_mask = cal.CalendarItem(
        start=start, end=start, recurrence=cal.Recurrence(type=1, day_of_week=128, occurrences=2)
    )
    assert len(cal.eas_occurrences(bad_mask, start + TEN_YEARS)) == 2
