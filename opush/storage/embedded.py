"""The embedded state store: one SQLite file under ``data-dir`` (the default storage).

Implements :class:`~opush.storage.interfaces.DeviceRegistry`,
:class:`~opush.storage.interfaces.StateStore` and
:class:`~opush.storage.interfaces.SchemaStore`. SQLite calls block, so they all run on ONE
dedicated worker thread (one connection, WAL journal): the reactor only waits on Deferreds, and
operations are serialized, which gives each of them a plain transaction. Times come from the
reactor clock *in the reactor thread*, so tests drive expiry with a
``twisted.internet.testing.Clock``.

Expiry emulates Cassandra's TTL: each row carries ``expires`` (epoch seconds, NULL = never),
reads ignore expired rows, :meth:`EmbeddedStore.purge_expired` deletes them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import attrs
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from opush.log import logger
from opush.storage import codec
from opush.storage.interfaces import (
    STATE_TTL,
    Collection,
    Device,
    DeviceInformation,
    DeviceNotFound,
    FolderKind,
    FolderRef,
    MappingKind,
    Permission,
    PingParameters,
    SchemaVersion,
    StorageError,
    SyncState,
    WipeState,
    never_expires,
    valid_collection_id,
    wipe_acknowledged,
)

#: File name of the store inside ``data-dir``.
DEFAULT_FILENAME: Final = "opush.sqlite"

log = logger("opush.storage.embedded")

_TTL: Final = STATE_TTL.total_seconds()
_T = TypeVar("_T")
_Conn = sqlite3.Connection
_LIVE: Final = "(expires IS NULL OR expires > ?)"


def device_expires(device: Device, now: float) -> float | None:
    """When a device record expires: never while a wipe is pending or the device is blocked."""
    return None if never_expires(device) else now + _TTL


class EmbeddedStore:
    """SQLite-backed DeviceRegistry + StateStore + SchemaStore. Call :meth:`close` when done."""

    def __init__(
        self,
        path: Path,
        *,
        clock: IReactorTime | None = None,
        reactor: IReactorThreads | None = None,
    ) -> None:
        self.path = path
        self._reactor: Any = cast(Any, reactor if reactor is not None else _global_reactor)
        self._clock: Any = clock if clock is not None else self._reactor
        # Started on first use: building a store (twistd's makeService) starts no thread.
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="opush-sqlite")
        self._closed = False
        # A store nobody closed must not keep the process alive after the reactor stops.
        self._shutdown_trigger = self._reactor.addSystemEventTrigger(
            "during", "shutdown", self._stop_pool
        )
        self._conn: sqlite3.Connection | None = None
        self._purge: LoopingCall | None = None

    # ------------------------------------------------------------------ plumbing

    def _now(self) -> float:
        return float(self._clock.seconds())

    def _datetime(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, UTC)

    def _connection(self) -> sqlite3.Connection:
        # Only ever called on the single worker thread.
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _run(self, work: Callable[[_Conn], _T]) -> Deferred[_T]:
        """Run ``work(conn)`` in one transaction on the worker thread."""

        def in_thread() -> _T:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as e:
                raise StorageError(f"embedded store {self.path}: {e}") from e

        return self._defer(in_thread)

    def _defer(self, work: Callable[[], _T]) -> Deferred[_T]:
        if self._closed:
            return fail(StorageError(f"embedded store {self.path} is closed"))
        if not self._pool.started:
            self._pool.start()
        return deferToThreadPool(self._reactor, self._pool, work)

    def _stop_pool(self) -> None:
        self._closed = True
        if self._pool.started:
            self._pool.stop()

    def close(self) -> Deferred[None]:
        """Finish queued work, close the file, stop the worker thread. Idempotent."""
        if self._closed:
            return succeed(None)
        if not self._pool.started:
            self._closed = True
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            return succeed(None)
        if self._purge is not None and self._purge.running:
            self._purge.stop()

        def closing() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        d = self._defer(closing)
        self._closed = True

        def stop(result: object) -> object:
            self._pool.stop()
            self._reactor.removeSystemEventTrigger(self._shutdown_trigger)
            return result

        d.addBoth(stop)
        return d

    def purge_expired(self) -> Deferred[int]:
        """Delete expired rows of every table; returns how many."""
        now = self._now()

        def work(conn: _Conn) -> int:
            count = 0
            for table in ("device", "collection", "sync_state", "id_mapping", "ping"):
                cur = conn.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))
                count += cur.rowcount
            return count

        return self._run(work)

    def purge_periodically(self, interval: float = 3600.0) -> LoopingCall:
        """Start purging every ``interval`` seconds (caller stops the returned LoopingCall)."""
        loop = LoopingCall(self.purge_expired)
        loop.clock = self._clock
        loop.start(interval, now=False).addErrback(
            lambda f: log.failure("Purge of expired state stopped", f)
        )
        self._purge = loop
        return loop

    # ------------------------------------------------------------------ devices

    @staticmethod
    def _read_device(conn: _Conn, user: str, device_id: str, now: float) -> Device | None:
        row = conn.execute(
            f"SELECT record FROM device WHERE user = ? AND device_id = ? AND {_LIVE}",
            (user, device_id, now),
        ).fetchone()
        return None if row is None else codec.device_from_json(row[0])

    @staticmethod
    def _write_device(conn: _Conn, device: Device, now: float) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO device (user, device_id, record, expires) VALUES (?, ?, ?, ?)",
            (
                device.user,
                device.device_id,
                codec.device_to_json(device),
                device_expires(device, now),
            ),
        )

    def get_device(self, user: str, device_id: str) -> Deferred[Device | None]:
        now = self._now()
        return self._run(lambda conn: self._read_device(conn, user, device_id, now))

    def touch_device(
        self,
        user: str,
        device_id: str,
        *,
        device_type: str,
        user_agent: str | None,
        protocol_version: str | None,
    ) -> Deferred[Device]:
        now = self._now()
        seen = self._datetime(now)

        def work(conn: _Conn) -> Device:
            old = self._read_device(conn, user, device_id, now)
            if old is None:
                device = Device(
                    user=user,
                    device_id=device_id,
                    device_type=device_type,
                    user_agent=user_agent,
                    first_seen=seen,
                    last_seen=seen,
                    protocol_version=protocol_version,
                )
            else:
                device = attrs.evolve(
                    old,
                    device_type=device_type,
                    user_agent=user_agent if user_agent is not None else old.user_agent,
                    protocol_version=(
                        protocol_version if protocol_version is not None else old.protocol_version
                    ),
                    last_seen=seen,
                )
            self._write_device(conn, device, now)
            return device

        return self._run(work)

    def _modify(
        self, user: str, device_id: str, change: Callable[[Device, datetime], Device]
    ) -> Deferred[Device]:
        now = self._now()

        def work(conn: _Conn) -> Device:
            old = self._read_device(conn, user, device_id, now)
            if old is None:
                raise DeviceNotFound(user, device_id)
            device = change(old, self._datetime(now))
            self._write_device(conn, device, now)
            return device

        return self._run(work)

    def update_device_information(
        self, user: str, device_id: str, information: DeviceInformation
    ) -> Deferred[Device]:
        return self._modify(user, device_id, lambda d, _: attrs.evolve(d, information=information))

    def list_devices(self, user: str | None = None) -> Deferred[list[Device]]:
        now = self._now()

        def work(conn: _Conn) -> list[Device]:
            if user is None:
                rows = conn.execute(
                    f"SELECT record FROM device WHERE {_LIVE} ORDER BY user, device_id", (now,)
                )
            else:
                rows = conn.execute(
                    f"SELECT record FROM device WHERE user = ? AND {_LIVE} ORDER BY device_id",
                    (user, now),
                )
            return [codec.device_from_json(r[0]) for r in rows.fetchall()]

        return self._run(work)

    def set_policy_keys(
        self, user: str, device_id: str, *, policy_key: int | None, pending_policy_key: int | None
    ) -> Deferred[Device]:
        return self._modify(
            user,
            device_id,
            lambda d, _: attrs.evolve(
                d, policy_key=policy_key, pending_policy_key=pending_policy_key
            ),
        )

    def request_wipe(
        self, user: str, device_id: str, *, requested_by: str, account_only: bool = False
    ) -> Deferred[Device]:
        state = WipeState.ACCOUNT_ONLY_WIPE_PENDING if account_only else WipeState.WIPE_PENDING
        return self._modify(
            user,
            device_id,
            lambda d, at: attrs.evolve(
                d,
                wipe=state,
                wipe_requested_by=requested_by,
                wipe_requested_at=at,
                wipe_acknowledged_at=None,
            ),
        )

    def cancel_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        return self._modify(
            user,
            device_id,
            lambda d, _: attrs.evolve(
                d,
                wipe=WipeState.NONE,
                wipe_requested_by=None,
                wipe_requested_at=None,
                wipe_acknowledged_at=None,
            ),
        )

    def acknowledge_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        return self._modify(user, device_id, wipe_acknowledged)

    def set_permission(
        self, user: str, device_id: str, permission: Permission | None
    ) -> Deferred[Device]:
        return self._modify(user, device_id, lambda d, _: attrs.evolve(d, permission=permission))

    def remove_device(self, user: str, device_id: str) -> Deferred[bool]:
        now = self._now()

        def work(conn: _Conn) -> bool:
            existed = self._read_device(conn, user, device_id, now) is not None
            conn.execute("DELETE FROM device WHERE user = ? AND device_id = ?", (user, device_id))
            return existed

        return self._run(work)

    # ------------------------------------------------------------------ collections

    def allocate_collection(self, user: str, device_id: str, ref: FolderRef) -> Deferred[int]:
        now = self._now()

        def work(conn: _Conn) -> int:
            row = conn.execute(
                "SELECT collection_id FROM collection WHERE user = ? AND device_id = ?"
                f" AND kind = ? AND backend_id = ? AND {_LIVE} ORDER BY collection_id LIMIT 1",
                (user, device_id, ref.kind.value, ref.backend_id, now),
            ).fetchone()
            if row is not None:
                conn.execute(
                    "UPDATE collection SET expires = ? WHERE user = ? AND device_id = ?"
                    " AND collection_id = ?",
                    (now + _TTL, user, device_id, row[0]),
                )
                return int(row[0])
            (highest,) = conn.execute(
                "SELECT COALESCE(MAX(collection_id), 0) FROM collection"
                f" WHERE user = ? AND device_id = ? AND {_LIVE}",
                (user, device_id, now),
            ).fetchone()
            new_id = int(highest) + 1
            # Whatever an expired namesake left behind must not leak into the new collection.
            self._delete_collection_rows(conn, user, device_id, new_id)
            conn.execute(
                "INSERT OR REPLACE INTO collection"
                " (user, device_id, collection_id, kind, backend_id, record, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user,
                    device_id,
                    new_id,
                    ref.kind.value,
                    ref.backend_id,
                    codec.folder_ref_to_json(ref),
                    now + _TTL,
                ),
            )
            return new_id

        return self._run(work)

    def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[Collection | None]:
        if not valid_collection_id(collection_id):
            return succeed(None)
        now = self._now()

        def work(conn: _Conn) -> Collection | None:
            row = conn.execute(
                "SELECT record FROM collection WHERE user = ? AND device_id = ?"
                f" AND collection_id = ? AND {_LIVE}",
                (user, device_id, collection_id, now),
            ).fetchone()
            return (
                None
                if row is None
                else Collection(collection_id, codec.folder_ref_from_json(row[0]))
            )

        return self._run(work)

    def find_collection(
        self, user: str, device_id: str, kind: FolderKind, backend_id: str
    ) -> Deferred[Collection | None]:
        now = self._now()

        def work(conn: _Conn) -> Collection | None:
            row = conn.execute(
                "SELECT collection_id, record FROM collection WHERE user = ? AND device_id = ?"
                f" AND kind = ? AND backend_id = ? AND {_LIVE} ORDER BY collection_id LIMIT 1",
                (user, device_id, kind.value, backend_id, now),
            ).fetchone()
            return (
                None if row is None else Collection(int(row[0]), codec.folder_ref_from_json(row[1]))
            )

        return self._run(work)

    def list_collections(self, user: str, device_id: str) -> Deferred[list[Collection]]:
        now = self._now()

        def work(conn: _Conn) -> list[Collection]:
            rows = conn.execute(
                "SELECT collection_id, record FROM collection WHERE user = ? AND device_id = ?"
                f" AND {_LIVE} ORDER BY collection_id",
                (user, device_id, now),
            ).fetchall()
            return [Collection(int(r[0]), codec.folder_ref_from_json(r[1])) for r in rows]

        return self._run(work)

    def update_collection(
        self, user: str, device_id: str, collection_id: int, ref: FolderRef
    ) -> Deferred[bool]:
        now = self._now()

        def work(conn: _Conn) -> bool:
            cur = conn.execute(
                "UPDATE collection SET kind = ?, backend_id = ?, record = ?, expires = ?"
                f" WHERE user = ? AND device_id = ? AND collection_id = ? AND {_LIVE}",
                (
                    ref.kind.value,
                    ref.backend_id,
                    codec.folder_ref_to_json(ref),
                    now + _TTL,
                    user,
                    device_id,
                    collection_id,
                    now,
                ),
            )
            return cur.rowcount > 0

        return self._run(work)

    @staticmethod
    def _delete_collection_rows(conn: _Conn, user: str, device_id: str, cid: int) -> None:
        for table in ("collection", "sync_state", "id_mapping"):
            conn.execute(
                f"DELETE FROM {table} WHERE user = ? AND device_id = ? AND collection_id = ?",
                (user, device_id, cid),
            )

    def delete_collection(self, user: str, device_id: str, collection_id: int) -> Deferred[None]:
        return self._run(
            lambda conn: self._delete_collection_rows(conn, user, device_id, collection_id)
        )

    # ------------------------------------------------------------------ sync states

    _STATE_COLUMNS: Final = "sync_key, data, parent_key, response"

    @staticmethod
    def _state(row: tuple[Any, ...]) -> SyncState:
        return SyncState(
            sync_key=row[0],
            data=codec.loads(row[1]),
            parent_key=row[2],
            response=None if row[3] is None else bytes(row[3]),
        )

    def get_sync_state(
        self, user: str, device_id: str, collection_id: int, sync_key: str
    ) -> Deferred[SyncState | None]:
        if not valid_collection_id(collection_id):
            return succeed(None)
        now = self._now()

        def work(conn: _Conn) -> SyncState | None:
            row = conn.execute(
                f"SELECT {self._STATE_COLUMNS} FROM sync_state WHERE user = ? AND device_id = ?"
                f" AND collection_id = ? AND sync_key = ? AND {_LIVE}",
                (user, device_id, collection_id, sync_key, now),
            ).fetchone()
            return None if row is None else self._state(row)

        return self._run(work)

    def current_sync_state(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[SyncState | None]:
        if not valid_collection_id(collection_id):
            return succeed(None)
        now = self._now()

        def work(conn: _Conn) -> SyncState | None:
            row = conn.execute(
                f"SELECT {self._STATE_COLUMNS} FROM sync_state WHERE user = ? AND device_id = ?"
                f" AND collection_id = ? AND current = 1 AND {_LIVE}",
                (user, device_id, collection_id, now),
            ).fetchone()
            return None if row is None else self._state(row)

        return self._run(work)

    def put_sync_state(
        self, user: str, device_id: str, collection_id: int, state: SyncState
    ) -> Deferred[None]:
        now = self._now()
        data = codec.dumps(state.data)  # fail early, in the caller's thread, on bad data
        partition = (user, device_id, collection_id)

        def work(conn: _Conn) -> None:
            keep = [state.sync_key] + ([state.parent_key] if state.parent_key else [])
            marks = ", ".join("?" for _ in keep)
            conn.execute(
                "DELETE FROM sync_state WHERE user = ? AND device_id = ? AND collection_id = ?"
                f" AND sync_key NOT IN ({marks})",
                (*partition, *keep),
            )
            if state.parent_key is not None:
                conn.execute(
                    "UPDATE sync_state SET current = 0, expires = ? WHERE user = ?"
                    f" AND device_id = ? AND collection_id = ? AND sync_key = ? AND {_LIVE}",
                    (now + _TTL, *partition, state.parent_key, now),
                )
            conn.execute(
                "INSERT OR REPLACE INTO sync_state (user, device_id, collection_id, sync_key,"
                " parent_key, data, response, current, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (*partition, state.sync_key, state.parent_key, data, state.response, now + _TTL),
            )
            conn.execute(
                "UPDATE collection SET expires = ? WHERE user = ? AND device_id = ?"
                f" AND collection_id = ? AND {_LIVE}",
                (now + _TTL, *partition, now),
            )

        return self._run(work)

    # ------------------------------------------------------------------ idempotence maps

    def get_mapping(
        self, user: str, device_id: str, collection_id: int, kind: MappingKind, key: str
    ) -> Deferred[str | None]:
        if not valid_collection_id(collection_id):
            return succeed(None)
        now = self._now()

        def work(conn: _Conn) -> str | None:
            row = conn.execute(
                "SELECT value FROM id_mapping WHERE user = ? AND device_id = ?"
                f" AND collection_id = ? AND kind = ? AND key = ? AND {_LIVE}",
                (user, device_id, collection_id, kind.value, key, now),
            ).fetchone()
            return None if row is None else str(row[0])

        return self._run(work)

    def put_mapping(
        self,
        user: str,
        device_id: str,
        collection_id: int,
        kind: MappingKind,
        key: str,
        value: str,
    ) -> Deferred[None]:
        now = self._now()

        def work(conn: _Conn) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO id_mapping"
                " (user, device_id, collection_id, kind, key, value, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user, device_id, collection_id, kind.value, key, value, now + _TTL),
            )

        return self._run(work)

    # ------------------------------------------------------------------ ping

    def get_ping(self, user: str, device_id: str) -> Deferred[PingParameters | None]:
        now = self._now()

        def work(conn: _Conn) -> PingParameters | None:
            row = conn.execute(
                f"SELECT record FROM ping WHERE user = ? AND device_id = ? AND {_LIVE}",
                (user, device_id, now),
            ).fetchone()
            return None if row is None else codec.ping_from_json(row[0])

        return self._run(work)

    def put_ping(self, user: str, device_id: str, params: PingParameters) -> Deferred[None]:
        now = self._now()
        record = codec.ping_to_json(params)

        def work(conn: _Conn) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO ping (user, device_id, record, expires)"
                " VALUES (?, ?, ?, ?)",
                (user, device_id, record, now + _TTL),
            )

        return self._run(work)

    def forget_device(self, user: str, device_id: str) -> Deferred[None]:
        def work(conn: _Conn) -> None:
            for table in ("collection", "sync_state", "id_mapping", "ping"):
                conn.execute(
                    f"DELETE FROM {table} WHERE user = ? AND device_id = ?", (user, device_id)
                )

        return self._run(work)

    # ------------------------------------------------------------------ schema

    def installed_versions(self) -> Deferred[list[SchemaVersion] | None]:
        def work(conn: _Conn) -> list[SchemaVersion] | None:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if exists is None:
                return None
            rows = conn.execute(
                "SELECT version, updated FROM schema_version ORDER BY version DESC"
            ).fetchall()
            return [SchemaVersion(int(v), datetime.fromisoformat(u)) for v, u in rows]

        return self._run(work)

    def apply_script(self, version: int, name: str, script: str) -> Deferred[None]:
        def in_thread() -> None:
            try:
                # executescript manages its own transaction; SQLite DDL is transactional.
                self._connection().executescript(f"BEGIN IMMEDIATE;\n{script}\n;COMMIT;")
            except sqlite3.Error as e:
                conn = self._connection()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StorageError(f"schema file {name} (version {version}): {e}") from e

        return self._defer(in_thread)

    def record_version(self, version: int, updated: datetime) -> Deferred[None]:
        def work(conn: _Conn) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO schema_version (version, updated) VALUES (?, ?)",
                (version, updated.astimezone(UTC).isoformat()),
            )

        return self._run(work)
