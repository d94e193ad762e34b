"""MeetingResponse for invitations received by mail, and the iMIP REPLY it sends."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import default as default_policy
from typing import Any

import pytest
import pytest_twisted

from opush.backends.smtp import SmtpUnavailable
from opush.commands import meetingresponse
from opush.content.email import Identity
from opush.content.email.ics import parse_ics
from opush.content.email.imip import MeetingAnswer, NotAnInvitation, invitation_in, meeting_reply
from opush.wbxml import E, decode, encode, ns
from tests.support.send import invitation_mail, meeting_response_tree, text_mail
from tests.unit.send.conftest import World

ALICE = "alice@example.org"
ORGANIZER = "olivia@example.org"
MR = "{MeetingResponse:}"


def reply_event(mime: bytes) -> Any:
    msg = email.message_from_bytes(mime, policy=default_policy)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "REPLY"
    root = parse_ics(part.get_content())
    cal = next(root.find("VCALENDAR"))
    assert cal.value("METHOD") == "REPLY"
    return msg, next(root.find("VEVENT"))


@pytest.mark.parametrize(
    ("answer", "partstat", "subject"),
    [
        (MeetingAnswer.ACCEPTED, "ACCEPTED", "Accepted: Review"),
        (MeetingAnswer.TENTATIVE, "TENTATIVE", "Tentative: Review"),
        (MeetingAnswer.DECLINED, "DECLINED", "Declined: Review"),
    ],
)
def test_imip_reply_has_what_rfc5546_requires(
    answer: MeetingAnswer, partstat: str, subject: str
) -> None:
    ics = invitation_in(invitation_mail(ORGANIZER, ALICE, "ev-1@example.org", "Review"))
    assert ics is not None
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    reply = meeting_reply(ics, Identity(ALICE, "Alice Martin"), answer, now=now)
    assert reply.organizer == ORGANIZER and reply.uid == "ev-1@example.org"
    msg, event = reply_event(reply.mime)
    assert msg["Subject"] == subject and ORGANIZER in str(msg["To"])
    assert event.value("UID") == "ev-1@example.org"
    assert event.value("SEQUENCE") == "2"
    assert event.value("DTSTAMP") == "20260301T080000Z"
    assert event.value("ORGANIZER") == f"mailto:{ORGANIZER}"
    (attendee,) = event.all("ATTENDEE")
    assert attendee.value == f"mailto:{ALICE}"
    assert attendee.params["PARTSTAT"] == partstat
    assert "RSVP" not in attendee.params and attendee.params["CN"] == "Attendee"


def test_instance_reply_names_its_recurrence_id_and_lines_are_folded() -> None:
    ics = invitation_in(invitation_mail(ORGANIZER, ALICE, "x" * 120 + "@example.org", "Weekly"))
    assert ics is not None
    reply = meeting_reply(
        ics, Identity(ALICE), MeetingAnswer.ACCEPTED, instance_id="2030-10-08T10:00:00.000Z"
    )
    assert all(len(line.encode()) <= 75 for line in reply.ics.split("\r\n"))
    _, event = reply_event(reply.mime)
    assert event.value("RECURRENCE-ID") == "20301008T100000Z"
    assert event.value("UID") == "x" * 120 + "@example.org"


def test_not_an_invitation() -> None:
    cancel = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "METHOD:CANCEL",
            "BEGIN:VEVENT",
            "UID:1",
            "ORGANIZER:mailto:o@x.org",
            "END:VEVENT",
            "END:VCALENDAR",
        ]
    )
    with pytest.raises(NotAnInvitation):
        meeting_reply(cancel, Identity(ALICE), MeetingAnswer.ACCEPTED)
    with pytest.raises(NotAnInvitation):
        meeting_reply(
            "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", Identity(ALICE), MeetingAnswer.ACCEPTED
        )
    assert invitation_in(text_mail(ORGANIZER, ALICE, "plain", "no calendar\n")) is None


def results(tree: Any) -> list[dict[str, str | None]]:
    root = decode(encode(tree, "16.1"))
    return [
        {
            "RequestId": r.findtext(f"{MR}RequestId"),
            "Status": r.findtext(f"{MR}Status"),
            "CalendarId": r.findtext(f"{MR}CalendarId"),
        }
        for r in root.iter(f"{MR}Result")
    ]


@pytest_twisted.ensureDeferred
async def test_accept_sends_the_reply_and_removes_the_request(world: World) -> None:
    uid = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-2", "Planning"))
    tree = meeting_response_tree([(1, "1", f"1:{uid}")])
    result = await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(14, 1))
    assert results(result.tree) == [{"RequestId": f"1:{uid}", "Status": "1", "CalendarId": None}]
    (sent,) = world.smtp.sent
    assert sent.recipients == (ORGANIZER,)
    _, event = reply_event(sent.data)
    assert event.all("ATTENDEE")[0].params["PARTSTAT"] == "ACCEPTED"
    assert world.store.boxes["INBOX"].messages == {}
    assert world.store.subjects("Trash") == ["Invitation: Planning"]


@pytest_twisted.ensureDeferred
async def test_16_sends_only_with_send_response(world: World) -> None:
    first = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-3", "A"))
    second = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-4", "B"))
    quiet = meeting_response_tree([(3, "1", f"1:{first}")])
    await world.run(meetingresponse.handle, "MeetingResponse", quiet, version=(16, 1))
    assert world.smtp.sent == []
    loud = meeting_response_tree([(3, "1", f"1:{second}")], send_response=True)
    await world.run(meetingresponse.handle, "MeetingResponse", loud, version=(16, 1))
    assert len(world.smtp.sent) == 1


@pytest_twisted.ensureDeferred
async def test_statuses_per_request(world: World) -> None:
    plain = world.store.add("INBOX", text_mail(ORGANIZER, ALICE, "plain", "no invite\n"))
    invite = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-5", "C"))
    tree = meeting_response_tree(
        [
            (1, "1", f"1:{plain}"),  # no invitation in it
            (1, "1", "1:999"),  # gone
            (7, "1", f"1:{invite}"),  # not a UserResponse
            (1, "9", "9:1"),  # unknown collection
        ]
    )
    result = await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(14, 1))
    assert [r["Status"] for r in results(result.tree)] == ["2", "2", "2", "2"]
    world.smtp.failure = SmtpUnavailable("down")
    again = meeting_response_tree([(1, "1", f"1:{invite}")])
    result = await world.run(meetingresponse.handle, "MeetingResponse", again, version=(14, 1))
    assert [r["Status"] for r in results(result.tree)] == ["4"]
    assert invite in world.store.boxes["INBOX"].messages  # kept: the device may retry


@pytest_twisted.ensureDeferred
async def test_calendar_hook_gives_the_calendar_id(world: World) -> None:
    calls: list[Any] = []

    class Hook:
        async def record(self, ctx: Any, ics: str, answer: Any, instance: Any) -> str:
            calls.append((answer, "UID:ev-6" in ics, instance))
            return "4:abc"

    world.services["meeting_responses"] = Hook()
    uid = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-6", "D"))
    tree = meeting_response_tree([(2, "1", f"1:{uid}")])
    result = await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(14, 1))
    assert results(result.tree)[0]["CalendarId"] == "4:abc"
    assert calls == [(MeetingAnswer.TENTATIVE, True, None)]


@pytest_twisted.ensureDeferred
async def test_without_root_element(world: World) -> None:
    from opush.http.errors import EasStatusError

    with pytest.raises(EasStatusError):
        await world.run(meetingresponse.handle, "MeetingResponse", E(ns.MEETINGRESPONSE, "Request"))


def texts(mime: bytes) -> str:
    msg = email.message_from_bytes(mime, policy=default_policy)
    return "\n".join(str(p.get_content()) for p in msg.walk() if p.get_content_maintype() == "text")


def test_reply_with_a_comment_and_a_proposed_time() -> None:
    ics = invitation_in(invitation_mail(ORGANIZER, ALICE, "ev-7", "Review"))
    assert ics is not None
    start, end = datetime(2030, 10, 9, 14, tzinfo=UTC), datetime(2030, 10, 9, 15, tzinfo=UTC)
    plain = meeting_reply(
        ics, Identity(ALICE), MeetingAnswer.ACCEPTED, comment="See you; bring slides, please"
    )
    _, event = reply_event(plain.mime)
    assert event.value("COMMENT") == "See you\\; bring slides\\, please"
    assert "bring slides" in texts(plain.mime)
    counter = meeting_reply(
        ics, Identity(ALICE), MeetingAnswer.TENTATIVE, comment="Later?", proposed=(start, end)
    )
    msg = email.message_from_bytes(counter.mime, policy=default_policy)
    assert msg["Subject"] == "New Time Proposed: Review"
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    assert part.get_param("method") == "COUNTER"
    cal = next(parse_ics(part.get_content()).find("VCALENDAR"))
    assert cal.value("METHOD") == "COUNTER"
    event = next(cal.find("VEVENT"))
    assert (event.value("DTSTART"), event.value("DTEND")) == (
        "20301009T140000Z",
        "20301009T150000Z",
    )
    assert event.all("ATTENDEE")[0].params["PARTSTAT"] == "TENTATIVE"


@pytest_twisted.ensureDeferred
async def test_16_1_send_response_body_and_proposed_time(world: World) -> None:
    uid = world.store.add("INBOX", invitation_mail(ORGANIZER, ALICE, "ev-8", "Sprint"))
    tree = meeting_response_tree([(2, "1", f"1:{uid}")])
    request = tree.find(f"{MR}Request")
    assert request is not None
    B = ns.AIRSYNCBASE
    request.append(
        E(
            ns.MEETINGRESPONSE,
            "SendResponse",
            E(B, "Body", E(B, "Type", text=2), E(B, "Data", text="<p>Can we move it?</p>")),
            E(ns.MEETINGRESPONSE, "ProposedStartTime", text="20301010T090000Z"),
            E(ns.MEETINGRESPONSE, "ProposedEndTime", text="20301010T100000Z"),
        )
    )
    result = await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(16, 1))
    assert results(result.tree)[0]["Status"] == "1"
    (sent,) = world.smtp.sent
    assert "METHOD:COUNTER" in texts(sent.data)
    body = texts(sent.data)
    assert "Can we move it?" in body and "<p>" not in body
    assert "DTSTART:20301010T090000Z" in body


@pytest_twisted.ensureDeferred
async def test_answer_from_the_calendar_item_tells_the_organizer(world: World) -> None:
    """Answered from the calendar (RequestId is a calendar item): the event the calendar
    holds is read first (a declined one leaves it) and the organizer gets the reply."""
    ics = invitation_in(invitation_mail(ORGANIZER, ALICE, "ev-9", "Budget"))
    mine = (ics or "").replace(f"mailto:{ORGANIZER}", f"mailto:{ALICE}", 1)
    order: list[str] = []

    class Hook:
        def __init__(self, text: str) -> None:
            self.text = text

        async def invitation_of(self, ctx: Any, server_id: str) -> str:
            order.append("read")
            return self.text

        async def record_calendar_item(self, ctx: Any, *args: Any) -> str:
            order.append("record")
            return "5:ev-9.ics"

    world.services["meeting_responses"] = Hook(ics or "")
    tree = meeting_response_tree([(3, "5", "5:ev-9.ics")])
    result = await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(14, 1))
    assert results(result.tree)[0]["Status"] == "1"
    assert order == ["read", "record"]
    (sent,) = world.smtp.sent
    assert sent.recipients == (ORGANIZER,)
    _, event = reply_event(sent.data)
    assert event.all("ATTENDEE")[0].params["PARTSTAT"] == "DECLINED"
    # The user's own meeting: nobody to tell.
    world.services["meeting_responses"] = Hook(mine)
    await world.run(meetingresponse.handle, "MeetingResponse", tree, version=(14, 1))
    assert len(world.smtp.sent) == 1
