"""OBM's other Opush 3 tables through the registry: opush_event_mapping, opush_ping_heartbeat,
and what obm-ui's deletions do to them."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import pytest_twisted

from opush.storage.interfaces import DeviceNotFound, Permission, ProvisioningState
from opush.storage.obmdb import obm_device_uid
from tests.support.obmdb import obm_registry, sql
from tests.support.storage import fake_clock

pytestmark = pytest.mark.integration
ALICE = "alice@example.org"


@pytest_twisted.ensureDeferred
async def test_event_mapping_and_heartbeat(obm_db: dict[str, Any]) -> None:
    registry = await obm_registry(obm_db, fake_clock())
    try:
        await registry.touch_device(
            ALICE, "DEV", device_type="iPhone", user_agent=None, protocol_version=None
        )
        uid = obm_device_uid("ext-1")
        assert uid == b"ext-1".hex()
        await registry.put_event_mapping(ALICE, "DEV", uid, "ext-1")
        await registry.put_event_mapping(ALICE, "DEV", "other", "ext-1")  # already mapped
        assert await registry.event_ext_id(ALICE, "DEV", uid) == "ext-1"
        assert await registry.event_uid(ALICE, "DEV", "ext-1") == uid
        assert await registry.event_uid(ALICE, "DEV", "nope") is None
        ((digest,),) = sql(obm_db, "SELECT event_ext_id_hash FROM opush_event_mapping")
        assert bytes(digest) == hashlib.sha1(b"ext-1").digest()

        assert await registry.get_heartbeat(ALICE, "DEV") is None
        await registry.put_heartbeat(ALICE, "DEV", 600)
        await registry.put_heartbeat(ALICE, "DEV", 900)
        assert await registry.get_heartbeat(ALICE, "DEV") == 900

        # obm-ui deletes the device: everything of it goes by cascade.
        sql(obm_db, "DELETE FROM opush_device WHERE identifier = 'DEV'")
        with pytest.raises(DeviceNotFound):
            await registry.get_heartbeat(ALICE, "DEV")
        for table in ("opush_event_mapping", "opush_ping_heartbeat", "opush_device_details"):
            assert sql(obm_db, f"SELECT count(*) FROM {table}") == [(0,)]
    finally:
        await registry.close()


@pytest_twisted.ensureDeferred
async def test_obm_ui_partnership_rows(obm_db: dict[str, Any]) -> None:
    registry = await obm_registry(obm_db, fake_clock())
    try:
        device = await registry.touch_device(
            ALICE, "P1", device_type="Android", user_agent=None, protocol_version=None
        )
        assert device.permission is None
        ((pk, owner),) = sql(obm_db, "SELECT id, owner FROM opush_device WHERE identifier='P1'")
        sql(
            obm_db,
            "INSERT INTO opush_sync_perms (owner, device_id, policy, pending_accept) "
            "VALUES (%s, %s, NULL, FALSE)",
            (owner, pk),
        )
        allowed = await registry.get_device(ALICE, "P1")
        assert allowed is not None and allowed.permission is Permission.ALLOWED
        assert allowed.provisioning is ProvisioningState.NONE

        await registry.set_policy_keys(ALICE, "P1", policy_key=None, pending_policy_key=77)
        await registry.set_policy_keys(
            ALICE, "P1", policy_key=4_000_000_000, pending_policy_key=None
        )
        rows = sql(
            obm_db,
            "SELECT policy IS NULL, pending_accept FROM opush_sync_perms WHERE device_id = %s "
            "ORDER BY 1",
            (pk,),
        )
        assert rows == [(False, False), (True, False)]  # the key, and the partnership kept
        provisioned = await registry.get_device(ALICE, "P1")
        assert provisioned is not None and provisioned.policy_key == 4_000_000_000

        # obm-ui "Remove partnership": the device loses its rows, keys included.
        sql(obm_db, "DELETE FROM opush_sync_perms WHERE owner = %s AND device_id = %s", (owner, pk))
        gone = await registry.get_device(ALICE, "P1")
        assert gone is not None and gone.permission is None and gone.policy_key is None
        assert sql(obm_db, "SELECT count(*) FROM opush_sec_policy") == [(1,)]  # as in OBM
    finally:
        await registry.close()
