"""Helpers for obm profile tests: a client wired to the obm-sync double, synchronous runs."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure

from opush.backends.interfaces import Credentials, UserIdentity
from opush.backends.obmsync import ObmSyncClient
from tests.doubles.obmsync import ObmSyncDouble
from tests.support.storage import fake_clock

T = TypeVar("T")

SERVICES_URL = "http://127.0.0.1:8080/obm-sync/services"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on time or I/O (in-memory doubles) to completion."""
    results: list[Any] = []
    ensureDeferred(coro).addBoth(results.append)
    assert results, "the coroutine is still waiting: it needs a reactor"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


def credentials(login_at_domain: str, password: str = "secret") -> Credentials:
    login, _, domain = login_at_domain.partition("@")
    return Credentials(UserIdentity(login, domain, login_at_domain), password)


def double_and_client(**kwargs: Any) -> tuple[ObmSyncDouble, ObmSyncClient, Any]:
    """A double with alice and bob of example.org, a client on it, and the shared fake clock."""
    clock = fake_clock()
    double = ObmSyncDouble(clock)
    double.add_user(
        "alice@example.org", display_name="Alice Liddell", first="Alice", last="Liddell"
    )
    double.add_user("bob@example.org", display_name="Bob Morane", first="Bob", last="Morane")
    client = ObmSyncClient(double.transport(), clock, SERVICES_URL, **kwargs)
    return double, client, clock
