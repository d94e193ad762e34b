"""Push: Ping and the hanging Sync without a worker per device.

- `opush.push.hub.PushHub`: one watcher per user (shared by every device and request of the
  user, released `linger` seconds after the last waiter), sources per backend kind.
- `opush.push.imapwatch`: the mail source (NOTIFY, else IDLE + STATUS polling with jitter,
  under a global limit of concurrent IMAP work; hierarchy changes too).
- `opush.push.checks`: hints are confirmed against the device's sync state before a wake-up.
- `opush.push.wait.wait_for_changes(ctx, collections, seconds)`: the hanging part, used by
  `opush.commands.ping` and by Sync through ``runtime.services["sync_wait"]``.
- `opush.push.heartbeat`: interval bounds (opush.ini push.heartbeat.min/max).

`install(runtime)` (opush.tap) builds the hub and registers the Sync hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opush.push.hub import PushHub, PushSettings
from opush.push.wait import CHANGES, WaitResult, get_hub, wait_for_changes

if TYPE_CHECKING:
    from opush.commands.context import CommandContext
    from opush.runtime import Runtime


async def sync_wait(ctx: CommandContext, collection_ids: Sequence[int], seconds: int) -> bool:
    """The Sync Wait/HeartbeatInterval hook (``runtime.services["sync_wait"]``): hang until
    one of these collections has confirmed changes (True) or the interval ends / a newer
    request arrives (False: the Sync answers an empty body, MS-ASCMD 2.2.3.198)."""
    collections = []
    for cid in collection_ids:
        c = await ctx.runtime.state.get_collection(ctx.device.user, ctx.device.device_id, cid)
        if c is None:
            return True  # let the Sync answer Status 12 for it now
        collections.append(c)
    result = await wait_for_changes(ctx, collections, float(seconds), hierarchy=False)
    return result.reason == CHANGES


def install(runtime: Runtime) -> PushHub:
    """Build the hub for `runtime` and register the Sync hook."""
    runtime.services["sync_wait"] = sync_wait
    return get_hub(runtime)


__all__ = [
    "CHANGES",
    "PushHub",
    "PushSettings",
    "WaitResult",
    "get_hub",
    "install",
    "sync_wait",
    "wait_for_changes",
]
