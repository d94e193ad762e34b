"""The mail change source: one IMAP watcher per user, whatever the number of devices.

- NOTIFY (RFC 5465) where the server offers it: one session, ``NOTIFY SET (PERSONAL
  (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))`` then IDLE; every
  folder of the user *and* the hierarchy are covered (STATUS and LIST responses).
- otherwise IDLE (RFC 2177) on the folder that matters most (INBOX when watched), plus
  STATUS (UIDVALIDITY UIDNEXT MESSAGES HIGHESTMODSEQ) of the other watched folders and a
  LIST (hierarchy) every `poll_interval` seconds with jitter;
- with no session to spare (`PushSettings.max_sessions`) or a server without IDLE: polling
  only.  Polls borrow pooled sessions briefly, under the hub's global concurrency limit.

The watcher's session is dedicated (not lent by the pool: it sits in IDLE for hours) and
counted in `PushHub.sessions`.  Events are hints; `opush.push.wait` confirms them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred

from opush.backends.imap import parser as p
from opush.backends.imap.parser import Response
from opush.backends.imap.pool import logout, open_session
from opush.backends.imap.protocol import DelayedCall, ImapProtocol
from opush.backends.imap.store import ImapMailBackend, mailbox_arg
from opush.backends.imap.utf7 import decode_mailbox
from opush.backends.interfaces import (
    BackendError,
    Credentials,
    MailBackend,
    MailboxNotFound,
    MailStore,
)
from opush.log import logger
from opush.push.hub import Emit, Hint, PushHub
from opush.storage.interfaces import FolderKind

log = logger("opush.push")

#: RFC 2177: re-issue IDLE before 29 minutes; NOTIFY sessions too.
IDLE_RENEW = 25 * 60.0
NOTIFY_SET = (
    b"NOTIFY SET (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"
)

StatusKey = tuple[int, int, int, int | None]


def _mailbox_name(token: p.Token) -> str:
    name = p.text(token) or ""
    try:
        name = decode_mailbox(name)
    except ValueError:
        pass
    return "INBOX" if name.upper() == "INBOX" else name


def idle_choice(folders: frozenset[str]) -> str | None:
    """The folder worth an IDLE session: INBOX if watched (new mail), else the first."""
    for name in folders:
        if name.upper() == "INBOX":
            return name
    return min(folders) if folders else None


class ImapMailWatcher:
    """A `ChangeSource` for one user's mailbox (see module docstring)."""

    kind = FolderKind.MAIL

    def __init__(
        self,
        hub: PushHub,
        store: MailStore,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
        *,
        session: Callable[[], Deferred[ImapProtocol]] | None = None,
    ) -> None:
        self.hub = hub
        self.store = store
        self.folders = folders
        self.emit = emit
        self.lost = lost
        self.session = session
        self.mode = "starting"
        self.conn: ImapProtocol | None = None
        self.idle_folder: str | None = None
        self.stopped = False
        self._holds_session = False
        self._idle: Deferred[Any] | None = None
        self._renew: DelayedCall | None = None
        self._poll: DelayedCall | None = None
        self._busy = False  # a SELECT/DONE in flight: ignore untagged noise
        self._reselect = False
        self._last: dict[str, StatusKey] = {}
        self._names: frozenset[tuple[str, bool]] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        settings = self.hub.settings
        if self.session is not None and self.hub.sessions < settings.max_sessions:
            self.hub.sessions += 1
            self._holds_session = True
            try:
                conn = await self.hub.limited(self.session)
            except BaseException:
                self._drop_session_count()
                raise
            if self.stopped:  # stopped while logging in: nobody wants it any more
                self._drop_session_count()
                await logout(conn)
                return
            self.conn = conn
            conn.listener = self._on_response
            conn.lost_callbacks.append(self._on_lost)
            caps = conn.capabilities
            notify = False
            if settings.use_notify and "NOTIFY" in caps:
                result = await conn.command(NOTIFY_SET)
                notify = result.tagged.kind == "OK"
                if not notify:
                    log.info("NOTIFY refused ({text}): using IDLE", text=result.tagged.text)
            if notify:
                self.mode = "notify"
                await self._enter_idle()
            elif "IDLE" in caps:
                self.mode = "idle"
                await self._select_and_idle()
            else:
                self.conn = None
                conn.listener = None
                conn.lost_callbacks.remove(self._on_lost)
                self._drop_session_count()
                await logout(conn)
                self.mode = "poll"
        else:
            self.mode = "poll"
        if self.mode != "notify":
            # Baseline first, so a change after this point is seen by the next poll.
            await self.hub.limited(lambda: self._poll_once(report=False))
            self._schedule_poll()
        # Events before this point are lost: waiters check everything once.
        self.emit(Hint(self.kind, resync=True))

    def update_folders(self, folders: frozenset[str]) -> None:
        self.folders = folders
        if self.mode == "idle" and idle_choice(folders) != self.idle_folder:
            self._reselect = True
            self._spawn(self._switch_idle())

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        for timer in (self._renew, self._poll):
            if timer is not None and timer.active():
                timer.cancel()
        conn, self.conn = self.conn, None
        if conn is None:
            return
        conn.listener = None
        if self._on_lost in conn.lost_callbacks:
            conn.lost_callbacks.remove(self._on_lost)
        self._drop_session_count()
        try:
            await self._leave_idle(conn)
        except BackendError:
            pass
        await logout(conn)

    def _drop_session_count(self) -> None:
        if self._holds_session:
            self._holds_session = False
            self.hub.sessions -= 1

    def _on_lost(self, _: ImapProtocol) -> None:
        self._drop_session_count()
        if self.stopped:
            return
        self.stopped = True
        self.conn = None
        for timer in (self._renew, self._poll):
            if timer is not None and timer.active():
                timer.cancel()
        log.info("push watcher session lost ({mode})", mode=self.mode)
        self.lost()

    def _spawn(self, coro: Any) -> None:
        from twisted.internet.defer import ensureDeferred

        d = ensureDeferred(coro)
        d.addErrback(lambda f: log.info("push watcher: {error}", error=f.getErrorMessage()))

    # ------------------------------------------------------------------ IDLE

    async def _select_and_idle(self) -> None:
        conn = self.conn
        folder = idle_choice(self.folders)
        self.idle_folder = folder
        if conn is None or folder is None:
            return  # nothing to IDLE on (yet): polling covers the rest
        self._busy = True
        try:
            result = await conn.command(b"EXAMINE", mailbox_arg(folder))
        finally:
            self._busy = False
        if result.tagged.kind != "OK":
            self.idle_folder = None  # gone meanwhile; the hierarchy poll will tell
            return
        await self._enter_idle()

    async def _switch_idle(self) -> None:
        conn = self.conn
        if conn is None or self.stopped or not self._reselect:
            return
        self._reselect = False
        await self._leave_idle(conn)
        if not self.stopped:
            await self._select_and_idle()

    async def _enter_idle(self) -> None:
        conn = self.conn
        if conn is None:
            return
        started: Deferred[None] = Deferred()

        def on_continuation(_: Response) -> None:
            if not started.called:
                started.callback(None)

        def failed(failure: Any) -> None:
            if not started.called:
                started.errback(failure)

        self._idle = conn.command(
            b"IDLE",
            timeout=None,
            on_continuation=on_continuation,
            on_untagged=lambda _: True,  # events go to the listener, never accumulate
        )
        self._idle.addErrback(failed)
        timer = conn.clock.callLater(conn.timeout or 10.0, self._no_continuation)
        try:
            await started
        finally:
            if timer.active():
                timer.cancel()
        self._renew = conn.clock.callLater(IDLE_RENEW, self._renew_idle)

    def _no_continuation(self) -> None:
        conn = self.conn
        if conn is not None and conn.connected_:
            log.warn("IDLE not acknowledged in time")
            cast(Any, conn.transport).abortConnection()

    async def _leave_idle(self, conn: ImapProtocol) -> None:
        if self._renew is not None and self._renew.active():
            self._renew.cancel()
        self._renew = None
        idle, self._idle = self._idle, None
        if idle is not None and conn.connected_:
            self._busy = self.mode == "idle"
            try:
                conn.send_raw(b"DONE")
                conn.arm_timeout()
                await idle
            finally:
                self._busy = False

    def _renew_idle(self) -> None:
        self._renew = None

        async def renew() -> None:
            conn = self.conn
            if conn is None:
                return
            await self._leave_idle(conn)
            if not self.stopped:
                await self._enter_idle()

        self._spawn(renew())

    def _on_response(self, response: Response) -> None:
        if self.stopped or response.tag != "*" or self._busy:
            return
        kind = response.kind
        if kind in ("EXISTS", "EXPUNGE", "VANISHED", "FETCH"):
            if self.mode == "idle" and self.idle_folder is not None:
                self.emit(Hint(self.kind, frozenset({self.idle_folder})))
        elif kind == "STATUS" and response.data:
            self.emit(Hint(self.kind, frozenset({_mailbox_name(response.data[0])})))
        elif kind == "LIST" and len(response.data) >= 3:
            # Created, renamed, deleted, (un)subscribed elsewhere; Dovecot also sends one
            # when a folder's list index entry is refreshed: waiters confirm.
            name = _mailbox_name(response.data[2])
            self.emit(Hint(self.kind, frozenset({name}), hierarchy=True))

    # ------------------------------------------------------------------ polling

    def _schedule_poll(self) -> None:
        if self.stopped:
            return
        delay = self.hub.jittered(self.hub.settings.poll_interval)
        self._poll = self.hub.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._poll = None

        async def tick() -> None:
            try:
                await self.hub.limited(lambda: self._poll_once(report=True))
            except BackendError as exc:
                log.info("push poll failed: {error}", error=exc)
            finally:
                self._schedule_poll()

        self._spawn(tick())

    def polled_folders(self) -> list[str]:
        return sorted(f for f in self.folders if f != self.idle_folder or self.conn is None)

    async def _poll_once(self, report: bool) -> None:
        """STATUS of the folders no session watches, LIST for the hierarchy; hints for
        what differs from the previous round (new folders count as changed)."""
        if self.stopped:
            return
        changed: set[str] = set()
        for folder in self.polled_folders():
            try:
                st = await self.store.status(folder)
            except MailboxNotFound:
                key: StatusKey | None = None
            else:
                key = (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq)
            previous = self._last.get(folder)
            if key is None:
                self._last.pop(folder, None)
            else:
                self._last[folder] = key
            if previous != key:
                changed.add(folder)
        names = frozenset((f.name, f.subscribed) for f in await self.store.list_folders())
        hierarchy = self._names is not None and names != self._names
        self._names = names
        if report and not self.stopped and (changed or hierarchy):
            self.emit(Hint(self.kind, frozenset(changed), hierarchy=hierarchy))


def mail_factory(mail: MailBackend) -> Callable[..., ImapMailWatcher]:
    """The hub's SourceFactory for mail on `mail` (IMAP sessions when it is ours)."""

    def make(
        hub: PushHub,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> ImapMailWatcher:
        store = mail.store(credentials)
        session: Callable[[], Deferred[ImapProtocol]] | None = None
        if isinstance(mail, ImapMailBackend):
            backend = mail
            login = backend.imap_login(credentials.user)

            def session() -> Deferred[ImapProtocol]:
                from twisted.internet.defer import ensureDeferred

                pool = backend.pool
                return ensureDeferred(
                    open_session(pool.connector, pool.settings, login, credentials.password)
                )

        return ImapMailWatcher(hub, store, folders, emit, lost, session=session)

    return make
