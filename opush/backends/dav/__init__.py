# mypy: disallow-untyped-calls=False
"""CalDAV/CardDAV for the standalone profile (DESIGN: ``backend = standalone``, dav_conf.ini
``dav.url``).  ``dav_services`` plugs address books into FolderSync, Sync and Ping through
``runtime.services`` the way the obm profile plugs obm-sync in (``opush.backends.obmsync.pim``).

Calendars: one folder per CalDAV calendar holding events (``DavCalendarSource``); a
MeetingResponse puts the invitation in the default calendar with the user's PARTSTAT
(``DavMeetingResponses``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.web.client import HTTPConnectionPool

from opush.backends.dav.client import DavClient
from opush.backends.dav.meetings import DavMeetingResponses
from opush.backends.dav.sources import DavCalendarSource, DavContactsSource, DavFolderSource
from opush.backends.dav.tasks import DavTaskFolderSource, DavTaskSource
from opush.backends.interfaces import Credentials
from opush.log import logger
from opush.push.hub import Emit, Hint
from opush.storage.interfaces import Collection, FolderKind

log = logger("opush.backends.dav")


class DavAccounts:
    """Makes each user's ``DavClient`` (one shared HTTP connection pool)."""

    def __init__(
        self, reactor: Any, root: str, *, login_with_domain: bool = True, timeout: float = 15.0
    ) -> None:
        self.reactor = reactor
        self.root = root
        self.login_with_domain = login_with_domain
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8
        self.pool.retryAutomatically = False

    def client(self, credentials: Credentials) -> DavClient:
        user = credentials.user
        login = user.login_at_domain if self.login_with_domain else user.login
        return DavClient(
            self.reactor,
            self.root,
            login,
            credentials.password,
            timeout=self.timeout,
            pool=self.pool,
        )

    def close(self) -> Any:
        """A Deferred, as the runtime's closeables give (opush.tap)."""
        return self.pool.closeCachedConnections()


class DavPoller:
    """Ping for DAV collections: the collections' sync tokens (one PROPFIND of the user's
    home) every ``PushSettings.poll_interval`` seconds; a changed token is a hint for its
    folder, a collection appearing or vanishing a hierarchy hint."""

    def __init__(
        self,
        kind: FolderKind,
        client: DavClient,
        hub: Any,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> None:
        self.kind = kind
        self.client = client
        self.hub = hub
        self.folders = folders
        self.emit = emit
        self.lost = lost
        self._seen: dict[str, str | None] | None = None
        self._call: Any = None
        self._stopped = False

    async def _tokens(self) -> dict[str, str | None]:
        dav_kind = "addressbook" if self.kind is FolderKind.CONTACTS else "calendar"
        return {
            c.href: c.sync_token or c.ctag
            for c in await self.client.collections()
            if c.kind == dav_kind
            # Task lists: the calendars that hold VTODOs (opush.backends.dav.tasks).
            and (self.kind is not FolderKind.TASKS or not c.components or "VTODO" in c.components)
        }

    async def start(self) -> None:
        self._seen = await self._tokens()
        self.emit(Hint(self.kind, resync=True))
        self._schedule()

    def update_folders(self, folders: frozenset[str]) -> None:
        self.folders = folders

    async def stop(self) -> None:
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

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
        log.info("DAV poll failed: {error}", error=failure.getErrorMessage())
        self._stopped = True
        self.lost()

    async def _poll(self) -> None:
        now = await self._tokens()
        before = self._seen or {}
        if self._stopped:
            return
        self._seen = now
        changed = frozenset(h for h in now if h in before and now[h] != before[h])
        hierarchy = set(now) != set(before)
        if changed or hierarchy:
            self.emit(
                Hint(self.kind, folders=changed & self.folders or changed, hierarchy=hierarchy)
            )


def dav_services(accounts: DavAccounts) -> dict[str, Any]:
    """``runtime.services`` entries of the standalone profile's DAV backend."""

    def contact_items(runtime: Any, credentials: Credentials, collection: Collection) -> Any:
        return DavContactsSource(
            accounts.client(credentials),
            credentials,
            collection.ref.backend_id,
            collection.collection_id,
            runtime.state,
        )

    def contact_folders(runtime: Any, credentials: Credentials) -> Any:
        return DavFolderSource(accounts.client(credentials), FolderKind.CONTACTS)

    def calendar_items(runtime: Any, credentials: Credentials, collection: Collection) -> Any:
        return DavCalendarSource(
            accounts.client(credentials),
            credentials,
            collection.ref.backend_id,
            collection.collection_id,
            runtime.state,
        )

    def calendar_folders(runtime: Any, credentials: Credentials) -> Any:
        return DavFolderSource(accounts.client(credentials), FolderKind.CALENDAR)

    def task_items(runtime: Any, credentials: Credentials, collection: Collection) -> Any:
        return DavTaskSource(
            accounts.client(credentials),
            credentials,
            collection.ref.backend_id,
            collection.collection_id,
            runtime.state,
        )

    def task_folders(runtime: Any, credentials: Credentials) -> Any:
        return DavTaskFolderSource(accounts.client(credentials))

    def tasks_poller(
        hub: Any,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> DavPoller:
        return DavPoller(FolderKind.TASKS, accounts.client(credentials), hub, folders, emit, lost)

    def calendar_poller(
        hub: Any,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> DavPoller:
        return DavPoller(
            FolderKind.CALENDAR, accounts.client(credentials), hub, folders, emit, lost
        )

    def contacts_poller(
        hub: Any,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> DavPoller:
        return DavPoller(
            FolderKind.CONTACTS, accounts.client(credentials), hub, folders, emit, lost
        )

    return {
        "sync_sources": {
            FolderKind.CONTACTS: contact_items,
            FolderKind.CALENDAR: calendar_items,
            FolderKind.TASKS: task_items,
        },
        "folder_sources": [calendar_folders, contact_folders, task_folders],
        "push_sources": {
            FolderKind.CONTACTS: contacts_poller,
            FolderKind.CALENDAR: calendar_poller,
            FolderKind.TASKS: tasks_poller,
        },
        "meeting_responses": DavMeetingResponses(accounts),
        "dav_accounts": accounts,
    }


__all__ = ["DavAccounts", "DavClient", "DavPoller", "dav_services"]
