"""Push for OBM calendars and books: the poller hints at changed folders (fake clock,
in-memory obm-sync double)."""

from __future__ import annotations

from datetime import UTC, datetime

from opush.backends.obmsync import xml as obm
from opush.backends.obmsync.push_source import poller_factory
from opush.content import calendar as cal
from opush.push.hub import Hint, PushHub, PushSettings
from opush.storage.interfaces import FolderKind
from tests.support.obmpim import USER
from tests.support.obmsync import credentials, double_and_client, run


def _setup(kind: FolderKind, folders: frozenset[str]) -> tuple:  # type: ignore[type-arg]
    double, client, clock = double_and_client()
    clock.advance(1)  # obm-sync's tokens are inclusive: start after the setup's changes
    hub = PushHub(clock, PushSettings(poll_interval=30.0, poll_jitter=0.0))
    hints: list[Hint] = []
    lost: list[bool] = []
    poller = poller_factory(kind, client)(
        hub, credentials(USER), folders, hints.append, lambda: lost.append(True)
    )
    run(poller.start())
    assert hints == [Hint(kind, resync=True)]
    hints.clear()
    return double, client, clock, poller, hints, lost


def test_calendar_change_is_hinted_at_the_next_poll() -> None:
    double, _client, clock, poller, hints, lost = _setup(FolderKind.CALENDAR, frozenset({"alice"}))
    clock.advance(30)
    assert hints == []
    clock.advance(5)
    double.put_event(
        obm.Event(
            title="new",
            owner="alice",
            date=cal.to_ms(datetime(2027, 1, 1, tzinfo=UTC)),
            attendees=(obm.Attendee(USER, state="ACCEPTED", is_organizer=True),),
        )
    )
    clock.advance(25)
    assert hints == [Hint(FolderKind.CALENDAR, folders=frozenset({"alice"}))]
    clock.advance(30)
    assert len(hints) == 1  # nothing new
    run(poller.stop())
    clock.advance(300)
    assert len(hints) == 1 and lost == []


def test_contact_change_and_book_list_change_are_hinted() -> None:
    double, client, clock, poller, hints, _lost = _setup(FolderKind.CONTACTS, frozenset())
    alice = double.user(USER)
    book = next(b for b in double.books.values() if b.owner is alice)
    poller.update_folders(frozenset({str(book.id)}))
    clock.advance(10)
    run(client.store_contact(credentials(USER), book.id, obm.Contact(first="Ann")))
    clock.advance(20)
    assert hints == [Hint(FolderKind.CONTACTS, folders=frozenset({str(book.id)}))]
    clock.advance(10)
    double.add_book(alice, "friends")
    clock.advance(20)
    assert hints[-1] == Hint(FolderKind.CONTACTS, hierarchy=True)
    run(poller.stop())


def test_failed_poll_reports_the_source_lost() -> None:
    _double, _client, clock, _poller, _hints, lost = _setup(
        FolderKind.CALENDAR, frozenset({"nobody"})
    )
    clock.advance(30)  # obm-sync answers ServerFault for an unknown calendar
    assert lost == [True]
