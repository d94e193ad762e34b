"""Invitations in mail: MS-ASEMAIL MeetingRequest, OP-217 (no DTSTAMP), OP-223 (bad ICS)."""

from __future__ import annotations

import base64
import struct
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.content.email import email_application_data
from opush.content.email.ics import global_obj_id, meeting_request, parse_ics
from opush.content.email.tzblob import encode_rule, rule_from_tzinfo
from tests.support.mail import find, roundtrip, text

VTIMEZONE = (
    "BEGIN:VTIMEZONE\r\nTZID:Romance Standard Time\r\n"
    "BEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    "RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)


def ics(method: str = "REQUEST", event: str = "", tz: str = VTIMEZONE) -> str:
    return (
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:{method}\r\n{tz}BEGIN:VEVENT\r\n"
        "UID:event-123@example.org\r\nDTSTAMP:20150601T080000Z\r\n"
        'DTSTART;TZID="Romance Standard Time":20150610T100000\r\n'
        'DTEND;TZID="Romance Standard Time":20150610T110000\r\n'
        "SUMMARY:Weekly\r\nLOCATION:Room 1\\, 2nd floor\r\n"
        "ORGANIZER;CN=Bob:mailto:bob@example.org\r\n"
        "ATTENDEE;RSVP=TRUE:mailto:alice@example.org\r\n"
        f"{event}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def invitation_mail(calendar: str, method: str = "REQUEST") -> bytes:
    return (
        "From: bob@example.org\r\nTo: alice@example.org\r\nSubject: Invitation: Weekly\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYou are invited\r\n"
        f"--b\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n\r\n"
        f"{calendar}--b--\r\n"
    ).encode()


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_meeting_request_in_every_version(version: str) -> None:
    items = email_application_data(invitation_mail(ics()), version=version)
    assert text(items, "e:MessageClass") == "IPM.Schedule.Meeting.Request"
    assert text(items, "e:ContentClass") == "urn:content-classes:calendarmessage"
    mr = "e:MeetingRequest/"
    assert text(items, mr + "e:StartTime") == "2015-06-10T08:00:00.000Z"
    assert text(items, mr + "e:EndTime") == "2015-06-10T09:00:00.000Z"
    assert text(items, mr + "e:DtStamp") == "2015-06-01T08:00:00.000Z"
    assert text(items, mr + "e:AllDayEvent") == "0"
    assert text(items, mr + "e:Organizer") == '"Bob" <bob@example.org>'
    assert text(items, mr + "e:ResponseRequested") == "1"
    if version.startswith("16"):
        assert text(items, mr + "b:Location/b:DisplayName") == "Room 1, 2nd floor"
        assert find(items, mr + "e:GlobalObjId") is None
        assert text(items, mr + "c:UID") == "event-123@example.org"
    else:
        assert text(items, mr + "e:Location") == "Room 1, 2nd floor"
        assert text(items, mr + "e:GlobalObjId") == global_obj_id("event-123@example.org")
    # the invitation is not listed as an attachment, and everything encodes for the version
    assert find(items, "b:Attachments") is None
    roundtrip(items, version)


def test_timezone_blob_from_vtimezone() -> None:
    items = email_application_data(invitation_mail(ics()), version="14.1")
    blob = base64.b64decode(text(items, "e:MeetingRequest/e:TimeZone") or "")
    assert len(blob) == 172
    assert struct.unpack("<i", blob[:4]) == (-60,)
    # Standard: last (5) Sunday (0) of October at 03:00; daylight: last Sunday of March 02:00.
    assert struct.unpack("<8H", blob[68:84]) == (0, 10, 0, 5, 3, 0, 0, 0)
    assert struct.unpack("<8H", blob[152:168]) == (0, 3, 0, 5, 2, 0, 0, 0)
    assert struct.unpack("<i", blob[168:172]) == (-60,)


def test_timezone_blob_from_iana_zone_matches_vtimezone() -> None:
    paris = encode_rule(rule_from_tzinfo(ZoneInfo("Europe/Paris"), 2015))
    assert struct.unpack("<i", paris[:4]) == (-60,)
    assert struct.unpack("<8H", paris[68:84]) == (0, 10, 0, 5, 3, 0, 0, 0)
    assert struct.unpack("<8H", paris[152:168]) == (0, 3, 0, 5, 2, 0, 0, 0)
    tokyo = encode_rule(rule_from_tzinfo(ZoneInfo("Asia/Tokyo"), 2015))
    assert struct.unpack("<i", tokyo[:4]) == (-540,) and tokyo[68:84] == b"\0" * 16


def test_recurrence_weekly() -> None:
    cal = ics(event="RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20151231T000000Z\r\n")
    items = email_application_data(invitation_mail(cal), version="14.1")
    rec = "e:MeetingRequest/e:Recurrences/e:Recurrence/"
    assert text(items, rec + "e:Type") == "1"
    assert text(items, rec + "e:DayOfWeek") == str(2 | 8)
    assert text(items, rec + "e:Interval") == "1"  # OP-243: no INTERVAL
    assert text(items, rec + "e:Until") == "2015-12-31T00:00:00.000Z"
    assert text(items, "e:MeetingRequest/e:InstanceType") == "1"


def test_recurrence_weekly_without_byday_uses_start_weekday() -> None:
    # OP-240: 2015-06-10 is a Wednesday.
    cal = ics(event="RRULE:FREQ=WEEKLY;COUNT=3\r\n")
    items = email_application_data(invitation_mail(cal), version="14.1")
    rec = "e:MeetingRequest/e:Recurrences/e:Recurrence/"
    assert text(items, rec + "e:DayOfWeek") == "8"
    assert text(items, rec + "e:Occurrences") == "3"


def test_cancel_and_all_day_with_iana_tzid() -> None:
    cal = (
        "BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        "DTSTART;VALUE=DATE:20150610\r\nDTEND;VALUE=DATE:20150611\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    items = email_application_data(invitation_mail(cal, "CANCEL"), version="14.1")
    assert text(items, "e:MessageClass") == "IPM.Schedule.Meeting.Canceled"
    assert text(items, "e:MeetingRequest/e:AllDayEvent") == "1"
    assert text(items, "e:MeetingRequest/e:EndTime") == "2015-06-11T00:00:00.000Z"


def test_missing_dtstamp_is_tolerated() -> None:
    # OP-217: default DTSTAMP.
    items = email_application_data(
        invitation_mail(ics().replace("DTSTAMP:20150601T080000Z\r\n", "")), version="12.1"
    )
    assert text(items, "e:MeetingRequest/e:DtStamp") == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    "calendar",
    [
        "garbage",
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:2015-13-45\r\nEND:VEVENT\r\n",
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n",
        "BEGIN:VEVENT\r\nDTSTART;TZID=Nowhere/Land:20150610T100000\r\nRRULE:FREQ=;BYDAY=ZZ\r\n",
    ],
)
def test_illegal_ics_never_blocks_the_mail(calendar: str) -> None:
    # OP-223: the mail syncs, as a plain note when the invitation is unusable.
    items = email_application_data(invitation_mail(calendar), version="14.1")
    assert text(items, "b:Body/b:Data") == "You are invited"
    roundtrip(items, "14.1")


def test_reply_gets_response_class_without_meeting_request() -> None:
    cal = (
        "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    items = email_application_data(invitation_mail(cal, "REPLY"), version="14.1")
    assert text(items, "e:MessageClass") == "IPM.Schedule.Meeting.Resp.Pos"
    assert find(items, "e:MeetingRequest") is None


def test_parser_unfolds_and_keeps_quoted_params() -> None:
    root = parse_ics('BEGIN:VEVENT\r\nSUMMARY:long\r\n  line\r\nX;A="a:b;c":v\r\nEND:VEVENT')
    event = next(root.find("VEVENT"))
    assert event.value("SUMMARY") == "long line"
    prop = event.get("X")
    assert prop is not None and prop.params == {"A": "a:b;c"} and prop.value == "v"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_meeting_request_never_raises(data: str) -> None:
    for version in ((12, 1), (16, 1)):
        try:
            meeting_request("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n" + data, version)
        except Exception as e:  # pragma: no cover - the property under test
            raise AssertionError(f"raised {e!r}") from e
