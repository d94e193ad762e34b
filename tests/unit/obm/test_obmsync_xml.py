"""obm-sync's XML documents: the research file's samples parse as obm-sync meant them, and
what we write parses back to the same record."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.obmsync import xml
from opush.backends.obmsync.errors import (
    AuthFault,
    ContactNotFound,
    EventAlreadyExists,
    EventNotFound,
    NoPermission,
    NotAllowed,
    ServerFault,
    fault,
)

GET_SYNC = b"""<?xml version="1.0" encoding="UTF-8"?>
<calendar-changes xmlns="http://www.obm.org/xsd/sync/calendar-changes.xsd" lastSync="1330953989000">
 <removed><event id="41" extId="8d1c1f7e-2b54-4f2f-8a7e-0d2d7f7b9b11"/></removed>
 <updated>
  <event type="VEVENT" allDay="false" id="42" sequence="3" isInternal="true" anonymized="false">
   <hash>-1250391521</hash><timeupdate>1292580000000</timeupdate><timecreate>1289988000000</timecreate>
   <extId>2bf7db53-8820-4fe5-9a78-acc6d3262149</extId><opacity>OPAQUE</opacity><title>weekly meeting</title>
   <owner>jdoe</owner><ownerEmail>jdoe@example.com</ownerEmail>
   <tz>Europe/Paris</tz><date>1295258400000</date><duration>3600</duration><alert>900</alert><priority>0</priority><privacy>0</privacy>
   <attendees>
    <attendee displayName="John Doe" isOrganizer="true" email="jdoe@example.com" state="ACCEPTED" required="CHAIR" percent="0"/>
    <attendee displayName="Jane Roe" isOrganizer="false" email="jroe@example.com" state="TENTATIVE" required="REQ" percent="0"/>
   </attendees>
   <recurrence kind="weekly" end="1300000000000" days="0100000" freq="1">
    <exceptions><exception>1295863200000</exception></exceptions>
    <eventExceptions>
     <eventException type="VEVENT" allDay="false" id="43" sequence="3" isInternal="true" anonymized="false">
      <recurrenceId>1296468000000</recurrenceId><extId>2bf7db53-8820-4fe5-9a78-acc6d3262149</extId>
      <title>weekly meeting (moved)</title><owner>jdoe</owner><tz>Europe/Paris</tz><date>1296471600000</date>
      <duration>3600</duration><priority>0</priority><privacy>0</privacy><attendees/><recurrence kind="none"/>
     </eventException>
    </eventExceptions>
   </recurrence>
  </event>
 </updated>
 <participationChanges/>
</calendar-changes>"""  # noqa: E501 - verbatim from the research file

TOKEN = b"""<token xmlns="http://www.obm.org/xsd/sync/token.xsd"><sid>5b0b1c6e-aaaa</sid>
 <version major="3" minor="2" release="1"/><email>jdoe@example.com</email>
 <displayname>John Doe</displayname>
 <domain uuid="ac21bc0c-f816-4c52-8bb9-e50cfbfec5b6">example.com</domain>
 <settings><setting name="set_lang">en</setting></settings>
 <server-capabilities><server-capability name="CONFIDENTIAL_EVENTS">true</server-capability>
 </server-capabilities></token>"""

CONTACT = b"""<contact xmlns="http://www.obm.org/xsd/sync/contact.xsd" uid="1" collected="false">
 <commonname/><first>John</first><last>Doe</last><service>R&amp;D</service><title>CTO</title>
 <aka>nick</aka><comment>note</comment><company>ACME</company><middlename/><suffix/><manager/>
 <assistant/><spouse/><addressbookid>1</addressbookid><birthday>1412337600000</birthday>
 <anniversary/><caluri/><phones><phone label="CELL;VOICE;X-OBM-Ref1" number="+33 6"/></phones>
 <addresses><address label="WORK;X-OBM-Ref1" zip="31000" town="Toulouse" country="FR"
 expressPostal="" state="">1 rue X</address></addresses>
 <websites><site label="URL;X-OBM-Ref1" url="http://acme.example"/></websites>
 <emails><mail label="INTERNET;X-OBM-Ref1" value="john@acme.com"/><mail label="" value="x@y"/>
 </emails><instantmessaging><im label="XMPP;X-OBM-Ref1" protocol="XMPP" address="john@jabber"/>
 </instantmessaging></contact>"""


def test_get_sync_sample() -> None:
    changes = xml.parse_event_changes(xml.parse_document(GET_SYNC))
    assert changes.last_sync == 1330953989000
    assert changes.removed == (xml.RemovedEvent(41, "8d1c1f7e-2b54-4f2f-8a7e-0d2d7f7b9b11"),)
    (event,) = changes.updated
    assert (event.id, event.sequence, event.title) == (42, 3, "weekly meeting")
    assert event.duration == 3600 and event.alert == 900  # seconds
    assert event.date == 1295258400000  # ms
    assert event.owner == "jdoe" and event.owner_email == "jdoe@example.com"
    organizer = event.attendee("JDOE@example.com")
    assert organizer is not None and organizer.is_organizer and organizer.required == "CHAIR"
    rec = event.recurrence
    assert (rec.kind, rec.days, rec.freq, rec.end) == ("weekly", "0100000", 1, 1300000000000)
    assert rec.exceptions == (1295863200000,)
    (moved,) = rec.event_exceptions
    assert moved.recurrence_id == 1296468000000 and moved.id == 43
    assert moved.ext_id == event.ext_id and moved.sequence == event.sequence
    assert not moved.recurrence.recurring


def test_days_force_weekly_and_negative_alert_is_none() -> None:
    doc = (
        b'<event type="VEVENT"><alert>-1</alert><attendees/>'
        b'<recurrence kind="daily" days="1000001" freq="2"/></event>'
    )
    event = xml.parse_single_event(xml.parse_document(doc))
    assert event.alert is None
    assert event.recurrence.kind == "weekly"  # CalendarItemsParser forces it


def test_event_needs_a_type() -> None:
    with pytest.raises(xml.ObmXmlError):
        xml.parse_single_event(xml.parse_document(b"<event><attendees/></event>"))


def test_written_event_always_has_attendees_and_recurrence() -> None:
    root = xml.write_event(None, xml.Event(title="x"))
    assert root.tag == "{http://www.obm.org/xsd/sync/event.xsd}event"
    assert [xml.local(c) for c in root][-2:] == ["attendees", "recurrence"]
    assert xml.child(root, "recurrence").get("kind") == "none"  # type: ignore[union-attr]
    assert root.get("id") is None  # absent on create


def test_token_sample() -> None:
    token = xml.parse_token(xml.parse_document(TOKEN))
    assert token.sid == "5b0b1c6e-aaaa"
    assert (token.email, token.display_name) == ("jdoe@example.com", "John Doe")
    assert (token.domain, token.domain_uuid) == (
        "example.com",
        "ac21bc0c-f816-4c52-8bb9-e50cfbfec5b6",
    )
    assert token.version == (3, 2, 1)
    assert token.settings == (("set_lang", "en"),)
    assert "5b0b1c6e" not in repr(token)  # the session id stays out of logs


def test_token_without_domain_uuid_is_refused() -> None:
    doc = b"<token><sid>s</sid><email>a@b</email><domain>b</domain></token>"
    with pytest.raises(xml.ObmXmlError):
        xml.parse_token(xml.parse_document(doc))


def test_contact_sample() -> None:
    contact = xml.parse_single_contact(xml.parse_document(CONTACT))
    assert (contact.uid, contact.first, contact.last, contact.service) == (1, "John", "Doe", "R&D")
    assert contact.commonname is None and contact.addressbook_id == 1
    assert contact.birthday == 1412337600000
    assert contact.phones == (xml.Phone("CELL;VOICE;X-OBM-Ref1", "+33 6"),)
    (address,) = contact.addresses
    assert (address.street, address.zip, address.town, address.country) == (
        "1 rue X",
        "31000",
        "Toulouse",
        "FR",
    )
    # BookItemsParser skips mails with an empty label or value.
    assert contact.emails == (xml.EmailAddress("INTERNET;X-OBM-Ref1", "john@acme.com"),)
    assert contact.ims == (xml.InstantMessaging("XMPP;X-OBM-Ref1", "XMPP", "john@jabber"),)


@pytest.mark.parametrize(
    ("java_type", "expected"),
    [
        ("org.obm.sync.auth.AuthFault", AuthFault),
        ("org.obm.sync.auth.ServerFault", ServerFault),
        ("org.obm.sync.auth.EventNotFoundException", EventNotFound),
        ("org.obm.sync.auth.EventAlreadyExistException", EventAlreadyExists),
        ("org.obm.sync.NotAllowedException", NotAllowed),
        ("org.obm.sync.exception.ContactNotFoundException", ContactNotFound),
        ("javax.naming.NoPermissionException", NoPermission),
        ("java.lang.NullPointerException", ServerFault),
        (None, ServerFault),
    ],
)
def test_error_types(java_type: str | None, expected: type[Exception]) -> None:
    doc = xml.error_document("boom", java_type)
    message, parsed_type = xml.parse_error(xml.parse_document(xml.serialize(doc))) or ("", "")
    error = fault(message, parsed_type)
    assert type(error) is expected and str(error) == "boom"


def test_login_errors_without_known_type_are_auth_faults() -> None:
    assert isinstance(fault("Login refused : 'origin' is mandatory", None, login=True), AuthFault)


# ------------------------------------------------------------------------------- round trips

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20
).filter(lambda s: s.strip() == s and s != "")
_opt = st.none() | _text
_ms = st.integers(min_value=0, max_value=4_102_444_800_000)
_attendee = st.builds(
    xml.Attendee,
    email=_text,
    display_name=_opt,
    state=st.sampled_from(sorted(xml.PARTICIPATION_STATES)),
    required=st.sampled_from(sorted(xml.ROLES)),
    percent=st.integers(0, 100),
    is_organizer=st.booleans(),
)
_base_event = st.builds(
    xml.Event,
    all_day=st.booleans(),
    id=st.none() | st.integers(1, 2**31 - 1),
    sequence=st.integers(0, 1000),
    is_internal=st.booleans(),
    timeupdate=st.none() | _ms,
    timecreate=st.none() | _ms,
    ext_id=_opt,
    opacity=st.sampled_from(["OPAQUE", "TRANSPARENT"]),
    title=_opt,
    description=_opt,
    owner=_opt,
    owner_email=_opt,
    tz=_opt,
    date=st.none() | _ms,
    duration=st.integers(0, 10**6),
    location=_opt,
    alert=st.none() | st.integers(0, 10**6),
    priority=st.integers(0, 3),
    privacy=st.integers(0, 2),
    attendees=st.lists(_attendee, max_size=3).map(tuple),
)


@st.composite
def _events(draw: st.DrawFn) -> xml.Event:
    event = draw(_base_event)
    kind = draw(st.sampled_from(sorted(xml.RECURRENCE_KINDS)))
    if kind == "none":
        return event
    days = draw(st.text(alphabet="01", min_size=7, max_size=7)) if kind == "weekly" else None
    exceptions = tuple(
        xml.Event(
            id=i + 1,
            recurrence_id=rid,
            ext_id=event.ext_id,
            sequence=event.sequence,
            title=title,
            attendees=event.attendees,
        )
        for i, (rid, title) in enumerate(draw(st.lists(st.tuples(_ms, _opt), max_size=2)))
    )
    import attrs

    return attrs.evolve(
        event,
        recurrence=xml.Recurrence(
            kind=kind,
            freq=draw(st.none() | st.integers(1, 30)),
            days=days,
            end=draw(st.none() | _ms),
            exceptions=tuple(draw(st.lists(_ms, max_size=3))),
            event_exceptions=exceptions,
        ),
    )


@settings(max_examples=100, deadline=None)
@given(_events())
def test_event_round_trip(event: xml.Event) -> None:
    data = xml.serialize(xml.write_event(None, event))
    assert xml.parse_single_event(xml.parse_document(data)) == event


_contact = st.builds(
    xml.Contact,
    uid=st.none() | st.integers(-1, 2**31 - 1),
    collected=st.booleans(),
    first=_opt,
    last=_opt,
    company=_opt,
    comment=_opt,
    addressbook_id=st.none() | st.integers(-1, 1000),
    birthday=st.none() | _ms,
    phones=st.lists(st.builds(xml.Phone, _text, _text), max_size=2).map(tuple),
    addresses=st.lists(
        st.builds(xml.PostalAddress, _text, _opt, _opt, _opt, _opt, _opt, _opt), max_size=2
    ).map(tuple),
    websites=st.lists(st.builds(xml.Website, _text, _text), max_size=2).map(tuple),
    emails=st.lists(st.builds(xml.EmailAddress, _text, _text), max_size=3).map(tuple),
    ims=st.lists(st.builds(xml.InstantMessaging, _text, _opt, _text), max_size=2).map(tuple),
)


@settings(max_examples=100, deadline=None)
@given(_contact)
def test_contact_round_trip(contact: xml.Contact) -> None:
    data = xml.serialize(xml.write_contact(None, contact))
    assert xml.parse_single_contact(xml.parse_document(data)) == contact


@settings(max_examples=50, deadline=None)
@given(
    st.builds(
        xml.EventChanges,
        last_sync=_ms,
        updated=st.lists(_base_event, max_size=2).map(tuple),
        removed=st.lists(st.builds(xml.RemovedEvent, st.integers(1, 10**9), _text), max_size=3).map(
            tuple
        ),
    )
)
def test_calendar_changes_round_trip(changes: xml.EventChanges) -> None:
    data = xml.serialize(xml.event_changes_document(changes))
    assert xml.parse_event_changes(xml.parse_document(data)) == changes
