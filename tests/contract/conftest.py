"""The backends every storage contract test runs against.

``backend`` is parametrized: "embedded" always (SQLite on a fake clock, real worker thread);
"cassandra-double" always (opush.storage.cassandra over tests/doubles/cql_session.py: checks
the store's own logic, not Cassandra); "cassandra" when OPUSH_TEST_CASSANDRA=host:port names a
reachable cluster (a fresh keyspace per session, rows written with a 4-second TTL so expiry
can be observed), otherwise left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from opush.storage.interfaces import STATE_TTL
from tests.doubles.cql_session import cassandra_store_on_double
from tests.support.storage import (
    Backend,
    cassandra_address,
    embedded_store,
    fake_clock,
)


async def _embedded(tmp_path: Path) -> AsyncIterator[Backend]:
    clock = fake_clock()
    store = await embedded_store(tmp_path, clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    yield Backend(
        "embedded",
        store,
        store,
        STATE_TTL.total_seconds(),
        advance,
        lambda: datetime.fromtimestamp(clock.seconds(), UTC),
    )
    await store.close()


async def _cassandra_double() -> AsyncIterator[Backend]:
    clock = fake_clock()
    store = await cassandra_store_on_double(clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    yield Backend(
        "cassandra-double",
        store,
        store,
        STATE_TTL.total_seconds(),
        advance,
        lambda: datetime.fromtimestamp(clock.seconds(), UTC),
    )
    await store.close()


CASSANDRA_TEST_TTL = 4


async def _cassandra() -> AsyncIterator[Backend]:
    address = cassandra_address()
    assert address is not None
    from tests.support.cassandra_store import open_test_cassandra_store

    store: Any = await open_test_cassandra_store(address, ttl=CASSANDRA_TEST_TTL)

    async def advance(seconds: float) -> None:
        await deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]

    yield Backend("cassandra", store, store, CASSANDRA_TEST_TTL, advance, lambda: datetime.now(UTC))
    await store.close()


# Without a cluster the "cassandra" backend is left out (one skipped test says so, in
# test_cassandra_cluster.py) rather than skipping every contract test once more.
BACKENDS = ["embedded", "cassandra-double"] + (["cassandra"] if cassandra_address() else [])


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_twisted.async_yield_fixture
async def backend(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Backend]:
    from tests.support.obmdb import obm_backend

    factories = {
        "embedded": lambda: _embedded(tmp_path),
        "cassandra-double": _cassandra_double,
        "cassandra": _cassandra,
        # DeviceRegistry only (test_device_registry_contract.py): OBM's tables in PostgreSQL.
        "obmdb": lambda: obm_backend(request.getfixturevalue("fresh_pg_database"), tmp_path),
    }
    factory = factories[backend_name]()
    async for b in factory:
        yield b
