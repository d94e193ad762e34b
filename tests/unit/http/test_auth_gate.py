"""AuthGate: Basic parsing, credential cache, failure slow-down (fake clock)."""

from __future__ import annotations

import base64

import pytest
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.python.failure import Failure

from opush.backends.interfaces import BackendUnavailable, Credentials, UserIdentity
from opush.http.auth import AuthGate, parse_basic
from opush.http.errors import Unauthorized
from opush.runtime import FrontDoorSettings
from tests.support.frontdoor import ScriptedAuth, fake_clock

SETTINGS = FrontDoorSettings(
    auth_cache_seconds=60,
    auth_failure_window_seconds=600,
    auth_failure_base_delay=1.0,
    auth_failure_max_delay=8.0,
)


def header(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


_results: dict[int, tuple[Deferred[Credentials], list[Credentials | Failure]]] = {}


def result(d: Deferred[Credentials]) -> Credentials | Failure | None:
    """The outcome of `d` so far (None while pending); may be asked repeatedly."""
    if id(d) not in _results:
        box: list[Credentials | Failure] = []
        _results[id(d)] = (d, box)  # keeps `d` alive so its id is not reused
        d.addBoth(box.append)
    box = _results[id(d)][1]
    return box[0] if box else None


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"Bearer abc",
        b"Basic !!!",
        b"Basic " + base64.b64encode(b"nocolon"),
        b"Basic " + base64.b64encode(b":pw"),
        b"Basic " + base64.b64encode(b"a@:pw"),
    ],
)
def test_malformed_basic_is_unauthorized(raw: bytes | None) -> None:
    with pytest.raises(Unauthorized):
        parse_basic(raw)


def test_both_login_forms_and_latin1() -> None:
    assert (
        parse_basic(header("alice@Example.ORG", "pw")).login.login_at_domain == "alice@example.org"
    )
    assert parse_basic(header("EXAMPLE\\bob", "pw")).login.login_at_domain == "bob@example"
    latin = b"Basic " + base64.b64encode("zoé@example.org:pé".encode("latin-1"))
    assert parse_basic(latin).password == "pé"


def test_cache_hits_misses_and_expiry() -> None:
    clock = fake_clock()
    auth = ScriptedAuth({"alice@example.org": "secret"})
    gate = AuthGate(auth, clock, SETTINGS)
    ok = result(ensureDeferred(gate.authenticate(header("alice@example.org", "secret"), "1.2.3.4")))
    assert isinstance(ok, Credentials) and ok.user.email == "alice@example.org"
    result(ensureDeferred(gate.authenticate(header("alice@example.org", "secret"), "1.2.3.4")))
    assert auth.calls == 1
    # a different password is never answered from the cache
    bad = result(ensureDeferred(gate.authenticate(header("alice@example.org", "other"), "1.2.3.4")))
    assert isinstance(bad, Failure) and bad.check(Unauthorized)
    assert auth.calls == 2
    clock.advance(61)
    d = ensureDeferred(gate.authenticate(header("alice@example.org", "secret"), "1.2.3.4"))
    clock.advance(1)  # the earlier failure still slows this login down by 1 s
    assert isinstance(result(d), Credentials)
    assert auth.calls == 3


def test_repeated_failures_are_slowed_down_then_forgotten() -> None:
    clock = fake_clock()
    auth = ScriptedAuth({"alice@example.org": "secret"})
    gate = AuthGate(auth, clock, SETTINGS)

    def attempt(password: str, address: str = "6.6.6.6") -> Deferred[Credentials]:
        return ensureDeferred(gate.authenticate(header("alice@example.org", password), address))

    assert isinstance(result(attempt("x")), Failure)  # 1st failure: no delay
    d = attempt("x")
    assert result(d) is None  # waits 1 s before asking the backend
    clock.advance(1)
    assert isinstance(result(d), Failure)
    d = attempt("x")
    clock.advance(1.9)
    assert result(d) is None  # 2 s now
    clock.advance(0.1)
    assert isinstance(result(d), Failure)
    for _ in range(5):
        d = attempt("x")
        clock.advance(8)  # capped at the maximum
        assert isinstance(result(d), Failure)
    assert gate.delay_for(gate.failures("login:alice@example.org")) == 8.0
    # The address is slowed down for other logins too.
    d = ensureDeferred(gate.authenticate(header("bob@example.org", "y"), "6.6.6.6"))
    assert result(d) is None
    clock.advance(8)
    # The right password from another address still waits for the login's delay, then works
    # and clears the login's failures.
    d = attempt("secret", "10.0.0.1")
    assert result(d) is None
    clock.advance(8)
    assert isinstance(result(d), Credentials)
    assert gate.failures("login:alice@example.org") == 0
    # failures of the address expire after the window
    clock.advance(601)
    assert gate.failures("addr:6.6.6.6") == 0


def test_backend_unavailable_is_not_a_failed_login() -> None:
    class Down:
        async def authenticate(self, login: str, password: str) -> UserIdentity:
            raise BackendUnavailable("imap down")

    gate = AuthGate(Down(), fake_clock(), SETTINGS)
    r = result(ensureDeferred(gate.authenticate(header("alice@example.org", "x"), "1.1.1.1")))
    assert isinstance(r, Failure) and r.check(BackendUnavailable)
    assert gate.failures("login:alice@example.org") == 0
