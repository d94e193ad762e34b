"""IMAP sessions: connect, STARTTLS, LOGIN, ENABLE; and a per-user pool of them.

A pooled session is keyed by login *and* a keyed hash of the password, so a request with a
wrong password never rides on someone's authenticated session.  Limits: sessions per user,
sessions overall (idle sessions of other users are closed first when the global limit is
hit), and an idle expiry.  A session that dropped is forgotten at once (connectionLost), so
the next use connects again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.error import ConnectError, DNSLookupError

from opush.backends.imap.parser import quote
from opush.backends.imap.protocol import Clock, DelayedCall, ImapProtocol, Literal, check
from opush.backends.interfaces import AuthenticationFailed, MailBackendUnavailable, MailError
from opush.log import logger

log = logger("IMAP.COMMAND")
resources_log = logger("RESOURCES")

Connector = Callable[[], Awaitable[ImapProtocol]]


@attrs.frozen
class ImapSettings:
    """mail_conf.ini keys, as explicit constructor parameters."""

    host: str
    port: int = 143
    starttls: bool = True  # imap.activateTLS
    login_with_domain: bool = True  # imap.loginWithDomain
    timeout: float = 5.0  # imap.timeoutInMs / 1000
    max_connections_per_user: int = 4
    max_connections: int = 1000
    idle_expiry: float = 300.0
    #: A Twisted IOpenSSLClientConnectionCreator; None = verify the server's certificate
    #: for `host` against the system trust store.
    tls_options: Any = None


def tcp_connector(reactor: Any, settings: ImapSettings) -> Connector:
    """Connects to settings.host:port with the connect timeout = command timeout."""

    async def connect() -> ImapProtocol:
        endpoint = HostnameEndpoint(reactor, settings.host, settings.port, timeout=settings.timeout)
        proto = ImapProtocol(reactor, settings.timeout)
        try:
            await connectProtocol(endpoint, proto)  # type: ignore[no-untyped-call]
        except (ConnectError, DNSLookupError, OSError) as exc:
            raise MailBackendUnavailable(
                f"cannot connect to IMAP {settings.host}:{settings.port}: {exc}"
            ) from exc
        return proto

    return connect


def _string(value: str) -> bytes | Literal:
    raw = value.encode("utf-8")
    if raw.isascii() and not any(c in raw for c in b"\r\n\x00"):
        return quote(raw)
    return Literal(raw)


async def open_session(
    connector: Connector,
    settings: ImapSettings,
    login: str,
    password: str,
    *,
    enable: bool = True,
) -> ImapProtocol:
    """A logged-in session: greeting, [STARTTLS], LOGIN, ENABLE QRESYNC/CONDSTORE.

    AuthenticationFailed for rejected credentials; MailBackendUnavailable for anything
    that says the server is not usable right now.
    """
    proto = await connector()
    try:
        greeting = await proto.greeting
        if greeting.kind == "PREAUTH":
            raise MailBackendUnavailable("IMAP server sent PREAUTH; refusing an unknown identity")
        if not proto.capabilities:
            check(await proto.command(b"CAPABILITY"), "CAPABILITY")
        if settings.starttls:
            if "STARTTLS" not in proto.capabilities:
                raise MailBackendUnavailable(
                    "IMAP server does not offer STARTTLS (imap.activateTLS=true)"
                )
            check(await proto.command(b"STARTTLS"), "STARTTLS")
            options = settings.tls_options
            if options is None:
                from twisted.internet.ssl import optionsForClientTLS

                options = optionsForClientTLS(settings.host)
            cast(Any, proto.transport).startTLS(options)
            proto.capabilities = frozenset()
            check(await proto.command(b"CAPABILITY"), "CAPABILITY")
        if "LOGINDISABLED" in proto.capabilities:
            raise MailBackendUnavailable("IMAP server disables LOGIN on this connection")
        result = await proto.command(
            b"LOGIN",
            _string(login),
            _string(password),
            log_line=b"LOGIN " + quote(login.encode("utf-8", "replace")) + b" ********",
        )
        if result.tagged.kind != "OK":
            code = result.tagged.code_name
            if code in ("UNAVAILABLE", "SERVERBUG"):
                raise MailBackendUnavailable(f"IMAP LOGIN: {result.tagged.text}")
            raise AuthenticationFailed(f"IMAP server refused the login of {login}")
        if not enable:
            return proto  # a credentials check only (ImapAuth)
        if result.tagged.code_name != "CAPABILITY":
            check(await proto.command(b"CAPABILITY"), "CAPABILITY")
        caps = proto.capabilities
        if "ENABLE" in caps and ("QRESYNC" in caps or "CONDSTORE" in caps):
            wanted = b"QRESYNC" if "QRESYNC" in caps else b"CONDSTORE"
            enabled = await proto.command(b"ENABLE", wanted)
            if enabled.tagged.kind != "OK":
                log.warn("ENABLE refused: {text}", text=enabled.tagged.text)
            names: set[str] = set()
            for r in enabled.of_kind("ENABLED"):
                names.update(t.upper() for t in r.data if isinstance(t, str))
            if "QRESYNC" in names:
                names.add("CONDSTORE")  # RFC 7162 3.2.3: QRESYNC implies CONDSTORE
            proto.enabled = frozenset(names)
        resources_log.debug("IMAP session opened for {login}", login=login)
        return proto
    except BaseException:
        if proto.connected_:
            cast(Any, proto.transport).abortConnection()
        raise


async def logout(proto: ImapProtocol) -> None:
    """Polite LOGOUT then close; never raises."""
    if not proto.connected_:
        return
    try:
        if not proto.busy:
            await proto.command(b"LOGOUT")
    except (MailError, MailBackendUnavailable):
        pass
    finally:
        if proto.connected_ and proto.transport is not None:
            cast(Any, proto.transport).loseConnection()


@attrs.define(eq=False)
class _Idle:
    proto: ImapProtocol
    timer: DelayedCall


class ImapPool:
    def __init__(self, clock: Clock, settings: ImapSettings, connector: Connector) -> None:
        self.clock = clock
        self.settings = settings
        self.connector = connector
        self._secret = os.urandom(32)
        self._idle: dict[tuple[str, bytes], list[_Idle]] = {}
        self._open: dict[tuple[str, bytes], int] = {}
        self._key_of: dict[ImapProtocol, tuple[str, bytes]] = {}
        self._waiters: list[defer.Deferred[None]] = []
        self._closed = False

    @property
    def total(self) -> int:
        return sum(self._open.values())

    def _key(self, login: str, password: str) -> tuple[str, bytes]:
        digest = hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest()
        return (login, digest)

    def has_session(self, login: str, password: str) -> bool:
        """True when a live session was opened with exactly these credentials."""
        return self._open.get(self._key(login, password), 0) > 0

    async def acquire(self, login: str, password: str) -> ImapProtocol:
        if self._closed:
            raise MailBackendUnavailable("IMAP pool is shut down")
        key = self._key(login, password)
        deadline = self.clock.seconds() + self.settings.timeout
        while True:
            idle = self._idle.get(key)
            while idle:
                entry = idle.pop()
                if entry.timer.active():
                    entry.timer.cancel()
                if entry.proto.connected_ and not entry.proto.busy:
                    entry.proto.reused = True
                    return entry.proto
            if (
                self._open.get(key, 0) < self.settings.max_connections_per_user
                and self.total < self.settings.max_connections
            ):
                return await self._connect(key, login, password)
            if self.total >= self.settings.max_connections and self._evict_other(key):
                continue
            remaining = deadline - self.clock.seconds()
            if remaining <= 0:
                raise MailBackendUnavailable(
                    f"too many IMAP connections (user {login}: {self._open.get(key, 0)}, "
                    f"total {self.total})"
                )
            await self._wait(remaining)

    async def _connect(self, key: tuple[str, bytes], login: str, password: str) -> ImapProtocol:
        self._open[key] = self._open.get(key, 0) + 1
        try:
            proto = await open_session(self.connector, self.settings, login, password)
        except BaseException:
            self._forget_slot(key)
            raise
        if not proto.connected_:
            self._forget_slot(key)
            raise MailBackendUnavailable("IMAP connection lost during login")
        self._key_of[proto] = key
        proto.lost_callbacks.append(self._lost)
        return proto

    def _forget_slot(self, key: tuple[str, bytes]) -> None:
        n = self._open.get(key, 0) - 1
        if n > 0:
            self._open[key] = n
        else:
            self._open.pop(key, None)
        self._wake()

    def _lost(self, proto: ImapProtocol) -> None:
        key = self._key_of.pop(proto, None)
        if key is None:
            return
        idle = self._idle.get(key, [])
        for entry in list(idle):
            if entry.proto is proto:
                idle.remove(entry)
                if entry.timer.active():
                    entry.timer.cancel()
        if not idle:
            self._idle.pop(key, None)
        self._forget_slot(key)

    def release(self, proto: ImapProtocol, reusable: bool = True) -> None:
        key = self._key_of.get(proto)
        if key is None:
            return
        if not reusable or self._closed or not proto.connected_ or proto.busy:
            if proto.connected_:
                cast(Any, proto.transport).abortConnection()
            return
        timer = self.clock.callLater(self.settings.idle_expiry, self._expire, proto)
        self._idle.setdefault(key, []).append(_Idle(proto, timer))
        self._wake()

    def _expire(self, proto: ImapProtocol) -> None:
        key = self._key_of.get(proto)
        if key is not None:
            idle = self._idle.get(key, [])
            for entry in list(idle):
                if entry.proto is proto:
                    idle.remove(entry)
        defer.ensureDeferred(logout(proto))

    def _evict_other(self, key: tuple[str, bytes]) -> bool:
        for other, idle in self._idle.items():
            if other != key and idle:
                entry = idle.pop(0)
                if entry.timer.active():
                    entry.timer.cancel()
                cast(Any, entry.proto.transport).abortConnection()
                return True
        return False

    def _wait(self, timeout: float) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._waiters.append(d)
        timer = self.clock.callLater(timeout, self._wake_one, d)

        def done(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        d.addBoth(done)
        return d

    def _wake_one(self, d: defer.Deferred[None]) -> None:
        if d in self._waiters:
            self._waiters.remove(d)
        if not d.called:
            d.callback(None)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            if not d.called:
                d.callback(None)

    async def shutdown(self) -> None:
        self._closed = True
        entries = [e for idle in self._idle.values() for e in idle]
        self._idle.clear()
        for e in entries:
            if e.timer.active():
                e.timer.cancel()
        await defer.gatherResults([defer.ensureDeferred(logout(e.proto)) for e in entries])
        for proto in list(self._key_of):
            if proto.connected_:
                cast(Any, proto.transport).abortConnection()
        self._wake()
