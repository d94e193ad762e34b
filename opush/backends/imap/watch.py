"""Push hooks: tell the caller when a watched folder changes, without the caller polling.

- NOTIFY (RFC 5465) when offered: one session watches every folder.
- else IDLE (RFC 2177): one session per folder, as many as the per-user limit leaves room
  for (one session stays free for normal requests);
- the remaining folders are polled with STATUS every `poll_interval` seconds.

Events are hints ("something changed in X"); the sync engine finds out what with
`changes_since`.  A session that drops reports `MailboxEvent(folder, "lost")` for its folders
and the watch stops: the push layer answers the Ping (the device syncs) and watches again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.internet import defer
from twisted.python.failure import Failure

from opush.backends.imap import parser as p
from opush.backends.imap.parser import Response
from opush.backends.imap.pool import ImapPool
from opush.backends.imap.protocol import DelayedCall, ImapProtocol, check
from opush.backends.imap.utf7 import decode_mailbox, encode_mailbox
from opush.backends.interfaces import MailBackendUnavailable, MailboxEvent, MailError
from opush.log import logger

log = logger("IMAP.COMMAND")

#: RFC 2177: re-issue IDLE at least every 29 minutes.
IDLE_RENEW = 25 * 60.0
POLL_INTERVAL = 60.0

Callback = Callable[[MailboxEvent], None]


def _quote_mailbox(name: str) -> bytes:
    return p.quote("INBOX" if name.upper() == "INBOX" else encode_mailbox(name))


def _name(token: p.Token) -> str:
    name = p.text(token) or ""
    try:
        name = decode_mailbox(name)
    except ValueError:
        pass
    return "INBOX" if name.upper() == "INBOX" else name


class _SessionWatch:
    """One session sitting in IDLE, reporting untagged responses as events."""

    def __init__(
        self,
        pool: ImapPool,
        conn: ImapProtocol,
        folders: Sequence[str],
        callback: Callback,
        notify: bool,
    ) -> None:
        self.pool = pool
        self.conn = conn
        self.folders = list(folders)
        self.callback = callback
        self.notify = notify
        self.stopped = False
        self._idle: defer.Deferred[Any] | None = None
        self._renew: DelayedCall | None = None

    async def start(self) -> None:
        conn = self.conn
        if self.notify:
            boxes = b" ".join(_quote_mailbox(f) for f in self.folders)
            check(
                await conn.command(
                    b"NOTIFY SET (MAILBOXES (" + boxes + b") (MessageNew MessageExpunge FlagChange"
                    b" MailboxName))"
                ),
                "NOTIFY",
            )
        else:
            result = await conn.command(b"SELECT", _quote_mailbox(self.folders[0]))
            check(result, f"SELECT {self.folders[0]}")
            conn.selected = encode_mailbox(self.folders[0])
        conn.listener = self._on_response
        conn.lost_callbacks.append(self._on_lost)
        await self._enter_idle()

    async def _enter_idle(self) -> None:
        started: defer.Deferred[None] = defer.Deferred()

        def on_continuation(_: Response) -> None:
            if not started.called:
                started.callback(None)

        def failed(failure: Failure) -> None:
            # The session died before or during IDLE: wake start(); _on_lost reports it.
            if not started.called:
                started.errback(failure)

        self._idle = self.conn.command(b"IDLE", timeout=None, on_continuation=on_continuation)
        self._idle.addErrback(failed)
        timer = self.conn.clock.callLater(self.pool.settings.timeout, self._no_continuation)
        try:
            await started
        finally:
            if timer.active():
                timer.cancel()
        self._renew = self.conn.clock.callLater(IDLE_RENEW, self._renew_idle)

    def _no_continuation(self) -> None:
        if self.conn.connected_:
            log.warn("IDLE not acknowledged in time")
            cast(Any, self.conn.transport).abortConnection()

    async def _leave_idle(self) -> None:
        if self._renew is not None and self._renew.active():
            self._renew.cancel()
        self._renew = None
        idle, self._idle = self._idle, None
        if idle is not None and self.conn.connected_:
            self.conn.send_raw(b"DONE")
            self.conn.arm_timeout()
            await idle

    def _renew_idle(self) -> None:
        self._renew = None

        async def renew() -> None:
            try:
                await self._leave_idle()
                if not self.stopped:
                    await self._enter_idle()
            except (MailBackendUnavailable, MailError):
                pass  # _on_lost reports it

        defer.ensureDeferred(renew())

    def _on_response(self, response: Response) -> None:
        if self.stopped or response.tag != "*":
            return
        kind = response.kind
        folder = self.folders[0] if self.folders else ""
        if kind == "EXISTS":
            self.callback(MailboxEvent(folder, "exists"))
        elif kind in ("EXPUNGE", "VANISHED"):
            self.callback(MailboxEvent(folder, "expunge"))
        elif kind == "FETCH":
            self.callback(MailboxEvent(folder, "fetch"))
        elif kind == "STATUS" and response.data:
            self.callback(MailboxEvent(_name(response.data[0]), "status"))
        elif kind == "LIST" and len(response.data) >= 3:
            self.callback(MailboxEvent(_name(response.data[2]), "mailbox"))

    def _on_lost(self, _: ImapProtocol) -> None:
        if not self.stopped:
            self.stopped = True
            for folder in self.folders:
                self.callback(MailboxEvent(folder, "lost"))

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.conn.listener = None
        try:
            await self._leave_idle()
            if self.notify and self.conn.connected_:
                await self.conn.command(b"NOTIFY NONE")
        except (MailBackendUnavailable, MailError):
            pass
        self.pool.release(self.conn, reusable=self.conn.connected_)


class _PollWatch:
    """STATUS polling for folders that got no IDLE session (borrows pooled sessions)."""

    def __init__(
        self, pool: ImapPool, login: str, password: str, folders: Sequence[str], cb: Callback
    ) -> None:
        self.pool = pool
        self.login = login
        self.password = password
        self.folders = list(folders)
        self.callback = cb
        self.stopped = False
        self.last: dict[str, tuple[int, ...]] = {}
        self._timer: DelayedCall | None = None

    async def start(self) -> None:
        self.last = await self._poll()
        self._schedule()

    def _schedule(self) -> None:
        if not self.stopped:
            self._timer = self.pool.clock.callLater(POLL_INTERVAL, self._tick)

    def _tick(self) -> None:
        async def tick() -> None:
            try:
                now = await self._poll()
            except (MailBackendUnavailable, MailError) as exc:
                log.info("STATUS poll failed: {error}", error=exc)
                self._schedule()
                return
            for folder, values in now.items():
                if not self.stopped and self.last.get(folder) != values:
                    self.callback(MailboxEvent(folder, "status"))
            self.last = now
            self._schedule()

        defer.ensureDeferred(tick())

    async def _poll(self) -> dict[str, tuple[int, ...]]:
        conn = await self.pool.acquire(self.login, self.password)
        out: dict[str, tuple[int, ...]] = {}
        ok = False
        try:
            items = b"(MESSAGES UIDNEXT UIDVALIDITY UNSEEN"
            items += b" HIGHESTMODSEQ)" if "CONDSTORE" in conn.capabilities else b")"
            for folder in self.folders:
                result = await conn.command(b"STATUS", _quote_mailbox(folder), items)
                values: list[int] = []
                for r in result.of_kind("STATUS"):
                    pairs = p.as_list(r.data[1]) if len(r.data) > 1 else []
                    values = [p.number(v) for v in pairs[1::2]]
                out[folder] = tuple(values)
            ok = True
        finally:
            self.pool.release(conn, reusable=ok and conn.connected_)
        return out

    async def stop(self) -> None:
        self.stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()


class MultiWatch:
    """The Watch handed to callers: stops every part."""

    def __init__(self, parts: list[_SessionWatch | _PollWatch]) -> None:
        self.parts = parts

    async def stop(self) -> None:
        for part in self.parts:
            await part.stop()


async def start_watch(
    pool: ImapPool,
    login: str,
    password: str,
    folders: Sequence[str],
    callback: Callback,
    *,
    use_notify: bool = True,
) -> MultiWatch:
    if not folders:
        return MultiWatch([])
    parts: list[_SessionWatch | _PollWatch] = []
    try:
        conn = await pool.acquire(login, password)
        caps = conn.capabilities
        if use_notify and "NOTIFY" in caps:
            watch = _SessionWatch(pool, conn, folders, callback, notify=True)
            parts.append(watch)
            await watch.start()
            return MultiWatch(parts)
        if "IDLE" not in caps:
            pool.release(conn)
            poll = _PollWatch(pool, login, password, folders, callback)
            parts.append(poll)
            await poll.start()
            return MultiWatch(parts)
        idle_slots = max(1, pool.settings.max_connections_per_user - 1)
        idle_folders, polled = list(folders[:idle_slots]), list(folders[idle_slots:])
        for i, folder in enumerate(idle_folders):
            session = conn if i == 0 else await pool.acquire(login, password)
            watch = _SessionWatch(pool, session, [folder], callback, notify=False)
            parts.append(watch)
            await watch.start()
        if polled:
            poll = _PollWatch(pool, login, password, polled, callback)
            parts.append(poll)
            await poll.start()
        return MultiWatch(parts)
    except BaseException:
        for part in parts:
            await part.stop()
        raise
