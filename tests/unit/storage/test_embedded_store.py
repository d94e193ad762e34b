"""What is specific to the embedded SQLite store (the shared behaviour is in tests/contract)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted

from opush.storage.embedded import DEFAULT_FILENAME, EmbeddedStore
from opush.storage.interfaces import (
    STATE_TTL,
    FolderKind,
    FolderRef,
    MappingKind,
    PingParameters,
    StorageError,
    SyncState,
)
from tests.support.storage import EPOCH, embedded_store, fake_clock

INBOX = FolderRef(FolderKind.MAIL, "INBOX", "Inbox", 2)
TTL = STATE_TTL.total_seconds()


@pytest_twisted.ensureDeferred
async def test_file_lives_under_the_data_dir_in_wal_mode(tmp_path: Path) -> None:
    data_dir = tmp_path / "var" / "lib" / "opush"
    store = await embedded_store(data_dir)
    await store.close()
    path = data_dir / DEFAULT_FILENAME
    assert path.exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


@pytest_twisted.ensureDeferred
async def test_times_come_from_the_clock(tmp_path: Path) -> None:
    clock = fake_clock()
    store = await embedded_store(tmp_path, clock)
    try:
        device = await store.touch_device(
            "alice@example.org", "D", device_type="t", user_agent=None, protocol_version=None
        )
        assert device.first_seen == datetime.fromtimestamp(EPOCH, UTC)
        clock.advance(90)
        wiped = await store.request_wipe("alice@example.org", "D", requested_by="admin")
        assert wiped.wipe_requested_at == datetime.fromtimestamp(EPOCH + 90, UTC)
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock = fake_clock()
    store = await embedded_store(tmp_path, clock)
    await store.touch_device("u", "D", device_type="t", user_agent=None, protocol_version=None)
    cid = await store.allocate_collection("u", "D", INBOX)
    await store.put_sync_state("u", "D", cid, SyncState("k", {"x": 1}))
    await store.close()
    again = EmbeddedStore(tmp_path / DEFAULT_FILENAME, clock=clock)
    try:
        assert await again.get_device("u", "D") is not None
        assert await again.current_sync_state("u", "D", cid) == SyncState("k", {"x": 1})
    finally:
        await again.close()


@pytest_twisted.ensureDeferred
async def test_purge_deletes_only_expired_rows(tmp_path: Path) -> None:
    clock = fake_clock()
    store = await embedded_store(tmp_path, clock)
    try:
        await store.touch_device(
            "u", "OLD", device_type="t", user_agent=None, protocol_version=None
        )
        cid = await store.allocate_collection("u", "OLD", INBOX)
        await store.put_sync_state("u", "OLD", cid, SyncState("k", {}))
        await store.put_mapping("u", "OLD", cid, MappingKind.CLIENT_ID, "c", "1:1")
        await store.put_ping("u", "OLD", PingParameters(60, ()))
        clock.advance(TTL / 2)
        await store.touch_device(
            "u", "NEW", device_type="t", user_agent=None, protocol_version=None
        )
        assert await store.purge_expired() == 0
        clock.advance(TTL / 2 + 1)
        assert await store.purge_expired() == 5
        assert [d.device_id for d in await store.list_devices()] == ["NEW"]
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_periodic_purge_runs_on_the_clock(tmp_path: Path) -> None:
    clock = fake_clock()
    store = await embedded_store(tmp_path, clock)
    try:
        await store.put_ping("u", "D", PingParameters(60, ()))
        loop = store.purge_periodically(3600)
        clock.advance(TTL + 3600)
        await store.get_ping("u", "D")  # the purge queued before this read has run
        conn = sqlite3.connect(tmp_path / DEFAULT_FILENAME)
        assert conn.execute("SELECT COUNT(*) FROM ping").fetchone()[0] == 0
        conn.close()
        loop.stop()
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_closed_store_fails_instead_of_hanging(tmp_path: Path) -> None:
    store = await embedded_store(tmp_path)
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await store.get_device("u", "D")
