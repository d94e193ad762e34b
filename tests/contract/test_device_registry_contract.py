"""Contract of DeviceRegistry: every backend behaves exactly like this."""

from __future__ import annotations

import pytest
import pytest_twisted

from opush.storage.interfaces import (
    DeviceInformation,
    DeviceNotFound,
    FolderKind,
    FolderRef,
    Permission,
    ProvisioningState,
    WipeState,
    remove_device_everywhere,
)
from tests.contract.conftest import BACKENDS
from tests.support.storage import Backend


# The obm profile's registry (OBM's PostgreSQL tables) joins the backends for this interface.
@pytest.fixture(params=[*BACKENDS, "obmdb"])
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _skip_unless_expiring(backend: Backend) -> None:
    if not getattr(backend.registry, "expires", True):
        pytest.skip(f"{backend.name}: devices do not expire (OBM's tables)")


async def _register(b: Backend, user: str, device_id: str = "ANDROID1") -> None:
    await b.registry.touch_device(
        user, device_id, device_type="Android", user_agent="Android/4.4", protocol_version="14.1"
    )


@pytest_twisted.ensureDeferred
async def test_unknown_device_is_none(backend: Backend) -> None:
    assert await backend.registry.get_device(backend.user("alice"), "NOPE") is None


@pytest_twisted.ensureDeferred
async def test_touch_registers_then_updates(backend: Backend) -> None:
    alice = backend.user("alice")
    first = await backend.registry.touch_device(
        alice, "DEV1", device_type="iPhone", user_agent="Apple-iPhone/1", protocol_version="12.1"
    )
    assert (first.user, first.device_id, first.device_type) == (alice, "DEV1", "iPhone")
    assert first.user_agent == "Apple-iPhone/1"
    assert first.protocol_version == "12.1"
    assert first.first_seen == first.last_seen
    assert first.provisioning is ProvisioningState.NONE
    assert first.wipe is WipeState.NONE
    assert first.permission is None
    assert await backend.registry.get_device(alice, "DEV1") == first

    await backend.advance(2)
    second = await backend.registry.touch_device(
        alice, "DEV1", device_type="iPhone", user_agent="Apple-iPhone/2", protocol_version="14.1"
    )
    assert second.first_seen == first.first_seen
    assert second.last_seen > first.last_seen
    assert (second.user_agent, second.protocol_version) == ("Apple-iPhone/2", "14.1")
    assert await backend.registry.get_device(alice, "DEV1") == second


@pytest_twisted.ensureDeferred
async def test_touch_without_agent_or_version_keeps_known_ones(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    device = await backend.registry.touch_device(
        alice, "ANDROID1", device_type="Android", user_agent=None, protocol_version=None
    )
    assert (device.user_agent, device.protocol_version) == ("Android/4.4", "14.1")


@pytest_twisted.ensureDeferred
async def test_device_information(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    info = DeviceInformation(
        model="Nexus 5",
        imei="354436060000000",
        friendly_name="Téléphone d'Alice",
        os="Android 4.4",
        os_language="fr-FR",
        phone_number="+33 6 00 00 00 00",
        mobile_operator="Orange",
        user_agent="Android/4.4",
    )
    updated = await backend.registry.update_device_information(alice, "ANDROID1", info)
    assert updated.information == info
    stored = await backend.registry.get_device(alice, "ANDROID1")
    assert stored is not None and stored.information == info


@pytest_twisted.ensureDeferred
async def test_changing_an_unknown_device_raises(backend: Backend) -> None:
    alice = backend.user("alice")
    r = backend.registry
    calls = [
        lambda: r.update_device_information(alice, "X", DeviceInformation()),
        lambda: r.set_policy_keys(alice, "X", policy_key=1, pending_policy_key=None),
        lambda: r.request_wipe(alice, "X", requested_by="admin"),
        lambda: r.cancel_wipe(alice, "X"),
        lambda: r.acknowledge_wipe(alice, "X"),
        lambda: r.set_permission(alice, "X", Permission.BLOCKED),
    ]
    for call in calls:
        with pytest.raises(DeviceNotFound):
            await call()
    assert await r.get_device(alice, "X") is None


@pytest_twisted.ensureDeferred
async def test_list_devices_by_user_and_all(backend: Backend) -> None:
    alice, bob = backend.user("alice"), backend.user("bob")
    for user, device in [(bob, "B1"), (alice, "A2"), (alice, "A1")]:
        await _register(backend, user, device)
    mine = await backend.registry.list_devices(alice)
    assert [(d.user, d.device_id) for d in mine] == [(alice, "A1"), (alice, "A2")]
    everyone = [
        (d.user, d.device_id)
        for d in await backend.registry.list_devices()
        if d.user in (alice, bob)
    ]
    assert everyone == [(alice, "A1"), (alice, "A2"), (bob, "B1")]
    assert await backend.registry.list_devices(backend.user("carol")) == []


@pytest_twisted.ensureDeferred
async def test_two_step_provisioning(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    r = backend.registry
    pending = await r.set_policy_keys(alice, "ANDROID1", policy_key=None, pending_policy_key=123)
    assert pending.provisioning is ProvisioningState.PENDING
    done = await r.set_policy_keys(alice, "ANDROID1", policy_key=456, pending_policy_key=None)
    assert done.provisioning is ProvisioningState.PROVISIONED
    stored = await r.get_device(alice, "ANDROID1")
    assert stored is not None and (stored.policy_key, stored.pending_policy_key) == (456, None)
    reset = await r.set_policy_keys(alice, "ANDROID1", policy_key=None, pending_policy_key=None)
    assert reset.provisioning is ProvisioningState.NONE


@pytest_twisted.ensureDeferred
async def test_wipe_lifecycle(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    r = backend.registry
    asked = await r.request_wipe(alice, "ANDROID1", requested_by="admin@global.virt")
    assert asked.wipe is WipeState.WIPE_PENDING
    assert asked.wipe_requested_by == "admin@global.virt"
    assert asked.wipe_requested_at is not None and asked.wipe_acknowledged_at is None
    assert await r.get_device(alice, "ANDROID1") == asked

    done = await r.acknowledge_wipe(alice, "ANDROID1")
    assert done.wipe is WipeState.WIPED
    assert done.wipe_acknowledged_at is not None
    assert done.wipe_requested_by == "admin@global.virt"

    cancelled = await r.cancel_wipe(alice, "ANDROID1")
    assert cancelled.wipe is WipeState.NONE
    assert (cancelled.wipe_requested_by, cancelled.wipe_requested_at) == (None, None)
    assert cancelled.wipe_acknowledged_at is None


@pytest_twisted.ensureDeferred
async def test_account_only_wipe(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    r = backend.registry
    asked = await r.request_wipe(alice, "ANDROID1", requested_by="admin", account_only=True)
    assert asked.wipe is WipeState.ACCOUNT_ONLY_WIPE_PENDING
    done = await r.acknowledge_wipe(alice, "ANDROID1")
    assert done.wipe is WipeState.ACCOUNT_ONLY_WIPED


@pytest_twisted.ensureDeferred
async def test_acknowledging_without_pending_wipe_changes_nothing(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    before = await backend.registry.get_device(alice, "ANDROID1")
    after = await backend.registry.acknowledge_wipe(alice, "ANDROID1")
    assert after == before


@pytest_twisted.ensureDeferred
async def test_permission(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    r = backend.registry
    assert (await r.set_permission(alice, "ANDROID1", Permission.BLOCKED)).permission is (
        Permission.BLOCKED
    )
    stored = await r.get_device(alice, "ANDROID1")
    assert stored is not None and stored.permission is Permission.BLOCKED
    assert (await r.set_permission(alice, "ANDROID1", None)).permission is None


@pytest_twisted.ensureDeferred
async def test_devices_are_isolated_per_user(backend: Backend) -> None:
    alice, bob = backend.user("alice"), backend.user("bob")
    await _register(backend, alice, "SAME")
    await _register(backend, bob, "SAME")
    await backend.registry.set_permission(alice, "SAME", Permission.BLOCKED)
    other = await backend.registry.get_device(bob, "SAME")
    assert other is not None and other.permission is None
    assert await backend.registry.remove_device(alice, "SAME") is True
    assert await backend.registry.get_device(bob, "SAME") is not None


@pytest_twisted.ensureDeferred
async def test_remove_device(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    assert await backend.registry.remove_device(alice, "ANDROID1") is True
    assert await backend.registry.get_device(alice, "ANDROID1") is None
    assert await backend.registry.remove_device(alice, "ANDROID1") is False
    assert await backend.registry.list_devices(alice) == []


@pytest_twisted.ensureDeferred
async def test_remove_device_everywhere_drops_its_sync_state(backend: Backend) -> None:
    alice = backend.user("alice")
    await _register(backend, alice)
    ref = FolderRef(FolderKind.MAIL, "INBOX", "Inbox", 2)
    await backend.store.allocate_collection(alice, "ANDROID1", ref)
    assert await remove_device_everywhere(backend.registry, backend.store, alice, "ANDROID1")
    assert await backend.registry.get_device(alice, "ANDROID1") is None
    assert await backend.store.list_collections(alice, "ANDROID1") == []


@pytest_twisted.ensureDeferred
async def test_device_expires_unless_touched(backend: Backend) -> None:
    _skip_unless_expiring(backend)
    alice = backend.user("alice")
    await _register(backend, alice, "KEPT")
    await _register(backend, alice, "LOST")
    await backend.advance(backend.ttl * 0.6)
    await _register(backend, alice, "KEPT")
    await backend.advance(backend.ttl * 0.6)
    assert await backend.registry.get_device(alice, "LOST") is None
    assert await backend.registry.get_device(alice, "KEPT") is not None
    assert [d.device_id for d in await backend.registry.list_devices(alice)] == ["KEPT"]
    with pytest.raises(DeviceNotFound):
        await backend.registry.cancel_wipe(alice, "LOST")


@pytest_twisted.ensureDeferred
async def test_pending_wipe_and_block_do_not_expire(backend: Backend) -> None:
    _skip_unless_expiring(backend)
    alice = backend.user("alice")
    for device in ("WIPE", "BLOCK", "PLAIN"):
        await _register(backend, alice, device)
    await backend.registry.request_wipe(alice, "WIPE", requested_by="admin")
    await backend.registry.set_permission(alice, "BLOCK", Permission.BLOCKED)
    await backend.advance(backend.ttl * 1.5)
    assert [d.device_id for d in await backend.registry.list_devices(alice)] == ["BLOCK", "WIPE"]
    # once the wipe is acknowledged the record expires normally again
    await backend.registry.acknowledge_wipe(alice, "WIPE")
    await backend.advance(backend.ttl * 1.2)
    assert await backend.registry.get_device(alice, "WIPE") is None
