"""The hanging part shared by Ping and Sync (Wait / HeartbeatInterval).

`wait_for_changes` subscribes to the user's watcher, checks once at once (changes the device
has not fetched yet answer immediately), then sleeps until a hint, the heartbeat, or
`ctx.interrupted` (a newer request of the same device, the client hanging up, shutdown).
Hints are confirmed (`opush.push.checks`) before the wait ends with changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred

from opush.backends.interfaces import BackendError
from opush.log import logger
from opush.push.checks import WakeChecks, engine_checks
from opush.push.hub import FolderKey, PushHub, PushSettings
from opush.storage.interfaces import Collection, FolderKind, StorageError

if TYPE_CHECKING:
    from opush.commands.context import CommandContext
    from opush.runtime import Runtime

log = logger("opush.push")

CHANGES = "changes"
HIERARCHY = "hierarchy"
HEARTBEAT = "heartbeat"
INTERRUPTED = "interrupted"


@attrs.frozen
class WaitResult:
    """Why the wait ended: CHANGES (`changed` = collection ids, confirmed), HIERARCHY
    (Ping Status 7 / Sync Status 12), HEARTBEAT (nothing happened), INTERRUPTED (a newer
    request or the client went away: answer as for HEARTBEAT, quickly)."""

    reason: str
    changed: tuple[int, ...] = ()


def get_hub(runtime: Runtime) -> PushHub:
    """The process's hub, built on first use from runtime.config and runtime.mail."""
    hub = runtime.services.get("push")
    if isinstance(hub, PushHub):
        return hub
    from opush.push.imapwatch import mail_factory

    factories: dict[FolderKind, Any] = {}
    if runtime.mail is not None:
        factories[FolderKind.MAIL] = mail_factory(runtime.mail)
    factories.update(runtime.services.get("push_sources") or {})  # profiles' (obm: PIM)
    hub = PushHub(runtime.clock, PushSettings.from_config(runtime.config), factories)
    runtime.services["push"] = hub
    trigger = getattr(runtime.clock, "addSystemEventTrigger", None)
    if trigger is not None:
        trigger("before", "shutdown", lambda: ensureDeferred(hub.shutdown()))
    return hub


class _Signal:
    """A re-armable wake-up for the wait loop."""

    def __init__(self) -> None:
        self._d: Deferred[None] | None = None
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        d, self._d = self._d, None
        if d is not None:
            d.callback(None)

    def wait(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.fired:
            d.callback(None)
        else:
            self._d = d
        return d

    def clear(self) -> None:
        self.fired = False


async def wait_for_changes(
    ctx: CommandContext,
    collections: Sequence[Collection],
    heartbeat: float,
    *,
    hierarchy: bool = True,
    checks: WakeChecks | None = None,
    hub: PushHub | None = None,
) -> WaitResult:
    """Hang up to `heartbeat` seconds for confirmed changes in `collections` (and, with
    `hierarchy`, a hierarchy change since the device's last FolderSync)."""
    hub = hub or get_hub(ctx.runtime)
    checks = checks or (hub.checks or engine_checks)(ctx)
    by_key: dict[FolderKey, list[Collection]] = {}
    for c in collections:
        by_key.setdefault((c.ref.kind, c.ref.backend_id), []).append(c)
    user = ctx.device.user
    sub = hub.subscribe(user, ctx.credentials, by_key)
    signal = _Signal()
    state = {"expired": False, "interrupted": False}

    def expire() -> None:
        state["expired"] = True
        signal.fire()

    def interrupt(result: object) -> object:
        # Acted on in the next reactor turn, never inside the interrupter's call: the front
        # door fires this before queueing the newer request, and a Ping ending
        # synchronously would close the device's lane under it.
        state["interrupted"] = True
        hub.clock.callLater(0, signal.fire)
        return result

    timer: Any = hub.clock.callLater(heartbeat, expire)
    ctx.interrupted.addBoth(interrupt)
    hint_wait: Deferred[None] | None = None
    try:
        # Subscribed first, checked second: a change in between is a hint, not lost.
        await hub.limited(lambda: checks.prepare(list(collections)))
        if hierarchy and await hub.limited(checks.hierarchy):
            return WaitResult(HIERARCHY)
        changed = await _confirm(hub, checks, collections)
        if changed:
            return WaitResult(CHANGES, changed)
        sub.take()  # what arrived during the first check was just covered by it
        while True:
            if state["interrupted"]:
                return WaitResult(INTERRUPTED)
            if state["expired"]:
                return WaitResult(HEARTBEAT)
            signal.clear()
            hint_wait = sub.next_hint()
            hint_wait.addCallbacks(lambda _: signal.fire(), lambda _: None)
            await signal.wait()
            if hint_wait is not None and not hint_wait.called:
                hint_wait.cancel()
            hint_wait = None
            if not sub.pending or state["interrupted"]:
                continue
            dirty, hier, resync = sub.take()
            try:
                if hierarchy and hier and await hub.limited(checks.hierarchy):
                    return WaitResult(HIERARCHY)
                targets: Sequence[Collection] = (
                    collections if resync else [c for k in dirty for c in by_key.get(k, [])]
                )
                changed = await _confirm(hub, checks, targets)
            except (BackendError, StorageError) as exc:
                # Cannot confirm now: keep waiting; the next hint or the heartbeat decides.
                log.info("push wake-up check failed: {error}", error=exc)
                continue
            if changed:
                return WaitResult(CHANGES, changed)
    finally:
        sub.release()
        if timer.active():
            timer.cancel()
        if hint_wait is not None and not hint_wait.called:
            hint_wait.cancel()


async def _confirm(
    hub: PushHub, checks: WakeChecks, collections: Sequence[Collection]
) -> tuple[int, ...]:
    seen: set[int] = set()
    out: list[int] = []
    for c in collections:
        if c.collection_id in seen:
            continue
        seen.add(c.collection_id)

        async def one(c: Collection = c) -> bool:
            return await checks.changed(c)

        if await hub.limited(one):
            out.append(c.collection_id)
    return tuple(out)
