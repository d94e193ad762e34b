"""The front door unchanged in the obm profile: obm-sync authentication (double over HTTP),
devices in OBM's PostgreSQL tables, driven by pyactivesync over HTTP.

What obm-ui does to those tables (add a partnership, delete a device) is done with plain SQL,
as obm-ui would, and opush must follow it on the next request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import attrs
import pytest
import pytest_twisted
import requests
from pyactivesync import Client
from pyactivesync.exceptions import StatusError
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from opush.backends.obmsync import ObmSyncAuth
from opush.http.site import make_site
from opush.runtime import FrontDoorSettings, Runtime
from opush.storage.obmdb import ObmDeviceRegistry
from tests.integration.obm.conftest import RunningDouble
from tests.support.obmdb import obm_registry, sql
from tests.support.storage import embedded_store

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
T = TypeVar("T")
EAS = "/Microsoft-Server-ActiveSync"


@attrs.define
class ObmServer:
    port: int
    registry: ObmDeviceRegistry
    db: dict[str, Any]
    obm: RunningDouble

    def client(self, device_id: str, password: str = "secret") -> Client:
        c = Client(
            f"127.0.0.1:{self.port}", "alice@example.org", password, device_id=device_id, timeout=10
        )
        c._transport.base_url = f"http://127.0.0.1:{self.port}{EAS}"
        return c

    def devices(self, identifier: str) -> list[tuple[Any, ...]]:
        return sql(
            self.db, "SELECT id, owner, type FROM opush_device WHERE identifier = %s", (identifier,)
        )

    def perms(self, device_pk: int) -> list[tuple[Any, ...]]:
        return sql(
            self.db,
            "SELECT policy IS NOT NULL, pending_accept FROM opush_sync_perms WHERE device_id = %s "
            "ORDER BY pending_accept",
            (device_pk,),
        )


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


def settings_command(c: Client) -> None:
    """A command past the policy gate: Settings Oof answers 7 (no Oof backend yet)."""
    with pytest.raises(StatusError) as err:
        c.get_oof()
    assert err.value.code == "7"


async def _server(
    obm_sync: RunningDouble, obm_db: dict[str, Any], tmp_path: Any, allow_unknown_pda: bool
) -> AsyncIterator[ObmServer]:
    r: Any = reactor
    store = await embedded_store(tmp_path, clock=r)
    registry = await obm_registry(obm_db, r)
    runtime = Runtime(
        clock=r,
        auth=ObmSyncAuth(obm_sync.client()),
        devices=registry,
        state=store,
        settings=FrontDoorSettings(
            external_url="mail.example.org", allow_unknown_pda=allow_unknown_pda
        ),
    )
    port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
    try:
        yield ObmServer(port.getHost().port, registry, obm_db, obm_sync)
    finally:
        await port.stopListening()
        await registry.close()
        await store.close()


@pytest_twisted.async_yield_fixture
async def obm_frontdoor(
    obm_sync: RunningDouble, obm_db: dict[str, Any], tmp_path: Any
) -> AsyncIterator[ObmServer]:
    async for server in _server(obm_sync, obm_db, tmp_path, True):
        yield server


@pytest_twisted.async_yield_fixture
async def strict_frontdoor(
    obm_sync: RunningDouble, obm_db: dict[str, Any], tmp_path: Any
) -> AsyncIterator[ObmServer]:
    async for server in _server(obm_sync, obm_db, tmp_path, False):
        yield server


@pytest_twisted.ensureDeferred
async def test_provision_writes_obm_tables(obm_frontdoor: ObmServer) -> None:
    c = obm_frontdoor.client("OBMPROV1")
    key = await blocking(c.provision)
    ((pk, owner, dtype),) = obm_frontdoor.devices("OBMPROV1")
    alice = sql(obm_frontdoor.db, "SELECT userobm_id FROM userobm WHERE userobm_login='alice'")
    assert owner == alice[0][0] and dtype == "pyactivesync"
    assert obm_frontdoor.perms(pk) == [(True, False)]  # an ACCEPTED key, nothing pending
    device = await obm_frontdoor.registry.get_device("alice@example.org", "OBMPROV1")
    assert device is not None and device.policy_key == int(key)
    await blocking(lambda: settings_command(c))  # past the gate (no 449)
    logins = [x for x in obm_frontdoor.obm.double.calls if x[:2] == ("login", "doLogin")]
    assert logins and all(x[2]["origin"] == ["o-push"] for x in logins)


@pytest_twisted.ensureDeferred
async def test_device_deleted_in_obm_ui_registers_and_provisions_again(
    obm_frontdoor: ObmServer,
) -> None:
    c = obm_frontdoor.client("OBMDEL1")
    await blocking(c.provision)
    ((old_pk, owner, _),) = obm_frontdoor.devices("OBMDEL1")
    # obm-ui "delete device" (unlink_mobile)
    sql(obm_frontdoor.db, "DELETE FROM opush_device WHERE owner = %s AND id = %s", (owner, old_pk))

    with pytest.raises(StatusError) as err:
        await blocking(c.get_oof)
    assert err.value.code == "142"  # DeviceNotProvisioned (449 before 14.0)
    ((new_pk, _, _),) = obm_frontdoor.devices("OBMDEL1")
    assert new_pk != old_pk and obm_frontdoor.perms(new_pk) == []

    c._provisioned = False
    await blocking(c.provision)
    assert obm_frontdoor.perms(new_pk) == [(True, False)]
    await blocking(lambda: settings_command(c))


@pytest_twisted.ensureDeferred
async def test_unknown_device_needs_a_partnership(strict_frontdoor: ObmServer) -> None:
    c = strict_frontdoor.client("OBMSTRICT")
    with pytest.raises((StatusError, requests.HTTPError)):
        await blocking(c.provision)
    ((pk, owner, _),) = strict_frontdoor.devices("OBMSTRICT")  # registered anyway
    # obm-ui "Add partnership"
    sql(
        strict_frontdoor.db,
        "INSERT INTO opush_sync_perms (owner, device_id, policy, pending_accept) "
        "VALUES (%s, %s, NULL, FALSE)",
        (owner, pk),
    )
    c._provisioned = False
    await blocking(c.provision)
    await blocking(lambda: settings_command(c))


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_401(obm_frontdoor: ObmServer) -> None:
    c = obm_frontdoor.client("OBMBADPW", password="nope")
    with pytest.raises(requests.HTTPError) as err:
        await blocking(c.provision)
    assert err.value.response.status_code == 401
    assert obm_frontdoor.devices("OBMBADPW") == []
