"""The obm-sync client and ObmSyncAuth against the in-memory obm-sync double: login,
sessions reused and renewed, error mapping, and the calendar/book calls' typed results."""

from __future__ import annotations

import hashlib

import pytest
from twisted.logger import capturedLogs, formatEvent

from opush.backends.interfaces import AuthenticationFailed, BackendUnavailable
from opush.backends.obmsync import (
    AuthFault,
    ContactNotFound,
    EventAlreadyExists,
    EventNotFound,
    NoPermission,
    NotAllowed,
    ObmSyncAuth,
    ObmSyncClient,
    ObmSyncConsoleAuth,
    ObmSyncUnavailable,
    ServerFault,
    hashed_client_id,
    xml,
)
from opush.backends.obmsync.transport import HttpResponse, TransportError
from opush.http.errors import classify
from opush.log import DEBUG, levels
from tests.doubles.obmsync import ObmSyncDouble
from tests.support.obmsync import SERVICES_URL, credentials, double_and_client, run
from tests.support.storage import fake_clock

ALICE = credentials("alice@example.org")
BOB = credentials("bob@example.org")


def logins(double: ObmSyncDouble) -> int:
    return sum(1 for h, m, _ in double.calls if (h, m) == ("login", "doLogin"))


def lunch(**changes: object) -> xml.Event:
    import attrs

    event = xml.Event(
        ext_id="uuid-1",
        title="Lunch",
        owner="alice",
        tz="Europe/Paris",
        date=1_800_000_000_000,
        duration=3600,
        attendees=(
            xml.Attendee("alice@example.org", "Alice", state="ACCEPTED", is_organizer=True),
            xml.Attendee("bob@example.org", "Bob", state="NEEDS-ACTION"),
        ),
    )
    return attrs.evolve(event, **changes)


# ------------------------------------------------------------------------------ authentication


def test_authenticate_logs_in_with_origin_o_push() -> None:
    double, client, _ = double_and_client()
    identity = run(ObmSyncAuth(client).authenticate("alice@example.org", "secret"))
    assert (identity.login, identity.domain, identity.email) == (
        "alice",
        "example.org",
        "alice@example.org",
    )
    assert identity.display_name == "Alice Liddell"
    (call,) = double.calls
    assert call[:2] == ("login", "doLogin")
    assert call[2]["origin"] == ["o-push"] and call[2]["login"] == ["alice@example.org"]


def test_domain_backslash_login_is_accepted() -> None:
    _, client, _ = double_and_client()
    identity = run(ObmSyncAuth(client).authenticate("EXAMPLE.ORG\\alice", "secret"))
    assert identity.login_at_domain == "alice@example.org"


def test_bad_password_is_authentication_failed_and_401() -> None:
    _, client, _ = double_and_client()
    with pytest.raises(AuthenticationFailed) as err:
        run(ObmSyncAuth(client).authenticate("alice@example.org", "wrong"))
    assert "Login failed for user 'alice@example.org'" in str(err.value)
    assert classify(err.value, "Sync", (14, 1)).code == 401


def test_login_without_domain_is_refused_without_asking() -> None:
    double, client, _ = double_and_client()
    with pytest.raises(AuthenticationFailed):
        run(ObmSyncAuth(client).authenticate("alice", "secret"))
    assert double.calls == []


def test_unreachable_obm_sync_is_retryable_not_401_nor_500() -> None:
    double, client, _ = double_and_client()
    transport = double.transport()
    transport.failure = TransportError("connection refused")
    client = ObmSyncClient(transport, fake_clock(), SERVICES_URL)
    with pytest.raises(ObmSyncUnavailable) as err:
        run(ObmSyncAuth(client).authenticate("alice@example.org", "secret"))
    assert not isinstance(err.value, AuthenticationFailed)
    outcome = classify(err.value, "Sync", (14, 1))
    assert outcome.code not in (401, 500)
    assert classify(err.value, "Sync", (12, 1)).code == 503


class _Status:
    def __init__(self, code: int, body: bytes = b"") -> None:
        self.code, self.body = code, body

    async def request(self, method: bytes, url: str, **kw: object) -> HttpResponse:
        return HttpResponse(self.code, self.body, "text/html")


@pytest.mark.parametrize(("code", "body"), [(500, b"oops"), (200, b"<not xml"), (404, b"")])
def test_bad_answers_are_retryable(code: int, body: bytes) -> None:
    client = ObmSyncClient(_Status(code, body), fake_clock(), SERVICES_URL)
    with pytest.raises(ObmSyncUnavailable):
        run(client.login("alice@example.org", "secret"))


def test_server_fault_is_never_a_500() -> None:
    assert classify(ServerFault("x"), "Sync", (14, 1)).code != 500
    assert classify(EventNotFound("x"), "Sync", (14, 1)).code != 500


def test_password_and_sid_never_logged() -> None:
    double, client, _ = double_and_client()
    double.user("alice@example.org").password = "s3cr3t-pw"
    with levels.override({"OBM-SYNC": DEBUG}), capturedLogs() as events:
        run(ObmSyncAuth(client).authenticate("alice@example.org", "s3cr3t-pw"))
        run(client.get_user_email(credentials("alice@example.org", "s3cr3t-pw")))
    sid = next(iter(double.sessions))
    text = " ".join(formatEvent(e) for e in events)
    assert "doLogin" in text
    assert "s3cr3t-pw" not in text and sid not in text


def test_console_admins() -> None:
    double, client, _ = double_and_client()
    double.add_user("admin0@global.virt", "adminpw", admin=True)
    console = ObmSyncConsoleAuth(client, "global.virt")
    assert run(console.is_admin("admin0", "adminpw"))
    assert run(console.authenticate("admin0", "adminpw")).login_at_domain == "admin0@global.virt"
    assert not run(console.is_admin("admin0", "wrong"))
    assert not run(console.is_admin("alice", "secret"))  # not in global.virt
    with pytest.raises(AuthenticationFailed):
        run(console.authenticate("admin0", "wrong"))
    method = double.calls[0]
    assert method[:2] == ("login", "authenticateAdmin")
    assert method[2]["domainName"] == ["global.virt"]


# ------------------------------------------------------------------------------------ sessions


def test_session_reused_across_calls() -> None:
    double, client, _ = double_and_client()
    run(ObmSyncAuth(client).authenticate("alice@example.org", "secret"))
    assert run(client.get_user_email(ALICE)) == "alice@example.org"
    run(client.get_first_sync(ALICE, "alice", 1000))
    run(client.list_address_books_changed(ALICE, 0))
    assert logins(double) == 1


def test_session_renewed_when_obm_sync_forgets_it() -> None:
    double, client, _ = double_and_client()
    run(client.get_user_email(ALICE))
    double.sessions.clear()  # obm-sync restarted
    assert run(client.get_user_email(ALICE)) == "alice@example.org"
    assert logins(double) == 2


def test_idle_session_is_not_reused() -> None:
    double, client, clock = double_and_client()
    run(client.get_user_email(ALICE))
    clock.advance(25 * 60)
    run(client.get_user_email(ALICE))
    assert logins(double) == 2


def test_new_password_gets_a_new_session_and_old_is_logged_out() -> None:
    double, client, _ = double_and_client()
    run(client.get_user_email(ALICE))
    double.user("alice@example.org").password = "changed"
    with pytest.raises(AuthFault):
        run(client.get_user_email(credentials("alice@example.org", "oops")))
    run(client.get_user_email(credentials("alice@example.org", "changed")))
    assert len(double.sessions) == 1


def test_close_logs_every_session_out() -> None:
    double, client, _ = double_and_client()
    run(client.get_user_email(ALICE))
    run(client.get_user_email(BOB))
    assert len(double.sessions) == 2
    run(client.close())
    assert double.sessions == {} and client.sessions() == 0


def test_hashed_client_id() -> None:
    expected = hashlib.sha1(b"alice@example.orgiPhoneclient-7").hexdigest()
    assert hashed_client_id("alice@example.org", "iPhone", "client-7") == expected


# ------------------------------------------------------------------------------------ calendar


def test_create_then_sync_then_remove() -> None:
    _double, client, clock = double_and_client()
    first = run(client.get_first_sync(ALICE, "alice", 1000))
    assert first.updated == () and first.removed == ()
    event_id = run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id="c1"))
    changes = run(client.get_first_sync(ALICE, "alice", 1000))
    (event,) = changes.updated
    assert event.id == event_id and event.title == "Lunch" and event.duration == 3600
    assert run(client.get_event_from_id(ALICE, "alice", event_id)) == event
    assert run(client.get_event_from_ext_id(ALICE, "alice", "uuid-1")) == event
    assert run(client.get_event_obm_id_from_ext_id(ALICE, "alice", "uuid-1")) == event_id

    clock.advance(5)
    run(client.remove_event(ALICE, "alice", event_id, event.sequence, notification=True))
    later = run(client.get_sync(ALICE, "alice", changes.last_sync))
    assert later.updated == () and later.removed == (xml.RemovedEvent(event_id, "uuid-1"),)
    # getFirstSync never reports removals
    assert run(client.get_first_sync(ALICE, "alice", changes.last_sync)).removed == ()
    with pytest.raises(EventNotFound):
        run(client.get_event_from_id(ALICE, "alice", event_id))


def test_create_is_idempotent_per_client_id_and_unique_per_ext_id() -> None:
    _, client, _ = double_and_client()
    first = run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id="c1"))
    again = run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id="c1"))
    assert again == first
    with pytest.raises(EventAlreadyExists):
        run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id="c2"))
    with pytest.raises(ServerFault):
        run(client.create_event(ALICE, "alice", lunch(id=9), notification=True, client_id=None))


def test_push_origin_hides_unanswered_invitations() -> None:
    double, client, clock = double_and_client()
    run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id=None))
    # Bob has not answered: o-push does not see the event; another origin does.
    assert run(client.get_first_sync(BOB, "bob", 1000)).updated == ()
    other = ObmSyncClient(double.transport(), clock, SERVICES_URL, origin="obm-ui")
    assert [e.title for e in run(other.get_first_sync(BOB, "bob", 1000)).updated] == ["Lunch"]
    clock.advance(1)
    assert run(
        client.change_participation_state(BOB, "bob", "uuid-1", "ACCEPTED", 0, notification=True)
    )
    assert [e.title for e in run(client.get_first_sync(BOB, "bob", 1000)).updated] == ["Lunch"]


def test_participation_unchanged_or_stale_is_false() -> None:
    _, client, _ = double_and_client()
    run(client.create_event(ALICE, "alice", lunch(sequence=2), notification=True, client_id=None))
    assert not run(
        client.change_participation_state(BOB, "bob", "uuid-1", "ACCEPTED", 1, notification=True)
    )
    assert run(
        client.change_participation_state(BOB, "bob", "uuid-1", "TENTATIVE", 2, notification=True)
    )
    assert not run(
        client.change_participation_state(BOB, "bob", "uuid-1", "TENTATIVE", 2, notification=True)
    )
    with pytest.raises(ValueError):
        run(client.change_participation_state(BOB, "bob", "uuid-1", "MAYBE", 2, notification=True))


def test_removing_someone_elses_event_declines_it() -> None:
    _double, client, clock = double_and_client()
    event_id = run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id=None))
    run(client.change_participation_state(BOB, "bob", "uuid-1", "ACCEPTED", 0, notification=True))
    since = run(client.get_first_sync(BOB, "bob", 1000)).last_sync
    clock.advance(1)
    run(client.remove_event(BOB, "bob", event_id, 0, notification=True))
    # Still in Alice's calendar; for Bob a declined plain event is a removal.
    assert [e.id for e in run(client.get_first_sync(ALICE, "alice", 1000)).updated] == [event_id]
    assert run(client.get_sync(BOB, "bob", since)).removed == (
        xml.RemovedEvent(event_id, "uuid-1"),
    )
    stored = run(client.get_event_from_id(ALICE, "alice", event_id))
    assert stored.attendee("bob@example.org").state == "DECLINED"  # type: ignore[union-attr]


def test_modify_event() -> None:
    _, client, clock = double_and_client()
    event_id = run(client.create_event(ALICE, "alice", lunch(), notification=True, client_id=None))
    since = run(client.get_first_sync(ALICE, "alice", 1000)).last_sync
    clock.advance(1)
    stored = run(
        client.modify_event(
            ALICE,
            "alice",
            lunch(id=event_id, title="Long lunch", sequence=1, attendees=lunch().attendees[:1]),
            update_attendees=True,
            notification=True,
        )
    )
    assert (stored.title, stored.sequence, len(stored.attendees)) == ("Long lunch", 1, 1)
    assert [e.title for e in run(client.get_sync(ALICE, "alice", since)).updated] == ["Long lunch"]
    # Bob was dropped from the attendees: a removal for him.
    assert run(client.get_sync(BOB, "bob", since)).removed == (
        xml.RemovedEvent(event_id, "uuid-1"),
    )
    with pytest.raises(ServerFault, match=r"Event did not exist\."):
        run(
            client.modify_event(
                ALICE, "alice", lunch(id=999), update_attendees=False, notification=False
            )
        )


def test_event_date_variant_adds_recurring_and_future_events() -> None:
    _, client, clock = double_and_client()
    weekly = lunch(ext_id="w", recurrence=xml.Recurrence(kind="weekly", days="0100000", freq=1))
    run(client.create_event(ALICE, "alice", weekly, notification=False, client_id=None))
    run(
        client.create_event(
            ALICE, "alice", lunch(ext_id="p", date=1), notification=False, client_id=None
        )
    )
    clock.advance(10)
    cutoff = int(clock.seconds() * 1000)
    assert run(client.get_sync(ALICE, "alice", cutoff)).updated == ()
    dated = run(client.get_sync_event_date(ALICE, "alice", cutoff))
    assert [e.ext_id for e in dated.updated] == ["w"]
    (first,) = run(client.get_first_sync_event_date(ALICE, "alice", cutoff)).updated
    assert first.recurrence.days == "0100000"


def test_other_calendars_need_rights() -> None:
    double, client, _ = double_and_client()
    with pytest.raises(NotAllowed):
        run(client.get_first_sync(BOB, "alice", 1000))
    with pytest.raises(ServerFault):
        run(client.get_first_sync(ALICE, "nobody", 1000))
    double.grant_calendar(
        double.user("bob@example.org"), double.user("alice@example.org"), write=False
    )
    assert run(client.get_first_sync(BOB, "alice", 1000)).updated == ()
    with pytest.raises(NotAllowed):
        run(client.create_event(BOB, "alice", lunch(), notification=False, client_id=None))


# ---------------------------------------------------------------------------------------- book


def test_address_books_and_the_users_book() -> None:
    _double, client, clock = double_and_client()
    first = run(client.list_address_books_changed(ALICE, 0))
    assert [(f.uid, f.name) for f in first.updated][-1] == (-1, "users")
    own = next(f for f in first.updated if f.name == "contacts")
    assert own.owner_login_at_domain == "alice@example.org" and own.owner_display_name is None
    clock.advance(1)
    assert all(f.uid != -1 for f in run(client.list_address_books_changed(ALICE, 1)).updated)

    users = run(client.first_list_all_changes(ALICE, 0, -1))
    assert {c.emails[0].value for c in users.updated} == {"alice@example.org", "bob@example.org"}
    assert {c.addressbook_id for c in users.updated} == {-1}
    with pytest.raises(NoPermission, match=r"Cannot edit the 'users' address book\."):
        run(client.store_contact(ALICE, -1, xml.Contact(first="x")))
    with pytest.raises(NoPermission):
        run(client.remove_contact(ALICE, -1, 1))
    books = run(client.list_all_books(ALICE))
    assert (books[-1].uid, books[-1].readonly) == (-1, True)


def test_contacts_create_update_remove() -> None:
    _double, client, clock = double_and_client()
    book = next(
        f.uid
        for f in run(client.list_address_books_changed(ALICE, 0)).updated
        if f.name == "contacts"
    )
    ann = xml.Contact(
        first="Ann", last="Lee", emails=(xml.EmailAddress("INTERNET;X-OBM-Ref1", "ann@x.org"),)
    )
    created = run(client.store_contact(ALICE, book, ann, client_id="k1"))
    assert created.uid is not None and created.addressbook_id == book
    assert run(client.store_contact(ALICE, book, ann, client_id="k1")).uid == created.uid
    first = run(client.first_list_all_changes(ALICE, 1000, book))
    assert [c.uid for c in first.updated] == [created.uid]
    since = first.last_sync
    clock.advance(1)
    import attrs

    updated = run(client.store_contact(ALICE, book, attrs.evolve(created, company="ACME")))
    assert updated.company == "ACME"
    assert run(client.get_contact_from_id(ALICE, book, created.uid or 0)).company == "ACME"
    clock.advance(1)
    removed = run(client.remove_contact(ALICE, book, created.uid or 0))
    assert removed.uid == created.uid
    changes = run(client.list_all_changes(ALICE, since, book))
    assert changes.removed == (xml.RemovedContact(created.uid or 0, book),)
    assert run(client.first_list_all_changes(ALICE, since, book)).removed == ()
    with pytest.raises(ContactNotFound):
        run(client.get_contact_from_id(ALICE, book, created.uid or 0))
    with pytest.raises(NoPermission):
        run(client.store_contact(BOB, book, ann))  # Alice's book


def test_search_contacts() -> None:
    _, client, _ = double_and_client()
    found = run(client.search_contacts(ALICE, "bob", 10))
    assert [c.emails[0].value for c in found] == ["bob@example.org"]


def test_unknown_methods() -> None:
    _double, client, _ = double_and_client()
    assert run(client.call(ALICE, "calendar", "noSuchMethod", [])) is None  # empty body
    with pytest.raises(ServerFault, match="Cannot handle method 'nope'"):
        run(client.call(ALICE, "book", "nope", []))
    with pytest.raises(ServerFault, match="unsupported"):
        run(client.call(ALICE, "todo", "getSync", []))
    assert isinstance(ServerFault("x"), BackendUnavailable)


def test_store_contact_with_uid_merges() -> None:
    _, client, _ = double_and_client()
    book = next(
        f.uid
        for f in run(client.list_address_books_changed(ALICE, 0)).updated
        if f.name == "contacts"
    )
    created = run(client.store_contact(ALICE, book, xml.Contact(first="Ann", last="Lee")))
    merged = run(client.store_contact(ALICE, book, xml.Contact(uid=created.uid, company="ACME")))
    assert (merged.first, merged.last, merged.company) == ("Ann", "Lee", "ACME")
