"""CassandraStore choices that the contract cannot see, checked over the CQL double."""

from __future__ import annotations

import pytest_twisted

from opush.storage.cassandra import STATEMENTS
from opush.storage.interfaces import Permission
from tests.doubles.cql_session import cassandra_store_on_double
from tests.support.storage import fake_clock

HOUR = 3600


@pytest_twisted.ensureDeferred
async def test_device_index_is_refreshed_daily_not_per_request() -> None:
    clock = fake_clock()
    store = await cassandra_store_on_double(clock)
    session = store._session
    for _ in range(40 * 24):  # a device seen every hour for 40 days
        await store.touch_device("u", "D", device_type="t", user_agent=None, protocol_version=None)
        clock.advance(HOUR)
    assert [d.device_id for d in await store.list_devices()] == ["D"]
    index_writes = session.executed.count(STATEMENTS["index_put"])
    assert 40 <= index_writes <= 42


@pytest_twisted.ensureDeferred
async def test_blocked_device_is_written_without_ttl() -> None:
    clock = fake_clock()
    store = await cassandra_store_on_double(clock)
    await store.touch_device("u", "D", device_type="t", user_agent=None, protocol_version=None)
    await store.set_permission("u", "D", Permission.BLOCKED)
    table = store._session.tables["opush_device"]
    ((_, expires),) = table.rows.values()
    assert expires is None
    index = store._session.tables["opush_device_index"]
    assert [exp for _, exp in index.rows.values()] == [None]
