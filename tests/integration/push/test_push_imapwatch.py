"""The mail watcher against the local Dovecot: NOTIFY, IDLE + STATUS polling, polling only;
deliveries, flag changes by another client, folders created elsewhere, a dropped session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread

from opush.backends.imap import ImapMailBackend, ImapSettings
from opush.backends.interfaces import Credentials, UserIdentity
from opush.push.heartbeat import HeartbeatBounds
from opush.push.hub import Hint, PushHub, PushSettings
from opush.push.imapwatch import ImapMailWatcher, mail_factory
from opush.storage.interfaces import FolderKind
from tests.support.services import LocalServices

pytestmark = pytest.mark.integration
R: Any = reactor


@attrs.define
class Watched:
    watcher: ImapMailWatcher
    hints: list[Hint]
    lost: list[bool]
    _waiters: list[tuple[Callable[[Hint], bool], defer.Deferred[Hint]]]

    async def next(self, match: Callable[[Hint], bool], within: float = 10.0) -> Hint:
        for h in self.hints:
            if match(h):
                self.hints.remove(h)
                return h
        d: defer.Deferred[Hint] = defer.Deferred()
        self._waiters.append((match, d))
        d.addTimeout(within, R)
        return await d

    def emit(self, hint: Hint) -> None:
        for entry in list(self._waiters):
            match, d = entry
            if match(hint) and not d.called:
                self._waiters.remove(entry)
                d.callback(hint)
                return
        self.hints.append(hint)


@pytest_twisted.async_yield_fixture
async def backend(dovecot: LocalServices) -> AsyncIterator[ImapMailBackend]:
    settings = ImapSettings(
        host=dovecot.host, port=dovecot.imap_port, starttls=False, login_with_domain=True
    )
    mail = ImapMailBackend(R, settings)
    yield mail
    await mail.shutdown()


async def watch(backend: ImapMailBackend, user: str, folders: set[str], **settings: Any) -> Watched:
    hub = PushHub(
        R,
        PushSettings(bounds=HeartbeatBounds(), poll_interval=0.5, poll_jitter=0.1, **settings),
    )
    credentials = Credentials(UserIdentity(user.split("@")[0], "example.org", user), "secret")
    watched = Watched(None, [], [], [])  # type: ignore[arg-type]
    watcher = mail_factory(backend)(
        hub, credentials, frozenset(folders), watched.emit, lambda: watched.lost.append(True)
    )
    watched.watcher = watcher
    await watcher.start()
    return watched


def folder(name: str) -> Callable[[Hint], bool]:
    return lambda h: name in h.folders


def hierarchy(h: Hint) -> bool:
    return h.hierarchy


@pytest_twisted.ensureDeferred
async def test_notify_reports_delivery_flags_and_new_folders(
    backend: ImapMailBackend, dovecot: LocalServices, fresh_user: str
) -> None:
    w = await watch(backend, fresh_user, {"INBOX"})
    try:
        assert w.watcher.mode == "notify"
        assert (await w.next(lambda h: h.resync)).kind is FolderKind.MAIL
        await deferToThread(dovecot.deliver, fresh_user, dovecot.message(fresh_user))
        await w.next(folder("INBOX"))

        def flag() -> None:
            with dovecot.imap(fresh_user) as imap:
                imap.select("INBOX")
                imap.store("1", "+FLAGS", "\\Flagged")

        await deferToThread(flag)
        await w.next(folder("INBOX"))

        def create() -> None:
            with dovecot.imap(fresh_user) as imap:
                imap.create("Projects")
                imap.subscribe("Projects")

        await deferToThread(create)
        await w.next(hierarchy)
    finally:
        await w.watcher.stop()


@pytest_twisted.ensureDeferred
async def test_idle_on_inbox_and_status_polling_for_the_rest(
    backend: ImapMailBackend, dovecot: LocalServices, fresh_user: str
) -> None:
    w = await watch(backend, fresh_user, {"INBOX", "Sent"}, use_notify=False)
    try:
        assert w.watcher.mode == "idle"
        assert w.watcher.idle_folder == "INBOX"
        assert w.watcher.polled_folders() == ["Sent"]
        await deferToThread(dovecot.deliver, fresh_user, dovecot.message(fresh_user))
        await w.next(folder("INBOX"))

        def append_sent() -> None:
            with dovecot.imap(fresh_user) as imap:
                imap.append("Sent", None, None, b"Subject: sent\r\n\r\nhello\r\n")

        await deferToThread(append_sent)
        await w.next(folder("Sent"))

        def create() -> None:
            with dovecot.imap(fresh_user) as imap:
                imap.create("Elsewhere")
                imap.subscribe("Elsewhere")

        await deferToThread(create)
        await w.next(hierarchy)
    finally:
        await w.watcher.stop()


@pytest_twisted.ensureDeferred
async def test_polling_only_when_no_session_is_left(
    backend: ImapMailBackend, dovecot: LocalServices, fresh_user: str
) -> None:
    w = await watch(backend, fresh_user, {"INBOX"}, max_sessions=0)
    try:
        assert w.watcher.mode == "poll"
        assert w.watcher.hub.sessions == 0
        await deferToThread(dovecot.deliver, fresh_user, dovecot.message(fresh_user))
        await w.next(folder("INBOX"))
    finally:
        await w.watcher.stop()


@pytest_twisted.ensureDeferred
async def test_a_dropped_session_is_reported_once(
    backend: ImapMailBackend, dovecot: LocalServices, fresh_user: str
) -> None:
    w = await watch(backend, fresh_user, {"INBOX"})
    assert w.watcher.hub.sessions == 1
    await deferToThread(dovecot.kick, fresh_user)
    for _ in range(100):
        if w.lost:
            break
        await task.deferLater(R, 0.05, lambda: None)
    assert w.lost == [True]
    assert w.watcher.hub.sessions == 0
    await w.watcher.stop()
