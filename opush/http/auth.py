"""HTTP Basic authentication in front of an `Auth`, with a short credential cache and a
slow-down for repeated failures.

- Every request carries Basic credentials (MS-ASHTTP 2.2.1.1.2.1).  Asking the IMAP server
  (or obm-sync) each time costs a login per request, so verified credentials are kept for
  `auth_cache_seconds` as a salted PBKDF2 hash: the password itself is never kept.
- Failures are never cached (a user who fixes the password is let in at once), but each
  login name and each client address accumulates failures over a window; the next attempt
  waits base * 2**(n-1) seconds (capped) before the backend is asked.  That bounds password
  guessing without locking the real user out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from opush.backends.interfaces import (
    Auth,
    AuthenticationFailed,
    Credentials,
    LoginName,
    parse_login,
)
from opush.http.errors import Unauthorized
from opush.runtime import Clock, FrontDoorSettings

_HASH_ITERATIONS = 1000  # ~1 ms: a memory dump should not hand out passwords cheaply
_MAX_TRACKED = 10_000  # bound on remembered logins/addresses (oldest forgotten first)


@attrs.frozen
class BasicCredentials:
    login: LoginName
    raw_login: str
    password: str = attrs.field(repr=False)


def parse_basic(header: bytes | None) -> BasicCredentials:
    """Decode `Authorization: Basic ...`; Unauthorized if absent or malformed.

    The user part is `user@domain` or `DOMAIN\\user` (parse_login).  Devices send UTF-8;
    a few old ones Latin-1 (what the Java server assumed), tried second.
    """
    if not header:
        raise Unauthorized("no credentials")
    scheme, _, value = header.strip().partition(b" ")
    if scheme.lower() != b"basic" or not value.strip():
        raise Unauthorized("not Basic credentials")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise Unauthorized("malformed Basic credentials") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise Unauthorized("empty user or password")
    try:
        login = parse_login(user)
    except ValueError as e:
        raise Unauthorized(f"invalid login {user!r}") from e
    return BasicCredentials(login=login, raw_login=user, password=password)


@attrs.define
class _Cached:
    salt: bytes
    digest: bytes = attrs.field(repr=False)
    credentials: Credentials
    expires: float


@attrs.define
class _Failures:
    count: int
    last: float


class AuthGate:
    """Authenticates requests: cache first, then the backend, with failure slow-down."""

    def __init__(
        self,
        auth: Auth,
        clock: Clock,
        settings: FrontDoorSettings,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._auth = auth
        self._clock = clock
        self._settings = settings
        self._random = random_bytes
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def _hash(self, password: str, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, _HASH_ITERATIONS)

    def failures(self, key: str) -> int:
        """Failures recorded for a login (`login:<x>`) or address (`addr:<x>`) in the window."""
        entry = self._failures.get(key)
        if entry is None or self._settings.auth_failure_window_seconds <= 0:
            return 0
        if self._clock.seconds() - entry.last > self._settings.auth_failure_window_seconds:
            del self._failures[key]
            return 0
        return entry.count

    def delay_for(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        s = self._settings
        return float(min(s.auth_failure_max_delay, s.auth_failure_base_delay * 2 ** (failures - 1)))

    def _record_failure(self, key: str) -> None:
        if self._settings.auth_failure_window_seconds <= 0:
            return  # throttling disabled
        count = self.failures(key) + 1
        self._failures[key] = _Failures(count, self._clock.seconds())
        self._failures.move_to_end(key)
        while len(self._failures) > _MAX_TRACKED:
            self._failures.popitem(last=False)

    async def authenticate(self, header: bytes | None, address: str) -> Credentials:
        """The request's credentials, verified; Unauthorized otherwise (after any slow-down)."""
        basic = parse_basic(header)
        key = basic.login.login_at_domain.lower()
        login_key, addr_key = f"login:{key}", f"addr:{address}"
        now = self._clock.seconds()
        cached = self._cache.get(key)
        if cached is not None:
            if cached.expires > now and hmac.compare_digest(
                cached.digest, self._hash(basic.password, cached.salt)
            ):
                return cached.credentials
            if cached.expires <= now:
                del self._cache[key]
        delay = self.delay_for(max(self.failures(login_key), self.failures(addr_key)))
        if delay > 0:
            await deferLater(cast(IReactorTime, self._clock), delay, lambda: None)
        try:
            identity = await self._auth.authenticate(basic.raw_login, basic.password)
        except AuthenticationFailed as e:
            self._record_failure(login_key)
            self._record_failure(addr_key)
            self._cache.pop(key, None)
            raise Unauthorized(f"bad credentials for {key}") from e
        self._failures.pop(login_key, None)
        credentials = Credentials(user=identity, password=basic.password)
        if self._settings.auth_cache_seconds <= 0:
            return credentials  # cache disabled
        salt = self._random(16)
        self._cache[key] = _Cached(
            salt=salt,
            digest=self._hash(basic.password, salt),
            credentials=credentials,
            expires=self._clock.seconds() + self._settings.auth_cache_seconds,
        )
        self._cache.move_to_end(key)
        while len(self._cache) > _MAX_TRACKED:
            self._cache.popitem(last=False)
        return credentials
