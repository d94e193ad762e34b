"""Shared helpers for the sync engine unit tests: run fired coroutines synchronously."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Every double fires at once, so the coroutine finishes synchronously."""
    d = ensureDeferred(coro)
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "coroutine did not finish synchronously"
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result  # type: ignore[no-any-return]
