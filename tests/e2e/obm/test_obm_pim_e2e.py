"""Calendars and address books of the obm profile, end to end over HTTP: obm-sync double over
HTTP, OBM's tables in PostgreSQL, mail on Dovecot and Postfix.  The device's calendar and
contact requests are encoded by libwbxml2's ``xml2wbxml`` (pyactivesync has no Calendar or
Contacts2 code page)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import attrs
import pytest
import pytest_twisted
from lxml import etree
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from opush.backends.obmsync import xml as obm
from opush.content import calendar as cal
from opush.content import contacts as cn
from opush.content.email.tzblob import encode_base64, rule_from_tzinfo
from opush.wbxml import E, decode, ns
from tests.e2e.obm.conftest import ObmPimServer
from tests.support.folders import HAVE_LIBWBXML
from tests.support.obmdb import sql
from tests.support.obmpim import libwbxml_encode, post_raw
from tests.support.obmsync import credentials
from tests.support.sync import EasDevice, SyncAnswer, body_options

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(not HAVE_LIBWBXML, reason="libwbxml2-utils (xml2wbxml) not installed"),
]

T = TypeVar("T")
A, C, FH, MR = ns.AIRSYNC, ns.CALENDAR, ns.FOLDERHIERARCHY, ns.MEETINGRESPONSE
USER = "alice@example.org"
PARIS = ZoneInfo("Europe/Paris")


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


@attrs.define
class Phone:
    """A device of alice: our trees for folder and mail commands, libwbxml2 for PIM data."""

    device: EasDevice
    keys: dict[int, str] = attrs.field(factory=dict)
    folder_key: str = "0"

    def folder_sync(self) -> list[tuple[str, dict[str, str]]]:
        tree = E(FH, "FolderSync", E(FH, "SyncKey", text=self.folder_key))
        response = self.device.post("FolderSync", tree)
        assert response.status_code == 200, response.status_code
        root = decode(response.content)
        assert root.findtext(f"{{{FH}}}Status") == "1"
        self.folder_key = root.findtext(f"{{{FH}}}SyncKey") or ""
        out = []
        changes = root.find(f"{{{FH}}}Changes")
        for change in changes if changes is not None else ():
            kind = etree.QName(change).localname
            if kind == "Count":
                continue
            out.append((kind, {etree.QName(c).localname: c.text or "" for c in change}))
        return out

    def sync(
        self,
        collection_id: int,
        commands: list[etree._Element] | None = None,
        *,
        options: etree._Element | None = None,
        libwbxml: bool = True,
    ) -> SyncAnswer:
        if collection_id not in self.keys:
            first = self.device.sync(collection_id, "0", options=options)
            assert first.status == 1
            self.keys[collection_id] = first.sync_key or ""
        tree = self.device.sync_request(
            collection_id,
            self.keys[collection_id],
            window=100,
            options=options,
            commands=commands or [],
        )
        if libwbxml:
            response = post_raw(self.device, "Sync", libwbxml_encode(tree))
            assert response.status_code == 200, response.status_code
            if response.content:
                root = decode(response.content)
                col = root.find(f"{{{A}}}Collections/{{{A}}}Collection")
                answer = SyncAnswer(root, col, 200, response.content)
            else:  # empty Sync response: nothing new
                answer = SyncAnswer(None, None, 200, b"")
        else:
            answer = self.device.send_sync(tree)
        assert answer.status == 1, etree.tostring(answer.root) if answer.root is not None else None
        if not answer.empty:
            self.keys[collection_id] = answer.sync_key or ""
        return answer


def add(client_id: str, props: list[etree._Element]) -> etree._Element:
    return E(A, "Add", E(A, "ClientId", text=client_id), E(A, "ApplicationData", *props))


def response_ids(answer: SyncAnswer) -> dict[str, tuple[str, str]]:
    """ClientId -> (Status, ServerId) of the Add responses."""
    out = {}
    for r in answer.responses():
        if etree.QName(r).localname == "Add":
            out[r.findtext(f"{{{A}}}ClientId") or ""] = (
                r.findtext(f"{{{A}}}Status") or "",
                r.findtext(f"{{{A}}}ServerId") or "",
            )
    return out


def ios_paris_blob() -> str:
    """The TimeZone iOS sends for Paris (the zone's rule, without a zone name)."""
    return encode_base64(rule_from_tzinfo(PARIS, 2026, name=""))


def invitation_mail(uid: str, start: datetime) -> bytes:
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    end = (start + timedelta(hours=1)).strftime("%Y%m%dT%H%M%SZ")
    ics = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//OBM//obm-sync//EN",
            "VERSION:2.0",
            "METHOD:REQUEST",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{stamp}",
            f"DTSTART:{stamp}",
            f"DTEND:{end}",
            "SUMMARY:Planning",
            "ORGANIZER;CN=Bob Morane:mailto:bob@example.org",
            "ATTENDEE;CN=Alice;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:alice@example.org",
            "SEQUENCE:0",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    encoded = base64.encodebytes(ics.encode()).decode()
    return (
        "From: Bob Morane <bob@example.org>\r\n"
        "To: alice@example.org\r\n"
        "Subject: Invitation: Planning\r\n"
        f"Message-ID: <{uuid.uuid4()}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited.\r\n"
        "--b1\r\nContent-Type: text/calendar; charset=utf-8; method=REQUEST\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}\r\n--b1--\r\n"
    ).encode()


@pytest_twisted.ensureDeferred
async def test_calendars_and_address_books_both_ways(obm_pim_server: ObmPimServer) -> None:
    server = obm_pim_server
    double = server.obm.double
    alice, bob = double.user(USER), double.user("bob@example.org")
    team = double.add_book(bob, "team")
    double.subscribe(alice, team)
    start = datetime(2026, 12, 7, 9, 0, tzinfo=PARIS)  # a Monday
    weekly = double.put_event(
        obm.Event(
            title="weekly",
            owner="alice",
            owner_email=USER,
            tz="Europe/Paris",
            date=cal.to_ms(start),
            duration=3600,
            attendees=(obm.Attendee(USER, "Alice", "ACCEPTED", "CHAIR", is_organizer=True),),
            recurrence=obm.Recurrence(
                kind="weekly",
                freq=1,
                days="0100000",
                exceptions=(cal.to_ms(start + timedelta(weeks=1)),),
                event_exceptions=(
                    obm.Event(
                        title="weekly (moved)",
                        owner="alice",
                        tz="Europe/Paris",
                        date=cal.to_ms(start + timedelta(weeks=2, hours=3)),
                        duration=3600,
                        recurrence_id=cal.to_ms(start + timedelta(weeks=2)),
                        attendees=(
                            obm.Attendee(USER, "Alice", "ACCEPTED", "CHAIR", is_organizer=True),
                        ),
                    ),
                ),
            ),
        )
    )

    device = EasDevice(server.host, USER, "OBMPIM1", version="14.1")
    phone = Phone(device)
    try:
        # Authentication through obm-sync, device registered in opush_device.
        await blocking(device.provision)
        rows = sql(server.db, "SELECT type FROM opush_device WHERE identifier = %s", ("OBMPIM1",))
        assert rows and rows[0][0]

        # FolderSync: mail, the calendar, the address books (users book under contacts).
        folders = await blocking(phone.folder_sync)
        adds = {f["DisplayName"]: f for kind, f in folders if kind == "Add"}
        assert adds["Inbox"]["Type"] == "2"
        calendar_id = int(adds["alice calendar"]["ServerId"])
        assert adds["alice calendar"]["Type"] == "8"
        contacts_id = int(adds["contacts"]["ServerId"])
        assert adds["contacts"]["Type"] == "9"
        users = adds["OBM users"]
        assert (users["Type"], users["ParentId"]) == ("14", str(contacts_id))
        team_id = adds["team (Bob Morane)"]["ServerId"]
        inbox_id = int(adds["Inbox"]["ServerId"])

        # Calendar, server -> device: the recurring event with a deleted and a moved occurrence.
        answer = await blocking(lambda: phone.sync(calendar_id))
        (event_add,) = answer.of("Add")
        assert event_add.findtext(f"{{{A}}}ServerId") == f"{calendar_id}:{weekly.id}"
        data = event_add.find(f"{{{A}}}ApplicationData")
        assert data is not None
        item = cal.parse_item(data)
        assert item.timezone == "Europe/Paris" and item.recurrence is not None
        assert [(x.deleted, x.subject) for x in item.exceptions] == [
            (True, None),
            (False, "weekly (moved)"),
        ]

        # Calendar, device -> server: a recurring event with one deleted and one moved
        # occurrence, and an all-day event as iOS sends it.
        series_start = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
        series = cal.CalendarItem(
            start=series_start,
            end=series_start + timedelta(hours=1),
            timezone="Europe/Paris",
            subject="standup",
            uid="dev-standup-1",
            recurrence=cal.Recurrence(type=0, interval=1, occurrences=10),
            exceptions=(
                cal.CalException(series_start + timedelta(days=2), deleted=True),
                cal.CalException(
                    series_start + timedelta(days=3),
                    start=series_start + timedelta(days=3, hours=2),
                    end=series_start + timedelta(days=3, hours=3),
                    subject="standup (late)",
                ),
            ),
        )
        all_day = [
            E(C, "Timezone", text=ios_paris_blob()),
            E(C, "AllDayEvent", text=1),
            E(C, "BusyStatus", text=0),
            E(C, "DtStamp", text="20261201T100000Z"),
            E(C, "EndTime", text="20261225T230000Z"),
            E(C, "Sensitivity", text=0),
            E(C, "Subject", text="Christmas"),
            E(C, "StartTime", text="20261224T230000Z"),
            E(C, "MeetingStatus", text=0),
        ]
        answer = await blocking(
            lambda: phone.sync(
                calendar_id,
                [add("cal-1", cal.render_item(series, (14, 1))), add("cal-2", all_day)],
            )
        )
        ids = response_ids(answer)
        assert ids["cal-1"][0] == ids["cal-2"][0] == "1"
        created = double.events[int(ids["cal-1"][1].split(":")[1])].event
        assert created.recurrence.kind == "daily"
        assert created.recurrence.exceptions == (cal.to_ms(series_start + timedelta(days=2)),)
        (moved,) = created.recurrence.event_exceptions
        assert moved.title == "standup (late)"
        christmas = double.events[int(ids["cal-2"][1].split(":")[1])].event
        local = cal.from_ms(christmas.date or 0).astimezone(PARIS)
        assert christmas.all_day and christmas.tz == "Europe/Paris"
        assert (local.month, local.day, local.hour) == (12, 25, 0)  # not the day before (OP-97)

        # Device deletes the all-day event: removeEvent.
        await blocking(
            lambda: phone.sync(
                calendar_id, [E(A, "Delete", E(A, "ServerId", text=ids["cal-2"][1]))]
            )
        )
        assert christmas.id not in double.events

        # Contacts, device -> server; the same contact again (Android's new ClientId) is
        # not created twice (OP-139).
        ann = cn.ContactItem(
            fields={"FirstName": "Ann", "LastName": "Lee", "JobTitle": "CTO", "NickName": "annie"},
            emails=("ann@example.net",),
            phones={"MobilePhoneNumber": "+33 6 00 00 00 00"},
        )
        props = cn.render_item(ann, (14, 1))
        answer = await blocking(lambda: phone.sync(contacts_id, [add("ct-1", props)]))
        ((status, contact_sid),) = response_ids(answer).values()
        assert status == "1"
        uid = int(contact_sid.split(":")[1])
        stored = double.contacts[uid].contact
        assert (stored.first, stored.title, stored.aka) == ("Ann", "CTO", "annie")
        answer = await blocking(lambda: phone.sync(contacts_id, [add("ct-2", props)]))
        assert response_ids(answer)["ct-2"] == ("1", contact_sid)
        assert len([c for c in double.contacts.values() if c.contact.first == "Ann"]) == 1

        # Contacts, server -> device.
        other_client = server.obm.client()
        try:
            book = double.contacts[uid].book
            await other_client.store_contact(
                credentials(USER), book, obm.Contact(first="Zoe", last="Zulu")
            )
        finally:
            await other_client.close()
        answer = await blocking(lambda: phone.sync(contacts_id))
        names = [
            a.findtext(f"{{{A}}}ApplicationData/{{{ns.CONTACTS}}}FirstName")
            for a in answer.of("Add")
        ]
        assert names == ["Zoe"]

        # MeetingResponse accept of bob's invitation (received by mail).
        meeting_start = datetime(2026, 12, 15, 14, 0, tzinfo=UTC)
        invitation = double.put_event(
            obm.Event(
                title="Planning",
                owner="bob",
                owner_email="bob@example.org",
                tz="UTC",
                date=cal.to_ms(meeting_start),
                duration=3600,
                attendees=(
                    obm.Attendee("bob@example.org", "Bob", "ACCEPTED", "CHAIR", is_organizer=True),
                    obm.Attendee(USER, "Alice", "NEEDS-ACTION"),
                ),
            )
        )
        answer = await blocking(lambda: phone.sync(calendar_id))
        assert answer.of("Add") == []  # unanswered: obm-sync keeps it from a push origin
        server.services.deliver(USER, invitation_mail(invitation.ext_id or "", meeting_start))
        answer = await blocking(
            lambda: phone.sync(inbox_id, options=body_options(), libwbxml=False)
        )
        mail_sid = next(
            a.findtext(f"{{{A}}}ServerId") or ""
            for a in answer.of("Add")
            if a.findtext(f"{{{A}}}ApplicationData/{{{ns.EMAIL}}}Subject") == "Invitation: Planning"
        )
        request = E(
            MR,
            "MeetingResponse",
            E(
                MR,
                "Request",
                E(MR, "UserResponse", text=1),
                E(MR, "CollectionId", text=inbox_id),
                E(MR, "RequestId", text=mail_sid),
            ),
        )
        response = await blocking(lambda: device.post("MeetingResponse", request))
        result = decode(response.content).find(f"{{{MR}}}Result")
        assert result is not None
        assert result.findtext(f"{{{MR}}}Status") == "1"
        assert result.findtext(f"{{{MR}}}CalendarId") == f"{calendar_id}:{invitation.id}"
        assert invitation.id is not None
        accepted = double.events[invitation.id].event.attendee(USER)
        assert accepted is not None and accepted.state == "ACCEPTED"
        answer = await blocking(lambda: phone.sync(calendar_id))
        assert [a.findtext(f"{{{A}}}ServerId") for a in answer.of("Add")] == [
            f"{calendar_id}:{invitation.id}"
        ]

        # A removed address book is removed from the device (FolderSync Delete).
        double.unsubscribe(alice, team)
        changes = await blocking(phone.folder_sync)
        assert ("Delete", {"ServerId": team_id}) in changes
    finally:
        await blocking(device.close)


@pytest_twisted.ensureDeferred
async def test_ping_wakes_up_for_calendar_and_contact_changes(
    obm_pim_server: ObmPimServer,
) -> None:
    """obm-sync has no notifications: opush polls it, and a held Ping answers Status 2 with
    the calendar (then the address book) soon after someone changes it in OBM."""
    server = obm_pim_server
    double = server.obm.double
    alice = double.user(USER)
    device = EasDevice(server.host, USER, "OBMPING1", version="14.1")
    phone = Phone(device)
    ping_ns = ns.PING

    def ping(*folders: tuple[int, str]) -> list[str]:
        tree = E(
            ping_ns,
            "Ping",
            E(ping_ns, "HeartbeatInterval", text=120),
            E(
                ping_ns,
                "Folders",
                *(
                    E(
                        ping_ns,
                        "Folder",
                        E(ping_ns, "Id", text=fid),
                        E(ping_ns, "Class", text=cls),
                    )
                    for fid, cls in folders
                ),
            ),
        )
        root = decode(device.post("Ping", tree).content)
        assert root.findtext(f"{{{ping_ns}}}Status") == "2", etree.tostring(root)
        return [f.text or "" for f in root.iter(f"{{{ping_ns}}}Folder")]

    try:
        await blocking(device.provision)
        adds = {f["DisplayName"]: f for kind, f in await blocking(phone.folder_sync)}
        calendar_id = int(adds["alice calendar"]["ServerId"])
        contacts_id = int(adds["contacts"]["ServerId"])
        await blocking(lambda: phone.sync(calendar_id))
        await blocking(lambda: phone.sync(contacts_id))
        folders = ((calendar_id, "Calendar"), (contacts_id, "Contacts"))

        held = blocking(lambda: ping(*folders))
        await deferLater(reactor, 1.0, lambda: None)
        double.put_event(
            obm.Event(
                title="pushed",
                owner="alice",
                owner_email=USER,
                tz="UTC",
                date=cal.to_ms(datetime(2027, 2, 1, 9, 0, tzinfo=UTC)),
                duration=600,
                attendees=(obm.Attendee(USER, state="ACCEPTED", is_organizer=True),),
            )
        )
        assert await held == [str(calendar_id)]
        answer = await blocking(lambda: phone.sync(calendar_id))
        assert len(answer.of("Add")) == 1

        held = blocking(lambda: ping(*folders))
        await deferLater(reactor, 1.0, lambda: None)
        book = next(b for b in double.books.values() if b.owner is alice)
        client = server.obm.client()
        try:
            await client.store_contact(credentials(USER), book.id, obm.Contact(first="Pushed"))
        finally:
            await client.close()
        assert await held == [str(contacts_id)]
    finally:
        await blocking(device.close)
