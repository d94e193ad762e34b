"""The request context follows a request through its Deferreds (async def + ensureDeferred)."""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs

from opush.log import (
    RequestContext,
    current_context,
    logger,
    new_request_id,
    request_context,
    request_scope,
)

log = logger("CONTAINER")


async def _backend_call(clock: Clock, delay: float) -> str:
    await deferLater(clock, delay, lambda: None)
    ctx = current_context()
    log.info("backend answered")
    return ctx.user if ctx else "-"


async def _handle(clock: Clock, ctx: RequestContext, delay: float) -> str:
    with request_scope(ctx):
        user = await _backend_call(clock, delay)
        ctx.command = "Sync"  # known later, visible from here on
        await deferLater(clock, delay, lambda: None)
        log.info("done")
        return user


def test_context_survives_awaits_of_deferreds_fired_later() -> None:
    clock = Clock()
    a = RequestContext(request_id=1, connection=5, user="alice@example.org")
    b = RequestContext(request_id=2, connection=6, user="bob@example.org")
    with capturedLogs() as events:
        da = ensureDeferred(_handle(clock, a, 2))
        db = ensureDeferred(_handle(clock, b, 1))  # interleaved: b's Deferreds fire first
        assert request_context.get() is None
        clock.advance(1)
        clock.advance(1)
        clock.advance(1)
        clock.advance(1)
    results: list[str] = []
    da.addCallback(results.append)
    db.addCallback(results.append)
    assert results == ["alice@example.org", "bob@example.org"]
    seen = [(e["opush_context"].prefix(), e["log_format"]) for e in events]
    assert sorted(seen) == [
        ("[t5/c/r1/alice@example.org]", "backend answered"),
        ("[t5/cSync/r1/alice@example.org]", "done"),
        ("[t6/c/r2/bob@example.org]", "backend answered"),
        ("[t6/cSync/r2/bob@example.org]", "done"),
    ]
    assert request_context.get() is None


def test_scope_set_before_ensure_deferred_is_inherited() -> None:
    d: Deferred[None] = Deferred()

    async def work() -> RequestContext | None:
        await d
        return current_context()

    ctx = RequestContext(request_id=new_request_id())
    with request_scope(ctx):
        result = ensureDeferred(work())
    assert current_context() is None
    d.callback(None)
    got: list[RequestContext | None] = []
    result.addCallback(got.append)
    assert got == [ctx]


def test_request_ids_increase() -> None:
    first = new_request_id()
    assert new_request_id() == first + 1
