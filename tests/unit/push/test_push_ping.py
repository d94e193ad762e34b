"""Ping (MS-ASCMD 2.2.1.13) on a fake clock: statuses 1-7, remembered parameters, a newer
request ending the outstanding Ping."""

from __future__ import annotations

from typing import Any

from lxml.etree import _Element
from twisted.internet.defer import ensureDeferred

from opush.commands import ping
from opush.commands.context import CommandContext, CommandResult
from opush.storage.interfaces import PingFolder, PingParameters
from opush.wbxml import decode, encode, ns
from tests.support.push import PingAnswer, ping_answer, ping_request
from tests.unit.push.conftest import USER, World

CLASS = "Email"


def request(heartbeat: int | None, *ids: str) -> _Element:
    # Through the codec, as a device would send it.
    return decode(encode(ping_request(heartbeat, [(i, CLASS) for i in ids])))


def run(ctx: CommandContext, body: _Element | None) -> list[Any]:
    out: list[Any] = []
    ensureDeferred(ping.handle(ctx, body)).addBoth(out.append)
    return out


def answer(out: list[Any]) -> PingAnswer:
    assert len(out) == 1, out
    result = out[0]
    assert isinstance(result, CommandResult), result
    assert result.tree is not None
    return ping_answer(decode(encode(result.tree)))


def test_heartbeat_expiry_is_status_1(world: World) -> None:
    out = run(world.ctx(), request(480, "1"))
    world.clock.advance(479)
    assert out == []
    world.clock.advance(1)
    assert answer(out) == PingAnswer(1)


def test_confirmed_change_is_status_2_with_the_folders(world: World) -> None:
    out = run(world.ctx(), request(480, "1", "2"))
    world.clock.advance(30)
    world.checks.changed.add("Work")
    world.sources.last.hint("Work")
    assert answer(out) == PingAnswer(2, ("2",))


def test_out_of_range_heartbeat_is_status_5_with_the_limit(world: World) -> None:
    assert answer(run(world.ctx(), request(10, "1"))) == PingAnswer(5, heartbeat=60)
    assert answer(run(world.ctx(), request(4000, "1"))) == PingAnswer(5, heartbeat=3540)
    assert world.state.pings == {}  # nothing remembered from a refused request


def test_too_many_folders_is_status_6_with_max_folders(world: World) -> None:
    out = run(world.ctx(), request(480, "1", "2", "3", "4"))
    assert answer(out) == PingAnswer(6, max_folders=3)


def test_unknown_folder_is_status_7(world: World) -> None:
    assert answer(run(world.ctx(), request(480, "99"))).status == 7
    assert answer(run(world.ctx(), request(480, "abc"))).status == 7


def test_hierarchy_changed_since_foldersync_is_status_7(world: World) -> None:
    world.checks.hierarchy_changed = True
    assert answer(run(world.ctx(), request(480, "1"))).status == 7


def test_no_parameters_and_none_remembered_is_status_3(world: World) -> None:
    assert answer(run(world.ctx(), None)).status == 3
    assert answer(run(world.ctx(), request(480))).status == 3  # interval but no folders


def test_malformed_request_is_status_4(world: World) -> None:
    bad = decode(encode(ping_request(480, [("1", CLASS)])))
    bad.find(f"{{{ns.PING}}}HeartbeatInterval").text = "soon"  # type: ignore[union-attr]
    assert answer(run(world.ctx(), bad)).status == 4
    root = ping_request(480)
    root.append(ping_request(None).makeelement(f"{{{ns.PING}}}Folders"))
    assert answer(run(world.ctx(), decode(encode(root)))).status == 4


def test_parameters_are_remembered_and_an_empty_ping_reuses_them(world: World) -> None:
    first = run(world.ctx(), request(300, "1"))
    world.clock.advance(300)
    assert answer(first).status == 1
    assert world.state.pings[(USER, "DEV1")] == PingParameters(300, (PingFolder(1, CLASS),))
    puts = world.state.puts
    second = run(world.ctx(), None)  # no body at all
    world.clock.advance(299)
    assert second == []
    world.clock.advance(1)
    assert answer(second).status == 1
    assert world.state.puts == puts  # unchanged parameters are not written again
    third = run(world.ctx(), request(600))  # new interval, folders remembered
    world.checks.changed.add("INBOX")
    world.sources.last.hint("INBOX")
    assert answer(third) == PingAnswer(2, ("1",))
    assert world.state.pings[(USER, "DEV1")].heartbeat_interval == 600


def test_a_newer_request_ends_the_outstanding_ping(world: World) -> None:
    ctx = world.ctx()
    first = run(ctx, request(3000, "1"))
    world.clock.advance(1)
    ctx.interrupted.callback(None)  # what the front door does when the device sends again
    world.clock.advance(0)
    assert answer(first).status == 1


def test_front_door_lane_hands_over_to_the_newer_request(world: World) -> None:
    """The device's lane (opush.http.devices) interrupts the held Ping and then runs the new
    request: the Ping must not end inside the interrupter's call."""
    from twisted.internet.defer import Deferred

    from opush.http.devices import DeviceLanes

    lanes = DeviceLanes()
    key = (USER, "DEV1")
    first_ctx = world.ctx()
    first: list[Any] = []
    ensureDeferred(
        lanes.run(key, first_ctx.interrupted, lambda: ping.handle(first_ctx, request(3000, "1")))
    ).addBoth(first.append)
    second_ctx = world.ctx()
    second: list[Any] = []
    interrupted: Deferred[None] = second_ctx.interrupted
    ensureDeferred(
        lanes.run(key, interrupted, lambda: ping.handle(second_ctx, request(60, "1")))
    ).addBoth(second.append)
    world.clock.advance(0)
    assert answer(first).status == 1
    assert second == []  # now the one held
    world.clock.advance(60)
    assert answer(second).status == 1
