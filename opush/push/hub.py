"""Watchers per user, shared by that user's devices and requests.

A held Ping (or hanging Sync) *subscribes* to the hub with the backend folders it cares
about; the hub keeps one `_UserWatch` per user with one `ChangeSource` per backend kind
(mail now: `opush.push.imapwatch.ImapMailWatcher`; calendar and contacts sources plug in
through `PushHub.factories`, polling their sync tokens).  Sources report *hints*
(`Hint`: "something may have changed in these folders / in the hierarchy / I may have
missed something"); the subscriber confirms a hint against the device's sync state before
waking the device (`opush.push.wait`).

A user's watch lives while someone waits, plus `linger` seconds so the Ping a device sends
right after an answer finds the watcher still running (no new IMAP LOGIN per heartbeat).
Nothing here blocks or holds per-device IMAP sessions: a held Ping costs one Subscription.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred

from opush.backends.interfaces import Credentials
from opush.log import logger
from opush.push.heartbeat import HeartbeatBounds
from opush.runtime import Clock
from opush.storage.interfaces import FolderKind

log = logger("opush.push")

#: (kind, backend_id): a folder as a source names it (IMAP: the mailbox path).
FolderKey = tuple[FolderKind, str]


@attrs.frozen
class PushSettings:
    """Push tuning; `bounds` from opush.ini push.heartbeat.min/max, the rest defaults."""

    bounds: HeartbeatBounds = attrs.field(factory=HeartbeatBounds)
    #: Folders one Ping may watch (MS-ASCMD 2.2.3.102 MaxFolders, Status 6 beyond).
    max_folders: int = 300
    #: Concurrent IMAP work push may cause (session starts, STATUS polls, wake-up checks)
    #: across every user: a burst of deliveries never floods the IMAP server.
    concurrency: int = 32
    #: STATUS/LIST polling of what NOTIFY/IDLE does not cover, seconds, +-jitter fraction.
    poll_interval: float = 30.0
    poll_jitter: float = 0.2
    #: Dedicated IMAP sessions held by watchers (one per user); past it users are polled.
    max_sessions: int = 5000
    #: A user's watcher outlives its last waiter by this long (a device re-Pings at once).
    linger: float = 30.0
    #: After a watcher failed or its session dropped: retry after this, doubling, capped.
    retry_delay: float = 5.0
    retry_delay_max: float = 300.0
    #: Use NOTIFY (RFC 5465) where the server offers it.
    use_notify: bool = True

    @classmethod
    def from_config(cls, config: object, **overrides: Any) -> PushSettings:
        return cls(bounds=HeartbeatBounds.from_config(config), **overrides)


@attrs.frozen
class Hint:
    """What a source saw.  `folders`: these may have changed; `hierarchy`: folders may have
    been created/renamed/deleted; `resync`: the source may have missed events (it just
    started or restarted): every subscriber of that kind should check everything."""

    kind: FolderKind
    folders: frozenset[str] = frozenset()
    hierarchy: bool = False
    resync: bool = False


Emit = Callable[[Hint], None]


class ChangeSource(Protocol):
    """One user's change feed for one backend kind."""

    kind: FolderKind

    async def start(self) -> None:
        """Begin watching; emit Hint(resync=True) once live (events before it are lost)."""
        ...

    def update_folders(self, folders: frozenset[str]) -> None:
        """The folders subscribers care about now (may be called before `start` ends)."""
        ...

    async def stop(self) -> None: ...


#: Builds the source of one kind for a user: (hub, credentials, folders, emit, lost) ->
#: source, or None when this kind cannot be watched (waiters rely on their heartbeat).
#: The source calls `lost()` once if it dies after starting (the hub then restarts it).
SourceFactory = Callable[
    ["PushHub", Credentials, frozenset[str], Emit, Callable[[], None]], ChangeSource | None
]


class Subscription:
    """One waiter's registration: hints accumulate here until `take()`."""

    def __init__(self, hub: PushHub, user: str, interests: frozenset[FolderKey]) -> None:
        self.hub = hub
        self.user = user
        self.interests = interests
        self.dirty: set[FolderKey] = set()
        self.hierarchy = False
        self.resync = False
        self.released = False
        self._wakeup: Deferred[None] | None = None

    @property
    def pending(self) -> bool:
        return bool(self.dirty) or self.hierarchy or self.resync

    def notify(self, hint: Hint) -> None:
        if self.released:
            return
        if hint.resync:
            self.resync = True
        if hint.hierarchy:
            self.hierarchy = True
        for name in hint.folders:
            key = (hint.kind, name)
            if key in self.interests:
                self.dirty.add(key)
        if self.pending and self._wakeup is not None:
            d, self._wakeup = self._wakeup, None
            d.callback(None)

    def take(self) -> tuple[frozenset[FolderKey], bool, bool]:
        """(dirty folders, hierarchy, resync) since the last take, then cleared."""
        out = (frozenset(self.dirty), self.hierarchy, self.resync)
        self.dirty.clear()
        self.hierarchy = self.resync = False
        return out

    def next_hint(self) -> Deferred[None]:
        """Fires when a hint is pending (at once if one already is)."""
        d: Deferred[None] = Deferred(lambda _: self._forget(d))
        if self.pending:
            d.callback(None)
        else:
            self._wakeup = d
        return d

    def _forget(self, d: Deferred[None]) -> None:
        if self._wakeup is d:
            self._wakeup = None

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.hub._release(self)


@attrs.define(eq=False)
class _Source:
    source: ChangeSource | None = None
    starting: bool = False
    failures: int = 0
    retry: Any = None  # IDelayedCall


@attrs.define(eq=False)
class _UserWatch:
    user: str
    credentials: Credentials
    subs: list[Subscription] = attrs.field(factory=list)
    sources: dict[FolderKind, _Source] = attrs.field(factory=dict)
    linger: Any = None  # IDelayedCall

    def folders(self, kind: FolderKind) -> frozenset[str]:
        return frozenset(name for s in self.subs for k, name in s.interests if k is kind)

    def kinds(self) -> set[FolderKind]:
        return {k for s in self.subs for k, _ in s.interests}


class PushHub:
    """The process-wide registry of user watchers (one per process, `get_hub`)."""

    def __init__(
        self,
        clock: Clock,
        settings: PushSettings,
        factories: dict[FolderKind, SourceFactory] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock
        self.settings = settings
        self.factories: dict[FolderKind, SourceFactory] = dict(factories or {})
        self.rng = rng or random.Random()
        self.limiter = DeferredSemaphore(max(1, settings.concurrency))
        #: How waiters confirm hints: ctx -> WakeChecks (None: opush.push.checks.engine_checks).
        self.checks: Callable[[Any], Any] | None = None
        #: Dedicated sessions held by watchers now (ImapMailWatcher counts itself).
        self.sessions = 0
        self._users: dict[str, _UserWatch] = {}
        self._closed = False
        #: (user, kind) -> that user's folder listing, kept only while the user's watcher of
        #: that kind is live and reported no hierarchy change (see `listing`).
        self._listings: dict[tuple[str, FolderKind], Any] = {}
        self._generations: dict[tuple[str, FolderKind], int] = {}

    # ------------------------------------------------------------------ waiters

    def subscribe(
        self, user: str, credentials: Credentials, interests: Iterable[FolderKey]
    ) -> Subscription:
        """Register a waiter of `user` for these folders; release it when done."""
        sub = Subscription(self, user, frozenset(interests))
        watch = self._users.get(user)
        if watch is None:
            watch = self._users[user] = _UserWatch(user, credentials)
        watch.credentials = credentials  # the newest password wins (changed on the server)
        if watch.linger is not None and watch.linger.active():
            watch.linger.cancel()
        watch.linger = None
        watch.subs.append(sub)
        self._refresh(watch)
        return sub

    def _release(self, sub: Subscription) -> None:
        watch = self._users.get(sub.user)
        if watch is None or sub not in watch.subs:
            return
        watch.subs.remove(sub)
        if not watch.subs and not self._closed:
            if watch.linger is None or not watch.linger.active():
                watch.linger = self.clock.callLater(self.settings.linger, self._expire, watch)
        elif watch.subs:
            self._refresh(watch)

    def _expire(self, watch: _UserWatch) -> None:
        watch.linger = None
        if watch.subs or self._users.get(watch.user) is not watch:
            return
        del self._users[watch.user]
        for kind in list(watch.sources):
            self._forget_listing(watch.user, kind)
            ensureDeferred(self._stop_source(watch, kind))

    # ------------------------------------------------------------------ sources

    def _refresh(self, watch: _UserWatch) -> None:
        """Start missing sources, tell running ones their folders."""
        for kind in watch.kinds():
            entry = watch.sources.get(kind)
            folders = watch.folders(kind)
            if entry is None:
                if kind not in self.factories:
                    continue  # nothing can watch this kind yet: heartbeat only
                watch.sources[kind] = entry = _Source()
                self._start(watch, kind)
            elif entry.source is not None:
                entry.source.update_folders(folders)

    def _start(self, watch: _UserWatch, kind: FolderKind) -> None:
        entry = watch.sources.get(kind)
        if entry is None or entry.starting or self._closed:
            return
        entry.retry = None

        def emit(hint: Hint) -> None:
            if self._users.get(watch.user) is watch:
                self._deliver(watch, hint)

        def lost() -> None:
            # The source died (session dropped): waiters check everything, we restart.
            self._forget_listing(watch.user, kind)
            emit(Hint(kind, resync=True))
            current = watch.sources.get(kind)
            if current is entry and self._users.get(watch.user) is watch:
                entry.source = None
                self._schedule_retry(watch, kind, entry)

        source = self.factories[kind](self, watch.credentials, watch.folders(kind), emit, lost)
        if source is None:
            return
        entry.source = source
        entry.starting = True

        async def run() -> None:
            try:
                await source.start()
            except Exception as exc:
                log.info(
                    "push watcher for {user} ({kind}) failed to start: {error}",
                    user=watch.user,
                    kind=kind.value,
                    error=exc,
                )
                entry.starting = False
                if entry.source is source:
                    entry.source = None
                    stopping = ensureDeferred(source.stop())
                    stopping.addErrback(lambda _: None)
                    if self._users.get(watch.user) is watch:
                        self._schedule_retry(watch, kind, entry)
                return
            entry.starting = False
            entry.failures = 0
            if self._users.get(watch.user) is not watch or watch.sources.get(kind) is not entry:
                await source.stop()  # nobody waits any more
                return
            source.update_folders(watch.folders(kind))

        ensureDeferred(run())

    def _schedule_retry(self, watch: _UserWatch, kind: FolderKind, entry: _Source) -> None:
        if self._closed or (entry.retry is not None and entry.retry.active()):
            return
        delay = min(
            self.settings.retry_delay * (2 ** min(entry.failures, 16)),
            self.settings.retry_delay_max,
        )
        entry.failures += 1
        entry.retry = self.clock.callLater(delay, self._start, watch, kind)

    async def _stop_source(self, watch: _UserWatch, kind: FolderKind) -> None:
        entry = watch.sources.pop(kind, None)
        if entry is None:
            return
        if entry.retry is not None and entry.retry.active():
            entry.retry.cancel()
        if entry.source is not None:
            try:
                await entry.source.stop()
            except Exception as exc:
                log.info("stopping push watcher of {user}: {error}", user=watch.user, error=exc)

    def live(self, user: str, kind: FolderKind) -> bool:
        """Is a watcher of `kind` running for `user` (its hints can be trusted)?"""
        watch = self._users.get(user)
        entry = watch.sources.get(kind) if watch is not None else None
        return entry is not None and entry.source is not None and not entry.starting

    def listing(self, user: str, kind: FolderKind) -> tuple[Any, int]:
        """(cached folder listing of `user` or None, generation to pass to
        `remember_listing` after asking the backend)."""
        generation = self._generations.get((user, kind), 0)
        if not self.live(user, kind):
            return None, generation
        return self._listings.get((user, kind)), generation

    def remember_listing(self, user: str, kind: FolderKind, listing: Any, generation: int) -> None:
        """Keep a listing while the watcher is live: ten devices of a user, each Pinging
        every few minutes, need no LIST each.  A hierarchy hint drops it; a listing asked
        before such a hint (older generation) is not kept."""
        if self.live(user, kind) and self._generations.get((user, kind), 0) == generation:
            self._listings[(user, kind)] = listing

    def _forget_listing(self, user: str, kind: FolderKind) -> None:
        self._listings.pop((user, kind), None)
        self._generations[(user, kind)] = self._generations.get((user, kind), 0) + 1

    def _deliver(self, watch: _UserWatch, hint: Hint) -> None:
        if hint.hierarchy or hint.resync:
            self._forget_listing(watch.user, hint.kind)
        for sub in list(watch.subs):
            if any(k is hint.kind for k, _ in sub.interests) or hint.hierarchy:
                sub.notify(hint)

    # ------------------------------------------------------------------ helpers

    async def limited(self, work: Callable[[], Any]) -> Any:
        """Run `work()` (a coroutine function) within the global IMAP concurrency limit."""
        await self.limiter.acquire()
        try:
            return await work()
        finally:
            if self.limiter.waiting:
                # Hand the slot over from the reactor, not from inside this call: with
                # thousands queued (a burst of Pings) and work that ends at once, resuming
                # each waiter from the previous one's stack would nest without bound.
                self.clock.callLater(0, self.limiter.release)
            else:
                self.limiter.release()

    def jittered(self, seconds: float) -> float:
        j = self.settings.poll_jitter
        return seconds * (1.0 + self.rng.uniform(-j, j))

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self._users),
            "waiters": sum(len(w.subs) for w in self._users.values()),
            "sessions": self.sessions,
        }

    async def shutdown(self) -> None:
        self._closed = True
        users, self._users = list(self._users.values()), {}
        for watch in users:
            if watch.linger is not None and watch.linger.active():
                watch.linger.cancel()
            for kind in list(watch.sources):
                await self._stop_source(watch, kind)
