"""obm profile integration fixtures: the obm-sync/obm-locator double over real HTTP on
127.0.0.1, and a fresh PostgreSQL database holding OBM's tables (tests/support/obm_ddl.sql)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor

from opush.backends.obmsync import AgentTransport, ObmSyncClient
from tests.doubles.obmsync import ObmSyncDouble
from tests.support.obmdb import ensure_user, load_obm_ddl


@attrs.define
class RunningDouble:
    double: ObmSyncDouble
    port: int
    transport: AgentTransport

    @property
    def services_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/obm-sync/services"

    @property
    def locator_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/obm-locator/location/host"

    def client(self, **kwargs: Any) -> ObmSyncClient:
        return ObmSyncClient(self.transport, reactor, self.services_url, **kwargs)


@pytest_twisted.async_yield_fixture
async def obm_sync() -> AsyncIterator[RunningDouble]:
    """The double on a free port, with alice and bob (password ``secret``) of example.org."""
    r: Any = reactor
    double = ObmSyncDouble(r)
    double.add_user("alice@example.org", display_name="Alice Liddell", first="Alice")
    double.add_user("bob@example.org", display_name="Bob Morane", first="Bob")
    port = double.listen(r)
    transport = AgentTransport(r, connect_timeout=2)
    try:
        yield RunningDouble(double, port.getHost().port, transport)
    finally:
        await transport.close()
        await port.stopListening()


@pytest.fixture
def obm_db(fresh_pg_database: dict[str, Any]) -> dict[str, Any]:
    """psycopg2 parameters of a database with OBM's tables and alice, bob of example.org."""
    load_obm_ddl(fresh_pg_database)
    for user in ("alice@example.org", "bob@example.org"):
        ensure_user(fresh_pg_database, user, email=user)
    return fresh_pg_database
