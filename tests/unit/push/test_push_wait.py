"""The hub and the hanging wait on a fake clock: heartbeat, interruption, confirmed and
unconfirmed wake-ups, shared watchers, linger, restarts after a lost watcher."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from opush.push.wait import CHANGES, HEARTBEAT, HIERARCHY, INTERRUPTED, WaitResult, wait_for_changes
from tests.unit.push.conftest import CREDENTIALS, USER, World, collection


def start(coro: Coroutine[Any, Any, WaitResult]) -> list[Any]:
    out: list[Any] = []
    ensureDeferred(coro).addBoth(out.append)
    return out


def test_heartbeat_ends_the_wait_exactly_on_time(world: World) -> None:
    ctx = world.ctx()
    out = start(wait_for_changes(ctx, [collection(1, "INBOX")], 300))
    world.clock.advance(299.9)
    assert out == []
    world.clock.advance(0.1)
    assert out == [WaitResult(HEARTBEAT)]


def test_changes_already_there_answer_at_once(world: World) -> None:
    world.checks.changed.add("INBOX")
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 300))
    assert out == [WaitResult(CHANGES, (1,))]
    assert world.clock.getDelayedCalls() == [] or all(
        not c.func.__name__ == "expire" for c in world.clock.getDelayedCalls()
    )


def test_confirmed_hint_wakes_unconfirmed_does_not(world: World) -> None:
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX"), collection(2, "Work")], 300))
    source = world.sources.last
    world.clock.advance(10)
    source.hint("INBOX")  # the device's own flag change, say: nothing to fetch
    assert out == []
    world.checks.changed.add("Work")
    source.hint("Other")  # not watched: not even checked
    assert out == []
    assert "Other" not in world.checks.calls
    source.hint("Work")
    assert out == [WaitResult(CHANGES, (2,))]


def test_interruption_by_a_newer_request_ends_the_wait(world: World) -> None:
    ctx = world.ctx()
    out = start(wait_for_changes(ctx, [collection(1, "INBOX")], 3000))
    world.clock.advance(5)
    ctx.interrupted.callback(None)
    assert out == []  # not inside the interrupter's call (see wait.py)
    world.clock.advance(0)
    assert out == [WaitResult(INTERRUPTED)]
    # Nothing stays scheduled for this wait but the watcher's linger.
    assert len(world.clock.getDelayedCalls()) == 1


def test_hierarchy_change_is_checked_then_reported(world: World) -> None:
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 300))
    source = world.sources.last
    source.hint("Sent", hierarchy=True)  # a list index refresh, not a real change
    assert out == []
    world.checks.hierarchy_changed = True
    source.hint("New", hierarchy=True)
    assert out == [WaitResult(HIERARCHY)]


def test_hierarchy_can_be_left_to_the_caller(world: World) -> None:
    world.checks.hierarchy_changed = True
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 60, hierarchy=False))
    assert out == []
    world.clock.advance(60)
    assert out == [WaitResult(HEARTBEAT)]


def test_one_watcher_per_user_shared_and_released_after_linger(world: World) -> None:
    a = world.ctx("DEV1")
    b = world.ctx("DEV2")
    out_a = start(wait_for_changes(a, [collection(1, "INBOX")], 100))
    out_b = start(wait_for_changes(b, [collection(2, "Work")], 200))
    assert len(world.sources.made) == 1
    source = world.sources.last
    assert source.folders == frozenset({"INBOX", "Work"})
    assert world.hub.stats() == {"users": 1, "waiters": 2, "sessions": 0}
    world.clock.advance(100)
    assert out_a == [WaitResult(HEARTBEAT)] and out_b == []
    assert source.folders == frozenset({"Work"})
    world.clock.advance(100)
    assert out_b == [WaitResult(HEARTBEAT)]
    assert not source.stopped  # lingers for the next Ping
    out_c = start(wait_for_changes(a, [collection(1, "INBOX")], 100))
    assert len(world.sources.made) == 1  # reused
    b.interrupted.callback(None)
    a.interrupted.callback(None)
    world.clock.advance(0)
    assert out_c == [WaitResult(INTERRUPTED)]
    world.clock.advance(29)
    assert not source.stopped
    world.clock.advance(1)
    assert source.stopped
    assert world.hub.stats()["users"] == 0


def test_lost_watcher_is_restarted_and_waiters_recheck(world: World) -> None:
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 600))
    first = world.sources.last
    world.checks.changed.add("INBOX")  # a delivery while the watcher was down
    world.checks.calls.clear()
    first.die()
    # The loss itself makes the waiter check everything once.
    assert out == [WaitResult(CHANGES, (1,))]


def test_watcher_that_cannot_start_is_retried_with_backoff(world: World) -> None:
    world.sources.fail_next = 2
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 600))
    assert len(world.sources.made) == 1
    world.clock.advance(5)
    assert len(world.sources.made) == 2  # first retry after retry_delay
    world.clock.advance(5)
    assert len(world.sources.made) == 2  # then it doubles
    world.clock.advance(5)
    assert len(world.sources.made) == 3 and world.sources.last.started
    world.checks.changed.add("INBOX")
    world.sources.last.hint("INBOX")
    assert out == [WaitResult(CHANGES, (1,))]


def test_waiters_of_kinds_without_a_source_rely_on_the_heartbeat(world: World) -> None:
    out = start(wait_for_changes(world.ctx(), [world.state.collections[3]], 60))
    assert world.sources.made == []
    world.clock.advance(60)
    assert out == [WaitResult(HEARTBEAT)]


def test_a_failing_check_keeps_the_device_waiting(world: World) -> None:
    out = start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 60))
    world.checks.broken = True
    world.sources.last.hint("INBOX")
    assert out == []
    world.checks.broken = False
    world.clock.advance(60)
    assert out == [WaitResult(HEARTBEAT)]


def test_shutdown_stops_every_watcher(world: World) -> None:
    start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 60))
    d: Deferred[None] = ensureDeferred(world.hub.shutdown())
    assert d.called
    assert world.sources.last.stopped
    assert world.hub.subscribe(USER, CREDENTIALS, []).released is False


def test_a_burst_of_waiters_does_not_nest_stacks(world: World) -> None:
    """Thousands of Pings queued on the concurrency limit whose checks all end at once: the
    limit hands over through the reactor (nesting each resumption in the previous one's
    stack once hit the recursion limit and cost Pings a 500)."""
    import sys

    world.checks.gate = Deferred()
    count = sys.getrecursionlimit()
    outs = [
        start(wait_for_changes(world.ctx(f"D{i}"), [collection(1, "INBOX")], 60))
        for i in range(count)
    ]
    gate, world.checks.gate = world.checks.gate, None
    gate.callback(None)
    for _ in range(count):
        world.clock.advance(0)
    assert not [o for o in outs if o]  # none failed
    world.clock.advance(60)
    assert all(out == [WaitResult(HEARTBEAT)] for out in outs)


def test_folder_listing_is_shared_only_while_the_watcher_is_live(world: World) -> None:
    from opush.storage.interfaces import FolderKind

    hub, mail = world.hub, FolderKind.MAIL
    assert hub.listing(USER, mail) == (None, 0)
    hub.remember_listing(USER, mail, ["INBOX"], 0)  # nobody watches: not kept
    assert hub.listing(USER, mail)[0] is None
    start(wait_for_changes(world.ctx(), [collection(1, "INBOX")], 600))
    cached, generation = hub.listing(USER, mail)
    assert cached is None
    hub.remember_listing(USER, mail, ["INBOX"], generation)
    assert hub.listing(USER, mail)[0] == ["INBOX"]
    world.sources.last.hint("Projects", hierarchy=True)  # created elsewhere
    cached, newer = hub.listing(USER, mail)
    assert cached is None and newer > generation
    hub.remember_listing(USER, mail, ["INBOX"], generation)  # asked before the change
    assert hub.listing(USER, mail)[0] is None
    world.sources.last.die()
    hub.remember_listing(USER, mail, ["INBOX", "Projects"], hub.listing(USER, mail)[1])
    assert hub.listing(USER, mail)[0] is None  # restarting: hints cannot be trusted
