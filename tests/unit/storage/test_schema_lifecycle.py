"""Schema status/install/update: the Java server's logic and the console's exact texts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted
from twisted.logger import LogLevel

from opush.storage import migration
from opush.storage.interfaces import SchemaVersion, StorageError
from opush.storage.migration import (
    SchemaFile,
    SchemaSet,
    SchemaStatus,
    StatusSummary,
    get_status,
    install_command,
    startup_message,
    status_text,
    update_command,
)
from tests.support.storage import FakeSchemaStore, embedded_store

WHEN = datetime(2014, 3, 26, 16, 25, 53, tzinfo=UTC)
LATER = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)


def schema(latest: int = 3, minimal: int = 2) -> SchemaSet:
    files = [SchemaFile(v, f"{v:03}_{n}.cql", "CREATE ...") for v in (1, 2, 3) for n in "ab"]
    return SchemaSet("cassandra", tuple(f for f in files if f.version <= latest), latest, minimal)


async def status_of(store: FakeSchemaStore, s: SchemaSet | None = None) -> StatusSummary:
    return await get_status(store, s or schema())


@pytest_twisted.ensureDeferred
async def test_status_follows_the_java_server() -> None:
    cases = [
        (None, SchemaStatus.NOT_INITIALIZED),
        ([], SchemaStatus.UPGRADE_REQUIRED),
        ([SchemaVersion(1, WHEN)], SchemaStatus.UPGRADE_REQUIRED),
        ([SchemaVersion(1, WHEN), SchemaVersion(2, WHEN)], SchemaStatus.UPGRADE_AVAILABLE),
        ([SchemaVersion(3, WHEN)], SchemaStatus.UP_TO_DATE),
        ([SchemaVersion(9, WHEN)], SchemaStatus.UP_TO_DATE),
    ]
    for versions, expected in cases:
        summary = await status_of(FakeSchemaStore(versions))
        assert summary.status is expected, versions
    broken = await status_of(FakeSchemaStore(broken=True))
    assert broken.status is SchemaStatus.EXECUTION_ERROR
    assert broken.message == "All host(s) tried for query failed"


def test_status_texts_are_the_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "GMT")
    import time

    time.tzset()
    current = SchemaVersion(1, WHEN)
    assert status_text(StatusSummary(SchemaStatus.NOT_INITIALIZED, 1)) == (
        "WARN: Install required\n"
        'No schema found, you can create it using the "install" command\n'
        "The latest schema version available is 1"
    )
    assert status_text(StatusSummary(SchemaStatus.UP_TO_DATE, 1, current)) == (
        "OK\nYour schema is already at the latest version: 1 updated the "
        "Wed Mar 26 16:25:53 GMT 2014"
    )
    assert status_text(StatusSummary(SchemaStatus.UPGRADE_AVAILABLE, 2, current)) == (
        "WARN: Update advised\n"
        "This opush server IS compatible with the current schema but an update is available\n"
        "Current: 1 updated the Wed Mar 26 16:25:53 GMT 2014\n"
        "Latest : 2"
    )
    assert status_text(StatusSummary(SchemaStatus.UPGRADE_REQUIRED, 2, None)) == (
        "WARN: Update required\n"
        "This opush server IS NOT compatible with the current schema, please update it\n"
        "Current: None\n"
        "Latest : 2"
    )
    assert status_text(StatusSummary(SchemaStatus.EXECUTION_ERROR, 2, message="down")) == (
        "ERROR: down"
    )
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest_twisted.ensureDeferred
async def test_install_applies_every_version_in_order() -> None:
    store = FakeSchemaStore()
    text = await install_command(store, schema(), lambda: LATER)
    assert text == "Schema version 3 has been installed, please restart opush to get the service up"
    assert store.applied == [f"{v:03}_{n}.cql" for v in (1, 2, 3) for n in "ab"]
    assert (await status_of(store)).status is SchemaStatus.UP_TO_DATE
    assert await install_command(store, schema()) == (
        'The schema is already installed, use the "status" command to know if an update '
        "is available"
    )


@pytest_twisted.ensureDeferred
async def test_interrupted_install_is_completed_by_update() -> None:
    store = FakeSchemaStore(fail_on="002_b.cql")
    text = await install_command(store, schema(), lambda: LATER)
    assert text == "An error occurred when installing the schema: boom in 002_b.cql"
    summary = await status_of(store)
    assert summary.status is SchemaStatus.UPGRADE_REQUIRED
    assert summary.current == SchemaVersion(1, LATER)
    text = await update_command(store, schema(), lambda: LATER)
    assert text == (
        "Your schema has been updated from version 1 to 3, please restart opush to get the "
        "service up"
    )
    assert store.applied[-4:] == ["002_a.cql", "002_b.cql", "003_a.cql", "003_b.cql"]
    assert (await status_of(store)).status is SchemaStatus.UP_TO_DATE


@pytest_twisted.ensureDeferred
async def test_install_interrupted_before_any_version_is_recorded() -> None:
    store = FakeSchemaStore(versions=[])
    assert (await status_of(store)).status is SchemaStatus.UPGRADE_REQUIRED
    text = await update_command(store, schema())
    assert text == (
        "Your schema has been updated from version None to 3, please restart opush to get "
        "the service up"
    )


@pytest_twisted.ensureDeferred
async def test_update_texts() -> None:
    assert await update_command(FakeSchemaStore(), schema()) == (
        'Your schema is not initialized, use the "status" command to know if you have '
        "something to do"
    )
    up_to_date = FakeSchemaStore([SchemaVersion(3, WHEN)])
    assert await update_command(up_to_date, schema()) == (
        "Nothing to do, your schema is already at the latest version"
    )
    advised = FakeSchemaStore([SchemaVersion(2, WHEN)])
    assert await update_command(advised, schema()) == (
        "Your schema has been updated from version 2 to 3"
    )
    assert advised.applied == ["003_a.cql", "003_b.cql"]
    failing = FakeSchemaStore([SchemaVersion(2, WHEN)], fail_on="003_a.cql")
    assert await update_command(failing, schema()) == (
        "An error occurred when updating the schema: boom in 003_a.cql"
    )
    assert await update_command(FakeSchemaStore(broken=True), schema()) == (
        "ERROR: All host(s) tried for query failed"
    )
    assert await install_command(FakeSchemaStore(broken=True), schema()) == (
        "ERROR: All host(s) tried for query failed"
    )


@pytest_twisted.ensureDeferred
async def test_update_refuses_a_newer_schema() -> None:
    result = await migration.update(FakeSchemaStore([SchemaVersion(5, WHEN)]), schema())
    assert result == migration.MigrationResult(False, "Version 5 conflicts with latest version 3")


def test_startup_messages() -> None:
    def at(status: SchemaStatus, message: str | None = None) -> tuple[LogLevel, str] | None:
        return startup_message(StatusSummary(status, 3, message=message))

    assert at(SchemaStatus.UP_TO_DATE) is None
    assert at(SchemaStatus.UPGRADE_AVAILABLE) == (
        LogLevel.warn,
        "Cassandra schema not up-to-date, update is recommended",
    )
    assert at(SchemaStatus.NOT_INITIALIZED) == (
        LogLevel.error,
        "Cassandra schema not installed, starting administration services only",
    )
    assert at(SchemaStatus.UPGRADE_REQUIRED) == (
        LogLevel.error,
        "Cassandra schema too old, starting administration services only",
    )
    assert at(SchemaStatus.EXECUTION_ERROR, "No host available") == (
        LogLevel.error,
        "No host available, starting administration services only",
    )
    assert StatusSummary(SchemaStatus.UPGRADE_AVAILABLE, 3).serves_devices
    assert not StatusSummary(SchemaStatus.UPGRADE_REQUIRED, 3).serves_devices


def test_shipped_schema_files() -> None:
    embedded = migration.load_schema("embedded")
    assert embedded.latest == embedded.minimal == 1
    assert [f.name for f in embedded.files] == ["001_initial.sql"]


@pytest_twisted.ensureDeferred
async def test_embedded_install_status_and_rerun(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path, install=False)
    s = migration.load_schema("embedded")
    try:
        assert (await get_status(store, s)).status is SchemaStatus.NOT_INITIALIZED
        assert "has been installed" in await install_command(store, s)
        summary = await get_status(store, s)
        assert summary.status is SchemaStatus.UP_TO_DATE
        assert summary.current is not None and summary.current.version == 1
        # every file is idempotent: applying it again changes nothing
        for f in s.files:
            await store.apply_script(f.version, f.name, f.text)
        assert (await get_status(store, s)).status is SchemaStatus.UP_TO_DATE
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_embedded_store_without_schema_fails_clearly(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path, install=False)
    try:
        with pytest.raises(StorageError, match="no such table"):
            await store.get_device("alice@example.org", "DEV")
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_broken_schema_file_is_rolled_back(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path, install=False)
    try:
        script = "CREATE TABLE t1 (a INTEGER);\nCREATE TABLE oops oops;"
        with pytest.raises(StorageError, match=r"schema file 002_x\.sql"):
            await store.apply_script(2, "002_x.sql", script)
        assert await store.installed_versions() is None
        # t1 was rolled back with the failing statement, so the file can be rerun once fixed
        await store.apply_script(2, "002_x.sql", "CREATE TABLE t1 (a INTEGER);")
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_progress_is_logged_on_the_migration_logger() -> None:
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict[str, object]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        await migration.install(FakeSchemaStore(), schema(latest=2), lambda: LATER)
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [formatEvent(e) for e in events if e.get("log_namespace") == "MIGRATION"]
    assert lines == [
        "Applying cassandra schema file 001_a.cql (version 1)",
        "Applying cassandra schema file 001_b.cql (version 1)",
        "cassandra schema is now at version 1",
        "Applying cassandra schema file 002_a.cql (version 2)",
        "Applying cassandra schema file 002_b.cql (version 2)",
        "cassandra schema is now at version 2",
    ]
