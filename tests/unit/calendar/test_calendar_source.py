"""The obm-sync calendar through the sync engine (obm-sync double, in memory): first and
incremental sync, device Adds/Changes/Deletes, declined and unanswered invitations,
FilterType, MeetingResponse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from opush.backends.obmsync import hashed_client_id
from opush.backends.obmsync import xml as obm
from opush.backends.obmsync.calendar_source import ObmMeetingResponses, ics_uid
from opush.content import calendar as cal
from opush.content.email.imip import MeetingAnswer
from opush.storage.interfaces import Collection, FolderKind, FolderRef
from opush.wbxml import E, ns
from tests.support.obmpim import (
    DEVICE,
    USER,
    add_command,
    calendar_pim,
    change_command,
    commands_of,
    delete_command,
    responses_of,
)
from tests.support.obmsync import credentials, run

A, C = ns.AIRSYNC, ns.CALENDAR
PARIS = ZoneInfo("Europe/Paris")


def _event(title: str, start: datetime, **kw: object) -> obm.Event:
    attendees = kw.pop(
        "attendees",
        (obm.Attendee(USER, "Alice", "ACCEPTED", "CHAIR", is_organizer=True),),
    )
    return obm.Event(
        title=title,
        owner="alice",
        owner_email=USER,
        tz="Europe/Paris",
        date=cal.to_ms(start),
        duration=3600,
        attendees=attendees,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def _subjects(collection: object, kind: str = "Add") -> list[str]:
    return sorted(
        c.findtext(f"{{{A}}}ApplicationData/{{{C}}}Subject") or ""
        for c in commands_of(collection, kind)  # type: ignore[arg-type]
    )


def test_first_sync_lists_the_calendar_and_later_syncs_its_changes() -> None:
    pim = calendar_pim()
    start = datetime(2026, 12, 1, 9, 0, tzinfo=PARIS)
    weekly = pim.double.put_event(
        _event(
            "weekly",
            start,
            recurrence=obm.Recurrence(
                kind="weekly",
                freq=1,
                days="0100000",
                exceptions=(cal.to_ms(start + timedelta(weeks=1)),),
                event_exceptions=(
                    _event(
                        "weekly (moved)",
                        start + timedelta(weeks=2, hours=2),
                        recurrence_id=cal.to_ms(start + timedelta(weeks=2)),
                    ),
                ),
            ),
        )
    )
    first = pim.sync()
    (add,) = commands_of(first, "Add")
    assert add.findtext(f"{{{A}}}ServerId") == f"7:{weekly.id}"
    data = add.find(f"{{{A}}}ApplicationData")
    assert data is not None
    item = cal.parse_item(data)
    assert item.recurrence is not None and item.recurrence.day_of_week == 2
    assert [x.deleted for x in item.exceptions] == [True, False]
    assert item.exceptions[1].subject == "weekly (moved)"

    pim.clock.advance(60)
    assert commands_of(pim.sync(), "Add") == []
    pim.clock.advance(60)
    other = pim.double.put_event(_event("lunch", start + timedelta(days=3)))
    second = pim.sync()
    assert [c.findtext(f"{{{A}}}ServerId") for c in commands_of(second, "Add")] == [f"7:{other.id}"]


def test_device_add_change_delete_reach_obm_sync() -> None:
    pim = calendar_pim()
    pim.sync()
    pim.clock.advance(10)
    props = cal.render_item(
        cal.CalendarItem(
            start=datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
            end=datetime(2026, 12, 24, 9, 0, tzinfo=UTC),
            timezone="Europe/Paris",
            subject="Dentist",
            reminder=15,
            uid="dev-uid-1",
        ),
        (14, 1),
    )
    added = pim.sync([add_command("c1", *props)])
    (response,) = responses_of(added, "Add")
    assert response.findtext(f"{{{A}}}Status") == "1"
    server_id = response.findtext(f"{{{A}}}ServerId") or ""
    event_id = int(server_id.split(":")[1])
    stored = pim.double.events[event_id].event
    assert (stored.title, stored.alert, stored.ext_id) == ("Dentist", 900, "dev-uid-1")
    # OP-155: createEvent got the hashed clientId.
    creates = [c for c in pim.double.calls if c[1] == "createEvent"]
    assert creates[-1][2]["clientId"] == [hashed_client_id(USER, DEVICE, "c1")]
    assert commands_of(added, "Add") == []  # not echoed

    pim.clock.advance(10)
    changed_props = [p for p in props if p.tag != f"{{{C}}}Subject"]
    changed_props.append(E(C, "Subject", text="Dentist (moved)"))
    pim.sync([change_command(server_id, *changed_props)])
    assert pim.double.events[event_id].event.title == "Dentist (moved)"

    pim.clock.advance(10)
    pim.sync([delete_command(server_id)])
    assert event_id not in pim.double.events
    assert pim.double.deleted_events[-1][1] == event_id


def test_repeated_add_with_the_same_uid_does_not_duplicate() -> None:
    pim = calendar_pim()
    pim.sync()
    props = cal.render_item(
        cal.CalendarItem(
            start=datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
            end=datetime(2026, 12, 24, 9, 0, tzinfo=UTC),
            subject="x",
            uid="same-uid",
        ),
        (14, 1),
    )
    pim.sync([add_command("c1", *props)])
    pim.sync([add_command("c2", *props)])
    assert len([e for e in pim.double.events.values() if e.event.ext_id == "same-uid"]) == 1


def test_unanswered_and_declined_invitations_stay_off_the_device() -> None:
    pim = calendar_pim()
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    invitation = pim.double.put_event(
        obm.Event(
            title="invitation",
            owner="bob",
            owner_email="bob@example.org",
            tz="UTC",
            date=cal.to_ms(start),
            duration=1800,
            attendees=(
                obm.Attendee("bob@example.org", "Bob", "ACCEPTED", "CHAIR", is_organizer=True),
                obm.Attendee(USER, "Alice", "NEEDS-ACTION"),
            ),
        )
    )
    assert commands_of(pim.sync(), "Add") == []

    # Accepted through MeetingResponse: obm-sync serves it now.
    pim.clock.advance(10)
    hook = ObmMeetingResponses(pim.client)
    state = _FakeState(Collection(7, FolderRef(FolderKind.CALENDAR, "alice", "alice", 8)))
    ctx = SimpleNamespace(
        credentials=credentials(USER),
        device=SimpleNamespace(user=USER, device_id=DEVICE),
        runtime=SimpleNamespace(state=state),
    )
    ics = (
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:" + (invitation.ext_id or "") + "\r\nEND:VEVENT\r\n"
    )
    assert run(hook.record(ctx, ics, MeetingAnswer.ACCEPTED, None)) == f"7:{invitation.id}"
    assert invitation.id is not None
    assert pim.double.events[invitation.id].event.attendee(USER).state == "ACCEPTED"  # type: ignore[union-attr]
    collection = pim.sync()
    (add,) = commands_of(collection, "Add")
    assert add.findtext(f"{{{A}}}ApplicationData/{{{C}}}MeetingStatus") == "3"
    assert add.findtext(f"{{{A}}}ApplicationData/{{{C}}}ResponseType") == "3"

    # Declined from the calendar item: the device drops it.
    pim.clock.advance(10)
    run(hook.record_calendar_item(ctx, "7", f"7:{invitation.id}", MeetingAnswer.DECLINED, None))
    collection = pim.sync()
    assert [c.findtext(f"{{{A}}}ServerId") for c in commands_of(collection, "Delete")] == [
        f"7:{invitation.id}"
    ]


def test_filtered_first_sync_asks_get_first_sync_event_date() -> None:
    pim = calendar_pim()
    now = datetime.fromtimestamp(pim.clock.seconds(), UTC)
    pim.double.put_event(_event("old", now - timedelta(days=60)))
    recent = pim.double.put_event(_event("recent", now + timedelta(days=1)))
    options = [E(A, "Options", E(A, "FilterType", text=4))]
    collection = pim.sync(options=options, filter_type=4)
    assert [c.findtext(f"{{{A}}}ServerId") for c in commands_of(collection, "Add")] == [
        f"7:{recent.id}"
    ]
    methods = [c[1] for c in pim.double.calls]
    assert "getFirstSyncEventDate" in methods and "getFirstSync" not in methods


def test_ics_uid_unfolds_lines() -> None:
    assert ics_uid("BEGIN:VEVENT\r\nUID:abc\r\n def\r\nEND:VEVENT\r\n") == "abcdef"


class _FakeState:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    async def find_collection(
        self, user: str, device_id: str, kind: FolderKind, backend_id: str
    ) -> Collection | None:
        ref = self.collection.ref
        return self.collection if (ref.kind, ref.backend_id) == (kind, backend_id) else None


def test_accepting_an_invitation_from_outside_obm_creates_the_event() -> None:
    pim = calendar_pim()
    hook = ObmMeetingResponses(pim.client)
    state = _FakeState(Collection(7, FolderRef(FolderKind.CALENDAR, "alice", "alice", 8)))
    ctx = SimpleNamespace(
        credentials=credentials(USER),
        device=SimpleNamespace(user=USER, device_id=DEVICE),
        runtime=SimpleNamespace(state=state),
    )
    ics = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "METHOD:REQUEST",
            "BEGIN:VEVENT",
            "UID:external-1@partner.example",
            "DTSTART;TZID=Europe/Paris:20261210T100000",
            "DTEND;TZID=Europe/Paris:20261210T110000",
            "SUMMARY:Partner call\\, weekly",
            "ORGANIZER;CN=Pat:mailto:pat@partner.example",
            "ATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT:mailto:alice@example.org",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    server_id = run(hook.record(ctx, ics, MeetingAnswer.TENTATIVE, None))
    assert server_id is not None
    event = pim.double.events[int(server_id.split(":")[1])].event
    assert not event.is_internal and event.title == "Partner call, weekly"
    assert event.tz == "Europe/Paris" and event.duration == 3600
    assert cal.from_ms(event.date or 0) == datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
    me = event.attendee(USER)
    assert me is not None and me.state == "TENTATIVE"
    # The device gets it (an answered invitation).
    (add,) = commands_of(pim.sync(), "Add")
    assert add.findtext(f"{{{A}}}ApplicationData/{{{C}}}ResponseType") == "2"


def test_a_16_device_changes_and_deletes_one_occurrence() -> None:
    """Sync Change/Delete with InstanceId (MS-ASAIRS 2.2.2.25): the owner's series gets the
    exceptions through modifyEvent; in someone else's series the user declines or accepts
    that occurrence only (changeParticipationState with its recurrenceId)."""
    from opush.sync.engine import ClientCommand

    pim = calendar_pim()
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    weekly = pim.double.put_event(
        _event("weekly", start, recurrence=obm.Recurrence(kind="weekly", freq=1, days="0010000"))
    )
    invited = pim.double.put_event(
        obm.Event(
            title="their weekly",
            owner="bob",
            owner_email="bob@example.org",
            tz="UTC",
            date=cal.to_ms(start),
            duration=1800,
            attendees=(
                obm.Attendee("bob@example.org", "Bob", "ACCEPTED", "CHAIR", is_organizer=True),
                obm.Attendee(USER, "Alice", "ACCEPTED"),
            ),
            recurrence=obm.Recurrence(kind="weekly", freq=1, days="0010000"),
        )
    )
    pim.sync()
    pim.clock.advance(10)
    second = start + timedelta(weeks=1)
    third = start + timedelta(weeks=2)
    moved = _data_of(
        E(C, "Subject", text="weekly (moved)"),
        E(C, "StartTime", text=cal.format_compact(third + timedelta(hours=3))),
        E(C, "EndTime", text=cal.format_compact(third + timedelta(hours=4))),
    )
    out = pim.sync(
        [
            ClientCommand("Delete", f"7:{weekly.id}", instance_id=cal.format_compact(second)),
            ClientCommand(
                "Change", f"7:{weekly.id}", data=moved, instance_id=cal.format_compact(third)
            ),
            ClientCommand("Delete", f"7:{invited.id}", instance_id=cal.format_compact(second)),
        ]
    )
    assert responses_of(out, "Delete") == [] and responses_of(out, "Change") == []
    assert weekly.id is not None and invited.id is not None
    series = pim.double.events[weekly.id].event
    assert series.title == "weekly" and series.recurrence is not None
    assert cal.to_ms(second) in series.recurrence.exceptions
    (changed,) = series.recurrence.event_exceptions
    assert changed.title == "weekly (moved)" and changed.recurrence_id == cal.to_ms(third)
    # Bob's series is untouched; Alice declined that one occurrence.
    assert invited.id in pim.double.events
    calls = [c for c in pim.double.calls if c[1] == "changeParticipationState"]
    assert calls[-1][2]["state"] == ["DECLINED"]
    assert calls[-1][2]["recurrenceId"] == [str(cal.to_ms(second))]


def _data_of(*props: object) -> object:
    data = E(A, "ApplicationData")
    for p in props:
        data.append(p)  # type: ignore[arg-type]
    return data


def test_a_16_change_keeps_every_calendar_element_it_leaves_out() -> None:
    """MS-ASCAL 3.1.5.3: from 16.0 every top-level calendar element absent from a Change is
    ghosted, so a Change of the subject alone keeps time, place, reminder and recurrence."""
    pim = calendar_pim()
    pim.version = (16, 1)
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    weekly = pim.double.put_event(
        _event(
            "weekly",
            start,
            location="Room 4",
            alert=900,
            recurrence=obm.Recurrence(kind="weekly", freq=1, days="0010000"),
        )
    )
    pim.sync()
    pim.clock.advance(10)
    out = pim.sync([change_command(f"7:{weekly.id}", E(C, "Subject", text="weekly (renamed)"))])
    assert responses_of(out, "Change") == []
    assert weekly.id is not None
    stored = pim.double.events[weekly.id].event
    assert stored.title == "weekly (renamed)"
    assert (stored.location, stored.alert, stored.date) == ("Room 4", 900, cal.to_ms(start))
    assert stored.recurrence is not None and stored.recurrence.kind == "weekly"
