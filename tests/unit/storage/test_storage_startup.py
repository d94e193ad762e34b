"""The schema check at start: serve devices or only the console, with the guide's log lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest_twisted
from twisted.logger import formatEvent, globalLogPublisher

from opush.config.sections import Storage
from opush.storage import migration
from opush.storage.cassandra import CassandraSettings, LazyCassandraStore
from opush.storage.interfaces import SchemaVersion
from opush.storage.startup import REFUSE_DEVICES, check_schema_at_startup
from tests.support.storage import FakeSchemaStore, embedded_store


def runtime(state: Any) -> Any:
    return SimpleNamespace(state=state, services={})


def config(storage: Storage) -> Any:
    return SimpleNamespace(opush=SimpleNamespace(storage=storage))


async def check(rt: Any, storage: Storage) -> tuple[migration.StatusSummary, list[str]]:
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        summary = await check_schema_at_startup(rt, config(storage))
    finally:
        globalLogPublisher.removeObserver(events.append)
    return summary, [formatEvent(e) for e in events if e.get("log_namespace") == "CONTAINER"]


@pytest_twisted.ensureDeferred
async def test_fresh_embedded_store_is_installed_and_serves(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path, install=False)
    rt = runtime(store)
    try:
        summary, lines = await check(rt, Storage.EMBEDDED)
        assert summary.status is migration.SchemaStatus.UP_TO_DATE
        assert REFUSE_DEVICES not in rt.services
        assert lines == ["Embedded schema version 1 installed"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_old_cassandra_schema_refuses_devices() -> None:
    rt = runtime(
        FakeSchemaStore([SchemaVersion(6, datetime(2014, 3, 26, tzinfo=UTC))])
    )  # a Java Opush keyspace
    summary, lines = await check(rt, Storage.CASSANDRA)
    assert summary.status is migration.SchemaStatus.UPGRADE_REQUIRED
    assert lines == ["Cassandra schema too old, starting administration services only"]
    assert rt.services[REFUSE_DEVICES] == lines[0]


@pytest_twisted.ensureDeferred
async def test_missing_cassandra_schema_is_not_installed_automatically() -> None:
    store = FakeSchemaStore()
    rt = runtime(store)
    _, lines = await check(rt, Storage.CASSANDRA)
    assert lines == ["Cassandra schema not installed, starting administration services only"]
    assert store.applied == []
    assert REFUSE_DEVICES in rt.services


@pytest_twisted.ensureDeferred
async def test_unreachable_cassandra_refuses_devices() -> None:
    store = LazyCassandraStore(CassandraSettings(seeds=("127.0.0.1",), port=1, keyspace="o"))
    rt = runtime(store)
    summary, lines = await check(rt, Storage.CASSANDRA)
    assert summary.status is migration.SchemaStatus.EXECUTION_ERROR
    assert len(lines) == 1
    assert lines[0].startswith("Cannot connect to Cassandra ['127.0.0.1']")
    assert lines[0].endswith(", starting administration services only")
    await store.close()
