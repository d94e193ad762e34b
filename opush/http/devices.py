"""Device gate: who may sync, and one request at a time per user+device.

Serialization: a device's requests touch the same sync state, so they run one after the
other.  A new request also interrupts the running one through its `interrupted` Deferred,
which is how a long Ping ends when the device sends something else (MS-ASCMD 2.2.1.13).
Past `max_waiting` queued requests the device is throttled with 503 + Retry-After
(MS-ASHTTP 3.1.5.2: 503 "the server is busy"), instead of queuing without bound.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
from twisted.internet.defer import CancelledError, Deferred

from opush.http.errors import EasStatusError, GlobalStatus, HttpError
from opush.runtime import FrontDoorSettings
from opush.storage.interfaces import Device, Permission, WipeState

T = TypeVar("T")


class DeviceThrottled(HttpError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(
            503, "too many requests queued for this device", {"Retry-After": str(retry_after)}
        )


@attrs.define
class _Lane:
    running: bool = False
    waiters: deque[Deferred[None]] = attrs.field(factory=deque)
    interrupt: Deferred[None] | None = None


class DeviceLanes:
    """One running request per key; up to `max_waiting` queued behind it."""

    def __init__(self, max_waiting: int = 20, retry_after: int = 30) -> None:
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self._lanes: dict[tuple[str, str], _Lane] = {}

    def interrupt_all(self) -> int:
        """Ask every running request to end early (server shutdown); how many were asked."""
        count = 0
        for lane in self._lanes.values():
            if lane.interrupt is not None and not lane.interrupt.called:
                lane.interrupt.callback(None)
                count += 1
        return count

    def waiting(self, key: tuple[str, str]) -> int:
        lane = self._lanes.get(key)
        return len(lane.waiters) if lane else 0

    async def run(
        self,
        key: tuple[str, str],
        interrupt: Deferred[None],
        work: Callable[[], Awaitable[T]],
    ) -> T:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if lane.running:
            if len(lane.waiters) >= self.max_waiting:
                raise DeviceThrottled(self.retry_after)
            # Queue first, then interrupt: the running request may finish inside the
            # callback, and must then hand its turn over rather than drop the lane.
            turn: Deferred[None] = Deferred()
            lane.waiters.append(turn)
            if lane.interrupt is not None and not lane.interrupt.called:
                lane.interrupt.callback(None)

            def leave(result: object) -> object:
                # Our own interrupt while waiting = the client went away: give up the place.
                if not turn.called:
                    turn.cancel()
                return result

            interrupt.addBoth(leave)
            try:
                await turn
            except CancelledError:
                # Client gone while waiting: leave the queue without taking a turn.
                if turn in lane.waiters:
                    lane.waiters.remove(turn)
                raise
        lane.running = True
        lane.interrupt = interrupt
        try:
            return await work()
        finally:
            lane.interrupt = None
            if lane.waiters:
                lane.waiters.popleft().callback(None)  # hand over; stays running
            else:
                lane.running = False
                del self._lanes[key]


def check_device_allowed(settings: FrontDoorSettings, device: Device, user_key: str) -> None:
    """sync_perms.ini `blacklist.users` and `allow.unknown.pda`, the administrator's
    per-device decision, and wiped devices (refused until an administrator clears them).

    MS-ASCMD 2.2.2: 126 UserDisabledForSync, 129 DeviceIsBlockedForThisUser (403 < 14.0).
    """
    if user_key.lower() in settings.blacklist_users:
        raise EasStatusError(
            GlobalStatus.USER_DISABLED_FOR_SYNC, message=f"user {user_key} is blacklisted"
        )
    if device.wipe in (WipeState.WIPED, WipeState.ACCOUNT_ONLY_WIPED):
        raise EasStatusError(
            GlobalStatus.DEVICE_IS_BLOCKED_FOR_THIS_USER, message="device was wiped"
        )
    if device.permission is Permission.BLOCKED:
        raise EasStatusError(
            GlobalStatus.DEVICE_IS_BLOCKED_FOR_THIS_USER, message="device blocked by admin"
        )
    if device.permission is None and not settings.allow_unknown_pda:
        raise EasStatusError(
            GlobalStatus.DEVICE_IS_BLOCKED_FOR_THIS_USER,
            message="unknown device and allow.unknown.pda=false",
        )


def check_policy(
    command: str, device: Device, sent_key: int | None, fingerprint: int | None = None
) -> None:
    """The policy gate (MS-ASPROV 3.2.5.1): every command but Provision needs the device's
    current policy key; the Java server never compared it.

    14.0+: 140 RemoteWipeRequested, 142 DeviceNotProvisioned (no key / 0), 144
    InvalidPolicyKey (another key), 143 PolicyRefresh (the key predates the current policy);
    before 14.0 all of them are HTTP 449 (errors.py).
    """
    if command == "Provision":
        return
    if device.wipe in (WipeState.WIPE_PENDING, WipeState.ACCOUNT_ONLY_WIPE_PENDING):
        raise EasStatusError(GlobalStatus.REMOTE_WIPE_REQUESTED, message="wipe pending")
    if device.policy_key is None or not sent_key:
        raise EasStatusError(GlobalStatus.DEVICE_NOT_PROVISIONED, message="not provisioned")
    if sent_key != device.policy_key:
        raise EasStatusError(
            GlobalStatus.INVALID_POLICY_KEY, message=f"stale policy key {sent_key}"
        )
    if fingerprint is not None and sent_key & 0xFFFF != fingerprint:
        # The key was issued under another policy.ini (see runtime.policy_fingerprint).
        raise EasStatusError(GlobalStatus.POLICY_REFRESH, message="policy changed")
