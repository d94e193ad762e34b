"""CardDAV address books against the real Radicale: discovery and the default book, change
detection with sync-collection (and an expired token), rendering, device Add/Change/Delete."""

from __future__ import annotations

import base64
import urllib.request
from typing import Any

import pytest
import pytest_twisted
from lxml import etree
from twisted.internet import reactor

from opush.backends.dav.client import DavClient
from opush.backends.dav.sources import DavContactsSource, DavFolderSource
from opush.backends.interfaces import BackendUnavailable, Credentials, UserIdentity
from opush.content import contacts as cn
from opush.storage.interfaces import FolderKind
from opush.sync.interfaces import RenderRequest
from opush.wbxml import E, ns
from tests.support.services import PASSWORD, LocalServices

pytestmark = pytest.mark.integration
C = ns.CONTACTS


def credentials(user: str) -> Credentials:
    login, _, domain = user.partition("@")
    return Credentials(UserIdentity(login, domain, user), PASSWORD)


def http(services: LocalServices, user: str, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    req = urllib.request.Request(services.radicale_url.rstrip("/") + path, data=body, method=method)
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def card(uid: str, first: str, last: str, email: str) -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nN:{last};{first};;;\r\nFN:{first} {last}\r\n"
        f"EMAIL;TYPE=INTERNET:{email}\r\nTEL;TYPE=CELL:+33 6 12 34 56 78\r\n"
        f"CATEGORIES:friends\r\nX-CUSTOM:kept\r\nEND:VCARD\r\n"
    ).encode()


async def book(services: LocalServices, user: str) -> tuple[DavClient, str]:
    client = DavClient(reactor, services.radicale_url, user, PASSWORD)
    folders = await DavFolderSource(client, FolderKind.CONTACTS).list_folders()
    assert [(f.folder_type, f.display_name) for f in folders] == [(9, "Contacts")]
    return client, folders[0].backend_id


REQ = RenderRequest(collection_id=1, version=(14, 1))


@pytest_twisted.ensureDeferred
async def test_default_book_changes_and_rendering(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    client, href = await book(radicale, fresh_dav_user)
    # Listing again finds the same book (no second one).
    again = await DavFolderSource(client, FolderKind.CONTACTS).list_folders()
    assert [f.backend_id for f in again] == [href]
    source = DavContactsSource(client, credentials(fresh_dav_user), href, 1)
    first = await source.changes(None)
    assert first.complete and first.changed == ()
    status, _ = http(radicale, fresh_dav_user, "PUT", f"{href}ann.vcf",
                     card("ann-1", "Ann", "Lee", "ann@example.com"),
                     {"Content-Type": "text/vcard"})  # fmt: skip
    assert status in (200, 201)
    news = await source.changes(first.cursor)
    assert [i.item_id for i in news.changed] == ["ann.vcf"] and not news.complete
    rendered = await source.render(["ann.vcf"], REQ)
    item = cn.parse_item(E(ns.AIRSYNC, "ApplicationData", *rendered["ann.vcf"]))
    assert (item.fields["FirstName"], item.fields["LastName"]) == ("Ann", "Lee")
    assert item.emails == ("ann@example.com",)
    assert item.phones == {"MobilePhoneNumber": "+33 6 12 34 56 78"}
    quiet = await source.changes(news.cursor)
    assert quiet.changed == () and quiet.gone == frozenset()
    http(radicale, fresh_dav_user, "DELETE", f"{href}ann.vcf")
    gone = await source.changes(quiet.cursor)
    assert gone.gone == frozenset({"ann.vcf"})
    # A token the server no longer knows: everything is listed again.
    stale = await source.changes({"token": "http://radicale.org/ns/sync/" + "0" * 64})
    assert stale.complete


@pytest_twisted.ensureDeferred
async def test_device_add_change_delete_reach_radicale(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    client, href = await book(radicale, fresh_dav_user)
    source = DavContactsSource(client, credentials(fresh_dav_user), href, 1)
    cursor = (await source.changes(None)).cursor
    data = E(
        ns.AIRSYNC,
        "ApplicationData",
        E(C, "Email1Address", text="bob@example.com"),
        E(C, "FirstName", text="Bob"),
        E(C, "LastName", text="Morane"),
        E(C, "JobTitle", text="Pilot"),
        E(C, "MobilePhoneNumber", text="+1 555 0100"),
    )
    added = await source.apply_add("c1", data, REQ)
    assert added.status == 1 and added.item_id and added.item_id.endswith(".vcf")
    status, body = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert status == 200 and b"FN:Bob Morane" in body and b"TITLE:Pilot" in body
    after = await source.changes(cursor)
    assert [i.item_id for i in after.changed] == [added.item_id]  # the engine skips its own
    # Another client adds a property opush does not model: a device Change keeps it.
    text = body.decode().replace("END:VCARD", "X-CUSTOM:kept\r\nEND:VCARD")
    http(radicale, fresh_dav_user, "PUT", f"{href}{added.item_id}", text.encode(),
         {"Content-Type": "text/vcard"})  # fmt: skip
    changed = E(
        ns.AIRSYNC,
        "ApplicationData",
        E(C, "FirstName", text="Bob"),
        E(C, "LastName", text="Morane-Smith"),
    )
    assert (await source.apply_change(added.item_id, changed, REQ)).status == 1
    _, body = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert b"N:Morane-Smith;Bob" in body and b"X-CUSTOM:kept" in body
    assert b"TITLE" not in body  # a Change is the whole contact (MS-ASCNTC)
    assert (await source.apply_change("nope.vcf", changed, REQ)).status == 8
    await source.apply_delete([added.item_id], False)
    status, _ = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_unreachable_server_is_backend_unavailable(fresh_dav_user: str) -> None:
    client = DavClient(reactor, "http://127.0.0.1:1/", fresh_dav_user, PASSWORD, timeout=2)
    with pytest.raises(BackendUnavailable):
        await DavFolderSource(client, FolderKind.CONTACTS).list_folders()


def _unused(*_: Any) -> None:
    etree.Element("x")


EVENT = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:weekly-1\r\n"
    "DTSTAMP:20261101T000000Z\r\nDTSTART;TZID=Europe/Paris:20261123T090000\r\n"
    "DTEND;TZID=Europe/Paris:20261123T093000\r\nSUMMARY:Standup\r\nLOCATION:Room 1\r\n"
    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10\r\nEXDATE;TZID=Europe/Paris:20261125T090000\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20261101T000000Z\r\n"
    "RECURRENCE-ID;TZID=Europe/Paris:20261130T090000\r\n"
    "DTSTART;TZID=Europe/Paris:20261130T110000\r\nDTEND;TZID=Europe/Paris:20261130T113000\r\n"
    "SUMMARY:Standup (late)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest_twisted.ensureDeferred
async def test_calendar_events_both_ways(radicale: LocalServices, fresh_dav_user: str) -> None:
    from datetime import UTC, datetime

    from opush.backends.dav.sources import DavCalendarSource
    from opush.content import calendar as cal

    client = DavClient(reactor, radicale.radicale_url, fresh_dav_user, PASSWORD)
    folders = await DavFolderSource(client, FolderKind.CALENDAR).list_folders()
    assert [(f.folder_type, f.display_name) for f in folders] == [(8, "Calendar")]
    href = folders[0].backend_id
    source = DavCalendarSource(client, credentials(fresh_dav_user), href, 2)
    cursor = (await source.changes(None)).cursor
    status, _ = http(radicale, fresh_dav_user, "PUT", f"{href}weekly.ics", EVENT.encode(),
                     {"Content-Type": "text/calendar"})  # fmt: skip
    assert status in (200, 201)
    past = EVENT.replace("weekly-1", "old-1").replace(
        "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10\r\n", ""
    )
    past = past.replace("20261123T09", "20200106T09").replace("20261123T093000", "20200106T093000")
    http(
        radicale,
        fresh_dav_user,
        "PUT",
        f"{href}old.ics",
        past.encode(),
        {"Content-Type": "text/calendar"},
    )
    news = await source.changes(cursor)
    dates = {i.item_id: i.date for i in news.changed}
    # FilterType: a single event is dated by its end, a recurring one is always in range.
    assert dates["weekly.ics"] is None
    assert dates["old.ics"] == datetime(2020, 1, 6, 8, 30, tzinfo=UTC)
    rendered = await source.render(["weekly.ics"], REQ)
    item = cal.parse_item(E(ns.AIRSYNC, "ApplicationData", *rendered["weekly.ics"]))
    assert item.subject == "Standup" and item.location == "Room 1" and item.reminder == 10
    assert item.start == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert item.recurrence is not None and item.recurrence.type == 1
    assert (item.recurrence.day_of_week, item.recurrence.occurrences) == (2 | 8, 10)
    deleted = [x for x in item.exceptions if x.deleted]
    moved = [x for x in item.exceptions if not x.deleted]
    assert [x.exception_start for x in deleted] == [datetime(2026, 11, 25, 8, 0, tzinfo=UTC)]
    assert [(x.start, x.subject) for x in moved] == [
        (datetime(2026, 11, 30, 10, 0, tzinfo=UTC), "Standup (late)")
    ]

    # The device adds an event, changes its subject, deletes it.
    new = cal.CalendarItem(
        start=datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
        end=datetime(2026, 12, 24, 9, 0, tzinfo=UTC),
        timezone="Europe/Paris",
        subject="Dentist",
        reminder=15,
    )
    added = await source.apply_add(
        "c1", E(ns.AIRSYNC, "ApplicationData", *cal.render_item(new, (14, 1))), REQ
    )
    assert added.status == 1 and added.item_id
    status, body = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert status == 200 and b"SUMMARY:Dentist" in body and b"TZID=Europe/Paris" in body
    moved_item = cal.render_item(
        cal.CalendarItem(
            start=new.start, end=new.end, timezone="Europe/Paris", subject="Dentist (moved)"
        ),
        (14, 1),
    )
    changed = await source.apply_change(
        added.item_id, E(ns.AIRSYNC, "ApplicationData", *moved_item), REQ
    )
    assert changed.status == 1
    _, body = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert b"SUMMARY:Dentist (moved)" in body and b"SEQUENCE:1" in body
    await source.apply_delete([added.item_id], False)
    status, _ = http(radicale, fresh_dav_user, "GET", f"{href}{added.item_id}")
    assert status == 404


INVITATION = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:invite-1\r\n"
    "DTSTAMP:20261101T000000Z\r\nDTSTART:20261210T140000Z\r\nDTEND:20261210T150000Z\r\n"
    "SUMMARY:Budget\r\nORGANIZER;CN=Bob:mailto:bob@example.org\r\n"
    "ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN=Me:mailto:{me}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest_twisted.ensureDeferred
async def test_meeting_responses_put_the_event_in_the_calendar(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    from types import SimpleNamespace

    from opush.backends.dav import DavAccounts
    from opush.backends.dav.meetings import DavMeetingResponses, uid_of
    from opush.content.email.imip import MeetingAnswer

    accounts = DavAccounts(reactor, radicale.radicale_url)
    hook = DavMeetingResponses(accounts)

    async def no_collection(*_: Any) -> None:
        return None

    ctx = SimpleNamespace(
        credentials=credentials(fresh_dav_user),
        device=SimpleNamespace(user=fresh_dav_user, device_id="D"),
        runtime=SimpleNamespace(state=SimpleNamespace(find_collection=no_collection)),
    )
    invitation = INVITATION.format(me=fresh_dav_user)
    assert uid_of(invitation) == "invite-1"
    await hook.record(ctx, invitation, MeetingAnswer.ACCEPTED, None)
    status, body = http(radicale, fresh_dav_user, "PROPFIND", f"/{fresh_dav_user}/calendar/",
                        None, {"Depth": "1"})  # fmt: skip
    hrefs = [
        h.text
        for h in etree.fromstring(body).iter("{DAV:}href")
        if h.text and h.text.endswith(".ics")
    ]
    assert len(hrefs) == 1
    _, event = http(radicale, fresh_dav_user, "GET", hrefs[0])
    text = event.decode()
    assert "PARTSTAT=ACCEPTED" in text and "METHOD" not in text and "RSVP" not in text
    await hook.record(ctx, invitation, MeetingAnswer.TENTATIVE, None)
    _, event = http(radicale, fresh_dav_user, "GET", hrefs[0])
    assert "PARTSTAT=TENTATIVE" in event.decode()
    await hook.record(ctx, invitation, MeetingAnswer.DECLINED, None)
    status, _ = http(radicale, fresh_dav_user, "GET", hrefs[0])
    assert status == 404
    await accounts.close()


@pytest_twisted.ensureDeferred
async def test_answers_to_one_occurrence(radicale: LocalServices, fresh_dav_user: str) -> None:
    """MeetingResponse with InstanceId: the occurrence is overridden (accepted) or excluded
    (declined) in the CalDAV copy; the rest of the series keeps its own answer."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from opush.backends.dav import DavAccounts
    from opush.backends.dav.meetings import DavMeetingResponses
    from opush.content.email.imip import MeetingAnswer
    from opush.content.ical import parse_event

    accounts = DavAccounts(reactor, radicale.radicale_url)
    hook = DavMeetingResponses(accounts)

    async def no_collection(*_: Any) -> None:
        return None

    ctx = SimpleNamespace(
        credentials=credentials(fresh_dav_user),
        device=SimpleNamespace(user=fresh_dav_user, device_id="D"),
        runtime=SimpleNamespace(state=SimpleNamespace(find_collection=no_collection)),
    )
    invitation = (
        INVITATION.format(me=fresh_dav_user)
        .replace("UID:invite-1", "UID:weekly-1")
        .replace("SUMMARY:Budget", "SUMMARY:Weekly\r\nRRULE:FREQ=WEEKLY;COUNT=5")
    )
    await hook.record(ctx, invitation, MeetingAnswer.ACCEPTED, None)  # the series
    await hook.record(ctx, invitation, MeetingAnswer.TENTATIVE, "2026-12-17T14:00:00.000Z")
    await hook.record(ctx, invitation, MeetingAnswer.DECLINED, "20261224T140000Z")
    _, body = http(radicale, fresh_dav_user, "PROPFIND", f"/{fresh_dav_user}/calendar/",
                   None, {"Depth": "1"})  # fmt: skip
    (href,) = [
        h.text
        for h in etree.fromstring(body).iter("{DAV:}href")
        if h.text and h.text.endswith(".ics")
    ]
    _, event = http(radicale, fresh_dav_user, "GET", href)
    item = parse_event(event.decode(), user_email=fresh_dav_user)
    assert item is not None and item.response_type == 3  # the series: accepted
    assert [(x.exception_start, x.deleted) for x in item.exceptions] == [
        (datetime(2026, 12, 17, 14, tzinfo=UTC), False),
        (datetime(2026, 12, 24, 14, tzinfo=UTC), True),
    ]
    assert "PARTSTAT=TENTATIVE" in event.decode().split("RECURRENCE-ID")[1]
    await accounts.close()


@pytest_twisted.ensureDeferred
async def test_folders_created_renamed_deleted_from_the_device(
    radicale: LocalServices, fresh_dav_user: str
) -> None:
    from opush.sync.hierarchy import FolderExists, FolderNotFound

    client = DavClient(reactor, radicale.radicale_url, fresh_dav_user, PASSWORD)
    books = DavFolderSource(client, FolderKind.CONTACTS)
    (default,) = await books.list_folders()
    assert books.creatable_types == frozenset({14})
    team = await books.create(default, "Team", 14)
    assert (team.folder_type, team.parent_backend_id) == (14, default.backend_id)
    listed = {f.display_name: f for f in await books.list_folders()}
    assert listed["Team"].folder_type == 14 and listed["Contacts"].folder_type == 9
    with pytest.raises(FolderExists):
        await books.create(default, "Team", 14)
    assert await books.rename(team, default, "Team B") == {team.backend_id: team.backend_id}
    assert "Team B" in {f.display_name for f in await books.list_folders()}
    assert await books.delete(team) == [team.backend_id]
    assert [f.display_name for f in await books.list_folders()] == ["Contacts"]
    with pytest.raises(FolderNotFound):
        await books.delete(team)


@pytest_twisted.ensureDeferred
async def test_availability_from_free_busy(radicale: LocalServices, fresh_dav_user: str) -> None:
    """ResolveRecipients availability (MS-ASCMD 2.2.3.99 MergedFreeBusy) from an RFC 4791
    free-busy-query, read as the free/busy account (dav.freebusy.login): busy and tentative
    half-hours, free elsewhere; nobody readable: None (Status 163)."""
    from datetime import UTC, datetime

    from opush.backends.dav import DavAccounts
    from opush.backends.dav.freebusy import DavAvailability

    accounts = DavAccounts(reactor, radicale.radicale_url)
    owner = DavClient(reactor, radicale.radicale_url, fresh_dav_user, PASSWORD)
    await owner.make_collection("calendar", "calendar", "Calendar")
    for name, start, end, extra in (
        ("a", "20261201T090000Z", "20261201T100000Z", ""),
        ("b", "20261201T110000Z", "20261201T113000Z", "STATUS:TENTATIVE\r\n"),
    ):
        event = (
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:fb-{name}\r\n"
            f"DTSTAMP:20261101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\n{extra}"
            "SUMMARY:private\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        status, _ = http(radicale, fresh_dav_user, "PUT", f"/{fresh_dav_user}/calendar/{name}.ics",
                         event.encode(), {"Content-Type": "text/calendar"})  # fmt: skip
        assert status in (200, 201)
    reader = DavAvailability(accounts, "freebusy@example.org", PASSWORD)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    end = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    merged = await reader.merged(credentials("alice@example.org"), fresh_dav_user, start, end)
    # 08:00 08:30 | 09:00 09:30 busy | 10:00 10:30 free | 11:00 tentative | 11:30 free
    assert merged == "00220010"
    # Alice's own rights (owner_only) cannot read it: no data, not an error.
    as_alice = DavAvailability(accounts)
    assert (
        await as_alice.merged(credentials("alice@example.org"), fresh_dav_user, start, end) is None
    )
    await accounts.close()
