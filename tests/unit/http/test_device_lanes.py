"""DeviceLanes: one request per user+device, bounded queue, interrupts, cancelled waiters."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.python.failure import Failure

from opush.http.devices import DeviceLanes, DeviceThrottled

KEY = ("alice@example.org", "DEV1")


def test_order_interrupts_throttle_and_cleanup() -> None:
    lanes = DeviceLanes(max_waiting=2, retry_after=9)
    log: list[str] = []
    gates = {name: Deferred[None]() for name in "abc"}
    interrupts = {name: Deferred[None]() for name in "abcd"}

    def job(name: str) -> Deferred[str]:
        async def work() -> str:
            log.append(f"start {name}")
            await gates[name]
            log.append(f"end {name}")
            return name

        return ensureDeferred(lanes.run(KEY, interrupts[name], work))

    a, b, c = job("a"), job("b"), job("c")
    assert log == ["start a"] and interrupts["a"].called and not interrupts["b"].called
    failures: list[Failure] = []
    job("d").addErrback(failures.append)
    assert failures and failures[0].check(DeviceThrottled)
    assert failures[0].value.headers["Retry-After"] == "9"
    gates["a"].callback(None)
    assert log == ["start a", "end a", "start b"]
    gates["c"].callback(None)  # c is still waiting: nothing happens out of turn
    assert log[-1] == "start b"
    gates["b"].callback(None)
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert [d.result for d in (a, b, c)] == ["a", "b", "c"]
    assert lanes.waiting(KEY) == 0 and not lanes._lanes


def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lanes = DeviceLanes()
    gate: Deferred[None] = Deferred()
    ran: list[str] = []

    async def first() -> None:
        await gate

    async def second() -> None:
        ran.append("second")

    running = ensureDeferred(lanes.run(KEY, Deferred(), first))
    waiting = ensureDeferred(lanes.run(KEY, Deferred(), second))
    assert lanes.waiting(KEY) == 1
    waiting.cancel()
    assert lanes.waiting(KEY) == 0
    waiting.addErrback(lambda f: f.trap(CancelledError))
    gate.callback(None)
    assert running.called and ran == [] and not lanes._lanes


@pytest.mark.parametrize("other", [("alice@example.org", "DEV2"), ("bob@example.org", "DEV1")])
def test_other_devices_do_not_wait(other: tuple[str, str]) -> None:
    lanes = DeviceLanes()
    gate: Deferred[None] = Deferred()

    async def blocked() -> None:
        await gate

    async def quick() -> str:
        return "done"

    ensureDeferred(lanes.run(KEY, Deferred(), blocked))
    d = ensureDeferred(lanes.run(other, Deferred(), quick))
    assert d.result == "done"
    gate.callback(None)


def test_interrupt_all_reaches_running_requests() -> None:
    lanes = DeviceLanes()
    gate: Deferred[None] = Deferred()
    interrupts = [Deferred[None](), Deferred[None]()]

    async def wait() -> None:
        await gate

    ensureDeferred(lanes.run(KEY, interrupts[0], wait))
    ensureDeferred(lanes.run(("bob@example.org", "X"), interrupts[1], wait))
    assert lanes.interrupt_all() == 2 and all(d.called for d in interrupts)
    gate.callback(None)


def test_a_waiter_whose_client_disconnects_leaves_the_queue() -> None:
    lanes = DeviceLanes()
    gate: Deferred[None] = Deferred()
    ran: list[str] = []
    own_interrupt: Deferred[None] = Deferred()

    async def first() -> None:
        await gate

    async def second() -> None:
        ran.append("second")

    ensureDeferred(lanes.run(KEY, Deferred(), first))
    waiting = ensureDeferred(lanes.run(KEY, own_interrupt, second))
    failures: list[Failure] = []
    waiting.addErrback(failures.append)
    own_interrupt.callback(None)  # what ActiveSyncResource does when the connection drops
    assert failures and failures[0].check(CancelledError) and lanes.waiting(KEY) == 0
    gate.callback(None)
    assert ran == [] and not lanes._lanes


def test_request_that_ends_when_interrupted_hands_its_turn_to_the_newcomer() -> None:
    """A held Ping answering inside the interrupt callback must not strand the new request."""
    lanes = DeviceLanes()
    key = ("alice@example.org", "DEV")
    first_interrupt: Deferred[None] = Deferred()

    async def held() -> str:
        await first_interrupt  # the Ping ends as soon as it is interrupted
        return "ping"

    async def quick() -> str:
        return "sync"

    first = ensureDeferred(lanes.run(key, first_interrupt, held))
    second = ensureDeferred(lanes.run(key, Deferred(), quick))
    assert first.result == "ping"
    assert second.result == "sync"
