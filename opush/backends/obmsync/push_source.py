"""Push for OBM calendars and address books: obm-sync has no notifications, so one poller per
user and kind asks for the changes since its last ``lastSync`` token every
``PushSettings.poll_interval`` seconds (with jitter), and tells the hub which folders may have
changed (`opush.push.hub.Hint`); waiting Pings confirm against the device's sync state.

Calendar: ``getSync`` of the watched calendar.  Contacts: ``listAllChanges`` of each watched
book, and ``listAddressBooksChanged`` for books added or dropped (a hierarchy hint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import ensureDeferred

from opush.backends.interfaces import Credentials
from opush.backends.obmsync.client import ObmSyncClient
from opush.log import logger
from opush.push.hub import Emit, Hint
from opush.storage.interfaces import FolderKind

log = logger("OBM-SYNC")


class ObmSyncPoller:
    """One user's change feed for one kind (``ChangeSource`` of the push hub)."""

    def __init__(
        self,
        kind: FolderKind,
        client: ObmSyncClient,
        hub: Any,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> None:
        self.kind = kind
        self.client = client
        self.hub = hub
        self.credentials = credentials
        self.folders = folders
        self.emit = emit
        self.lost = lost
        self._last: int | None = None
        self._call: Any = None  # IDelayedCall
        self._stopped = False

    async def start(self) -> None:
        self._last = await self._now()
        self.emit(Hint(self.kind, resync=True))
        self._schedule()

    def update_folders(self, folders: frozenset[str]) -> None:
        self.folders = folders

    async def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    async def _now(self) -> int:
        """obm-sync's current ``lastSync`` token (an empty answer of a cheap call)."""
        later = int(self.hub.clock.seconds() * 1000)
        if self.kind is FolderKind.CALENDAR:
            answer = await self.client.get_sync(
                self.credentials, self.credentials.user.login, later
            )
            return answer.last_sync
        books = await self.client.list_address_books_changed(self.credentials, later)
        return books.last_sync

    def _schedule(self) -> None:
        if self._stopped:
            return
        interval = self.hub.settings.poll_interval
        self._call = self.hub.clock.callLater(self.hub.jittered(interval), self._tick)

    def _tick(self) -> None:
        self._call = None
        d = ensureDeferred(self.hub.limited(self._poll))
        d.addCallbacks(lambda _: self._schedule(), self._failed)

    def _failed(self, failure: Any) -> None:
        if self._stopped:
            return
        log.info(
            "obm-sync poll of {user} ({kind}) failed: {error}",
            user=self.credentials.user.login_at_domain,
            kind=self.kind.value,
            error=failure.getErrorMessage(),
        )
        self._stopped = True
        self.lost()

    async def _poll(self) -> None:
        last = self._last if self._last is not None else await self._now()
        changed: set[str] = set()
        tokens: list[int] = []
        hierarchy = False
        if self.kind is FolderKind.CALENDAR:
            for calendar in sorted(self.folders):
                answer = await self.client.get_sync(self.credentials, calendar, last)
                tokens.append(answer.last_sync)
                if answer.updated or answer.removed:
                    changed.add(calendar)
        else:
            for book in sorted(self.folders):
                if not book.lstrip("-").isdigit():
                    continue
                contacts = await self.client.list_all_changes(self.credentials, last, int(book))
                tokens.append(contacts.last_sync)
                if contacts.updated or contacts.removed:
                    changed.add(book)
            books = await self.client.list_address_books_changed(self.credentials, last)
            tokens.append(books.last_sync)
            hierarchy = bool(books.updated or books.removed)
        if self._stopped:
            return
        # The oldest token of the round: nothing between two rounds is missed.
        self._last = min(tokens) if tokens else last
        if changed or hierarchy:
            self.emit(Hint(self.kind, folders=frozenset(changed), hierarchy=hierarchy))


def poller_factory(kind: FolderKind, client: ObmSyncClient) -> Callable[..., ObmSyncPoller]:
    """A ``PushHub.factories`` entry: (hub, credentials, folders, emit, lost) -> source."""

    def make(
        hub: Any,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> ObmSyncPoller:
        return ObmSyncPoller(kind, client, hub, credentials, folders, emit, lost)

    return make
