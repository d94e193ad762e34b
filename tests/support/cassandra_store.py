"""A Cassandra store on a throw-away keyspace, for the contract suite (OPUSH_TEST_CASSANDRA).

One keyspace per test process (``opush_test_<random>``, SimpleStrategy, replication 1), schema
installed with the real lifecycle, dropped at exit. Rows are written with a short TTL so the
contract's expiry tests can watch them expire.
"""

from __future__ import annotations

import atexit
import uuid

from cassandra.cluster import Cluster

from opush.storage import migration
from opush.storage.cassandra import CassandraSettings, CassandraStore

_keyspaces: dict[tuple[str, int], str] = {}


def _create_keyspace(host: str, port: int) -> str:
    name = f"opush_test_{uuid.uuid4().hex[:12]}"
    cluster = Cluster([host], port=port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    cluster.shutdown()

    def drop() -> None:
        c = Cluster([host], port=port)
        c.connect().execute(f"DROP KEYSPACE IF EXISTS {name}")
        c.shutdown()

    atexit.register(drop)
    return name


async def open_test_cassandra_store(address: tuple[str, int], ttl: int) -> CassandraStore:
    host, port = address
    fresh = address not in _keyspaces
    if fresh:
        _keyspaces[address] = _create_keyspace(host, port)
    settings = CassandraSettings(seeds=(host,), port=port, keyspace=_keyspaces[address], ttl=ttl)
    store = await CassandraStore.connect(settings)
    if fresh:
        result = await migration.install(store, migration.load_schema("cassandra"))
        assert result.success, result.message
    return store
