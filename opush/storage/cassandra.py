"""The Cassandra state store (``storage = cassandra``, settings from cassandra.ini).

Same behaviour as the embedded store (``tests/contract`` runs on both), shaped for Cassandra:
every statement reads or writes one partition (user+device or user+device+collection; the
console's "all devices" list reads the single ``opush_device_index`` partition), values are
JSON text (``opush.storage.codec``), every write carries ``USING TTL`` (30 days; 0 = never for
a device with a pending wipe or a block), statements are prepared once, consistency is QUORUM
(OP-63) and the retry policy is ALWAYS_RETRY or RETRY_OR_CL_DOWNGRADE with
``cassandra.max-retries`` (OP-190), each retry logged at INFO as the DataStax
LoggingRetryPolicy did.

The driver runs its own I/O thread; ``execute_async`` futures are bridged into Deferreds with
``reactor.callFromThread`` so the reactor never waits on the network. Blocking driver calls
(connect, prepare) run in the reactor's thread pool. The driver reconnects by itself after a
network failure (exponential backoff, 1 s to 60 s); meanwhile operations fail with
StorageError.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, ParamSpec, TypeVar

import attrs
from cassandra import ConsistencyLevel
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import ExponentialReconnectionPolicy, RetryPolicy, WriteType
from cassandra.query import PreparedStatement, dict_factory
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, DeferredLock, FirstError, gatherResults, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel

from opush.config.sections import CassandraSection
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

#: The DataStax Java driver's logger, as the administrator guide shows it (``{c.d.d.c.p.…}``).
retry_log = logger("com.datastax.driver.core.policies.LoggingRetryPolicy")
log = logger("opush.storage.cassandra")

ALWAYS_RETRY: Final = "ALWAYS_RETRY"
RETRY_OR_CL_DOWNGRADE: Final = "RETRY_OR_CL_DOWNGRADE"

_P = ParamSpec("_P")
_T = TypeVar("_T")
Row = Mapping[str, Any]


@attrs.frozen
class CassandraSettings:
    """cassandra.ini, as the store needs it (``opush/tap.py`` maps the config section)."""

    seeds: tuple[str, ...]
    keyspace: str
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    port: int = 9042
    read_timeout_ms: int = 12000
    retry_policy: str = ALWAYS_RETRY
    max_retries: int = 3
    #: Row lifetime in seconds (tests shorten it to watch rows expire).
    ttl: int = int(STATE_TTL.total_seconds())

    @classmethod
    def from_section(cls, section: CassandraSection) -> CassandraSettings:
        """From cassandra.ini; a seed may carry a port (``host:9142``, one port for all)."""
        hosts, port = [], 9042
        for seed in section.cassandra_seeds:
            host, sep, maybe_port = seed.rpartition(":")
            if sep and maybe_port.isdigit() and "]" not in maybe_port:
                hosts.append(host.strip("[]"))
                port = int(maybe_port)
            else:
                hosts.append(seed)
        return cls(
            seeds=tuple(hosts),
            keyspace=section.cassandra_keyspace or "opush",
            user=section.cassandra_user,
            password=section.cassandra_password,
            port=port,
            read_timeout_ms=section.cassandra_read_timeout_ms,
            retry_policy=section.cassandra_retry_policy.value,
            max_retries=section.cassandra_max_retries,
        )


# ------------------------------------------------------------------------------ retry policies


def _cl(level: int | None) -> str:
    return ConsistencyLevel.value_to_name.get(level, str(level)) if level is not None else "?"


def _downgraded(alive_replicas: int) -> int | None:
    """DataStax DowngradingConsistencyRetryPolicy: the best level the live replicas allow."""
    if alive_replicas >= 3:
        return int(ConsistencyLevel.THREE)
    if alive_replicas == 2:
        return int(ConsistencyLevel.TWO)
    if alive_replicas == 1:
        return int(ConsistencyLevel.ONE)
    return None


Emit = Callable[[LogLevel, str], None]


class OpushRetryPolicy(RetryPolicy):  # type: ignore[misc]
    """ALWAYS_RETRY: retry at the same level on read/write timeout and unavailable, at most
    ``max_retries`` times. RETRY_OR_CL_DOWNGRADE: same on timeouts; on unavailable, warn and
    retry once at the level the live replicas allow (a nodetool repair may be needed later).

    Runs on the driver's thread: messages go through ``emit`` (see :func:`reactor_emitter`).
    """

    def __init__(self, name: str, max_retries: int, emit: Emit) -> None:
        if name not in (ALWAYS_RETRY, RETRY_OR_CL_DOWNGRADE):
            raise ValueError(f"unknown retry policy {name!r}")
        self.name = name
        self.max_retries = max_retries
        self._emit = emit

    def _initial(self, query: Any, consistency: int) -> str:
        return _cl(getattr(query, "consistency_level", None) or consistency)

    def on_read_timeout(
        self,
        query: Any,
        consistency: int,
        required_responses: int,
        received_responses: int,
        data_retrieved: bool,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num >= self.max_retries:
            return self.RETHROW, None
        self._emit(
            LogLevel.info,
            f"Retrying on read timeout at consistency {_cl(consistency)} (initial consistency: "
            f"{self._initial(query, consistency)}, required responses: {required_responses}, "
            f"received responses: {received_responses}, data retrieved: "
            f"{str(bool(data_retrieved)).lower()}, retries: {retry_num})",
        )
        return self.RETRY, consistency

    def on_write_timeout(
        self,
        query: Any,
        consistency: int,
        write_type: Any,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num >= self.max_retries:
            return self.RETHROW, None
        kind = WriteType.value_to_name.get(write_type, str(write_type))
        # No space before "(": the guide's (and the Java driver's) exact text.
        self._emit(
            LogLevel.info,
            f"Retrying on write timeout at consistency {_cl(consistency)}(initial consistency: "
            f"{self._initial(query, consistency)}, write type: {kind}, required "
            f"acknowledgments: {required_responses}, received acknowledgments: "
            f"{received_responses}, retries: {retry_num})",
        )
        return self.RETRY, consistency

    def on_unavailable(
        self,
        query: Any,
        consistency: int,
        required_replicas: int,
        alive_replicas: int,
        retry_num: int,
    ) -> tuple[int, int | None]:
        if retry_num >= self.max_retries:
            return self.RETHROW, None
        level: int | None = consistency
        if self.name == RETRY_OR_CL_DOWNGRADE:
            self._emit(
                LogLevel.warn,
                f"Not enough replicas for consistency {_cl(consistency)} (required replica: "
                f"{required_replicas}, alive replica: {alive_replicas}), downgrading the "
                "consistency level",
            )
            if retry_num > 0:
                return self.RETHROW, None
            level = _downgraded(alive_replicas)
            if level is None:
                return self.RETHROW, None
        self._emit(
            LogLevel.info,
            f"Retrying on unavailable exception at consistency {_cl(level)} (initial "
            f"consistency: {self._initial(query, consistency)}, required replica: "
            f"{required_replicas}, alive replica: {alive_replicas}, retries: {retry_num})",
        )
        return self.RETRY, level


def reactor_emitter(reactor: Any) -> Emit:
    """Log from the driver's thread through the reactor thread (twisted logging isn't
    thread-safe)."""

    def emit(level: LogLevel, text: str) -> None:
        reactor.callFromThread(retry_log.emit, level, "{text}", text=text)

    return emit


# ------------------------------------------------------------------------------ statements

#: Every CQL statement the store runs (tests parse each with cqlsh's grammar).
STATEMENTS: Final[dict[str, str]] = {
    "device_get": "SELECT record FROM opush_device WHERE user = ? AND device_id = ?",
    "device_list": "SELECT record FROM opush_device WHERE user = ?",
    "device_put": (
        "INSERT INTO opush_device (user, device_id, record) VALUES (?, ?, ?) USING TTL ?"
    ),
    "device_delete": "DELETE FROM opush_device WHERE user = ? AND device_id = ?",
    "index_put": (
        "INSERT INTO opush_device_index (bucket, user, device_id) VALUES (0, ?, ?) USING TTL ?"
    ),
    "index_list": "SELECT user, device_id FROM opush_device_index WHERE bucket = 0",
    "index_delete": (
        "DELETE FROM opush_device_index WHERE bucket = 0 AND user = ? AND device_id = ?"
    ),
    "collection_list": (
        "SELECT collection_id, kind, backend_id, record FROM opush_collection"
        " WHERE user = ? AND device_id = ?"
    ),
    "collection_get": (
        "SELECT collection_id, kind, backend_id, record FROM opush_collection"
        " WHERE user = ? AND device_id = ? AND collection_id = ?"
    ),
    "collection_put": (
        "INSERT INTO opush_collection (user, device_id, collection_id, kind, backend_id, record)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "collection_create": (
        "INSERT INTO opush_collection (user, device_id, collection_id, kind, backend_id, record)"
        " VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?"
    ),
    "collection_delete": (
        "DELETE FROM opush_collection WHERE user = ? AND device_id = ? AND collection_id = ?"
    ),
    "collections_delete": "DELETE FROM opush_collection WHERE user = ? AND device_id = ?",
    "state_list": (
        "SELECT sync_key, parent_key, data, response, current FROM opush_sync_state"
        " WHERE user = ? AND device_id = ? AND collection_id = ?"
    ),
    "state_get": (
        "SELECT sync_key, parent_key, data, response, current FROM opush_sync_state"
        " WHERE user = ? AND device_id = ? AND collection_id = ? AND sync_key = ?"
    ),
    "state_put": (
        "INSERT INTO opush_sync_state (user, device_id, collection_id, sync_key, parent_key,"
        " data, response, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "state_delete": (
        "DELETE FROM opush_sync_state"
        " WHERE user = ? AND device_id = ? AND collection_id = ? AND sync_key = ?"
    ),
    "states_delete": (
        "DELETE FROM opush_sync_state WHERE user = ? AND device_id = ? AND collection_id = ?"
    ),
    "mapping_get": (
        "SELECT map_value FROM opush_id_mapping WHERE user = ? AND device_id = ?"
        " AND collection_id = ? AND kind = ? AND map_key = ?"
    ),
    "mapping_put": (
        "INSERT INTO opush_id_mapping (user, device_id, collection_id, kind, map_key, map_value)"
        " VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
    ),
    "mappings_delete": (
        "DELETE FROM opush_id_mapping WHERE user = ? AND device_id = ? AND collection_id = ?"
    ),
    "ping_get": "SELECT record FROM opush_ping WHERE user = ? AND device_id = ?",
    "ping_put": "INSERT INTO opush_ping (user, device_id, record) VALUES (?, ?, ?) USING TTL ?",
    "ping_delete": "DELETE FROM opush_ping WHERE user = ? AND device_id = ?",
    "schema_table": (
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?"
    ),
    # Cassandra 2.x has no system_schema keyspace.
    "schema_table_v2": (
        "SELECT columnfamily_name FROM system.schema_columnfamilies"
        " WHERE keyspace_name = ? AND columnfamily_name = ?"
    ),
    "schema_versions": "SELECT version, date FROM schema_version WHERE id = 1",
    "schema_record": "INSERT INTO schema_version (id, version, date) VALUES (1, ?, ?)",
}


def split_script(script: str) -> list[str]:
    """The statements of a schema file: ``--`` comments dropped, split on ``;``."""
    text = "\n".join(re.sub(r"--.*$", "", line) for line in script.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def _deferred(f: Callable[_P, Coroutine[Any, Any, _T]]) -> Callable[_P, Deferred[_T]]:
    """Expose an ``async def`` method as the Deferred-returning method of the interfaces."""

    @functools.wraps(f)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Deferred[_T]:
        return Deferred.fromCoroutine(f(*args, **kwargs))

    return wrapper


def _folder_ref(row: Row) -> FolderRef:
    return codec.folder_ref_from_json(row["record"])


def _state(row: Row) -> SyncState:
    response = row.get("response")
    return SyncState(
        sync_key=row["sync_key"],
        data=codec.loads(row["data"]),
        parent_key=row.get("parent_key"),
        response=None if response is None else bytes(response),
    )


class CassandraStore:
    """DeviceRegistry + StateStore + SchemaStore on a Cassandra keyspace.

    :meth:`open` returns at once and connects on first use (and again after a failed
    attempt), so opush starts, serves its console and reports the schema status even while
    the cluster is unreachable; :meth:`connect` connects eagerly.
    """

    def __init__(
        self,
        cluster: Cluster | None,
        session: Session | None,
        settings: CassandraSettings,
        reactor: Any = None,
    ) -> None:
        self._cluster = cluster
        self._session = session
        self._settings = settings
        self._reactor: Any = reactor if reactor is not None else _global_reactor
        self._prepared: dict[str, PreparedStatement] = {}
        self._ttl = settings.ttl
        self._connecting = DeferredLock()

    # ------------------------------------------------------------------ connection

    @classmethod
    def build_cluster(cls, settings: CassandraSettings, reactor: Any = None) -> Cluster:
        the_reactor = reactor if reactor is not None else _global_reactor
        policy = OpushRetryPolicy(
            settings.retry_policy, settings.max_retries, reactor_emitter(the_reactor)
        )
        profile = ExecutionProfile(
            consistency_level=ConsistencyLevel.QUORUM,
            serial_consistency_level=ConsistencyLevel.SERIAL,
            retry_policy=policy,
            request_timeout=settings.read_timeout_ms / 1000.0 if settings.read_timeout_ms else None,
            row_factory=dict_factory,
        )
        auth = (
            PlainTextAuthProvider(settings.user, settings.password or "") if settings.user else None
        )
        return Cluster(
            contact_points=list(settings.seeds),
            port=settings.port,
            auth_provider=auth,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            reconnection_policy=ExponentialReconnectionPolicy(1.0, 60.0),
        )

    @classmethod
    def open(cls, settings: CassandraSettings, reactor: Any = None) -> CassandraStore:
        """A store that connects on first use."""
        return cls(None, None, settings, reactor)

    @classmethod
    async def connect(cls, settings: CassandraSettings, reactor: Any = None) -> CassandraStore:
        """Connect to the keyspace now (raises StorageError when no seed answers)."""
        store = cls.open(settings, reactor)
        await store._ready()
        return store

    def _in_thread(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)

    async def _ready(self) -> Session:
        """The session, connecting first if needed (one attempt at a time)."""
        if self._session is not None:
            return self._session
        await self._connecting.acquire()
        try:
            if self._session is None:
                # A Cluster whose first connection failed is shut down: build one per attempt.
                cluster = self.build_cluster(self._settings, self._reactor)
                try:
                    session = await self._in_thread(cluster.connect, self._settings.keyspace)
                except Exception as e:
                    await self._in_thread(cluster.shutdown)
                    raise StorageError(
                        f"Cannot connect to Cassandra {list(self._settings.seeds)}: {e}"
                    ) from e
                self._cluster, self._session = cluster, session
                log.info(
                    "Connected to Cassandra {seeds}, keyspace {keyspace}",
                    seeds=list(self._settings.seeds),
                    keyspace=self._settings.keyspace,
                )
            return self._session
        finally:
            self._connecting.release()

    def close(self) -> Deferred[None]:
        cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is None:
            return succeed(None)
        return self._in_thread(cluster.shutdown)

    async def _statement(self, name: str) -> PreparedStatement:
        prepared = self._prepared.get(name)
        if prepared is None:
            session = await self._ready()
            try:
                prepared = await self._in_thread(session.prepare, STATEMENTS[name])
            except Exception as e:
                raise StorageError(f"Cassandra: cannot prepare {name}: {e}") from e
            self._prepared[name] = prepared
        return prepared

    def _run(self, statement: Any, params: Sequence[Any] = ()) -> Deferred[list[Row]]:
        """Execute asynchronously; all result pages, delivered in the reactor thread."""
        d: Deferred[list[Row]] = Deferred()
        try:
            if self._session is None:
                raise StorageError("not connected")
            future = self._session.execute_async(statement, params)
        except Exception as e:
            d.errback(StorageError(f"Cassandra: {e}"))
            return d
        rows: list[Row] = []
        call = self._reactor.callFromThread

        def page(results: Iterable[Row] | None) -> None:
            rows.extend(results or ())
            if future.has_more_pages:
                future.start_fetching_next_page()
            else:
                call(d.callback, rows)

        def failed(error: BaseException) -> None:
            call(d.errback, StorageError(f"Cassandra: {error}"))

        future.add_callbacks(page, failed)
        return d

    async def _q(self, name: str, *params: Any) -> list[Row]:
        return await self._run(await self._statement(name), params)

    def _ttl_for(self, device: Device) -> int:
        return 0 if never_expires(device) else self._ttl

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._reactor.seconds(), UTC)

    # ------------------------------------------------------------------ devices

    async def _read_device(self, user: str, device_id: str) -> Device | None:
        rows = await self._q("device_get", user, device_id)
        return codec.device_from_json(rows[0]["record"]) if rows else None

    async def _write_device(self, device: Device, index: bool) -> None:
        ttl = self._ttl_for(device)
        await self._q(
            "device_put", device.user, device.device_id, codec.device_to_json(device), ttl
        )
        if index:
            # The index row outlives the device a little; list_devices drops stale entries.
            await self._q(
                "index_put", device.user, device.device_id, 0 if ttl == 0 else ttl + 2 * 86400
            )

    @_deferred
    async def get_device(self, user: str, device_id: str) -> Device | None:
        return await self._read_device(user, device_id)

    @_deferred
    async def touch_device(
        self,
        user: str,
        device_id: str,
        *,
        device_type: str,
        user_agent: str | None,
        protocol_version: str | None,
    ) -> Device:
        seen = self._now()
        old = await self._read_device(user, device_id)
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
            reindex = True
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
            # Refresh the shared index partition once per day of activity, not per request
            # (its rows live two days longer than the device's).
            reindex = seen.date() != old.last_seen.date()
        await self._write_device(device, reindex)
        return device

    async def _modify(
        self, user: str, device_id: str, change: Callable[[Device, datetime], Device]
    ) -> Device:
        old = await self._read_device(user, device_id)
        if old is None:
            raise DeviceNotFound(user, device_id)
        device = change(old, self._now())
        await self._write_device(device, index=never_expires(device) != never_expires(old))
        return device

    @_deferred
    async def update_device_information(
        self, user: str, device_id: str, information: DeviceInformation
    ) -> Device:
        return await self._modify(
            user, device_id, lambda d, _: attrs.evolve(d, information=information)
        )

    @_deferred
    async def list_devices(self, user: str | None = None) -> list[Device]:
        if user is not None:
            rows = await self._q("device_list", user)
            devices = [codec.device_from_json(r["record"]) for r in rows]
        else:
            keys = sorted((r["user"], r["device_id"]) for r in await self._q("index_list"))
            found: list[Device | None] = []
            for start in range(0, len(keys), 32):  # keyed reads, 32 at a time
                batch = [
                    Deferred.fromCoroutine(self._read_device(u, d))
                    for u, d in keys[start : start + 32]
                ]
                try:
                    found += await gatherResults(batch, consumeErrors=True)
                except FirstError as e:
                    e.subFailure.raiseException()
            devices = [d for d in found if d is not None]
        return sorted(devices, key=lambda d: (d.user, d.device_id))

    @_deferred
    async def set_policy_keys(
        self, user: str, device_id: str, *, policy_key: int | None, pending_policy_key: int | None
    ) -> Device:
        return await self._modify(
            user,
            device_id,
            lambda d, _: attrs.evolve(
                d, policy_key=policy_key, pending_policy_key=pending_policy_key
            ),
        )

    @_deferred
    async def request_wipe(
        self, user: str, device_id: str, *, requested_by: str, account_only: bool = False
    ) -> Device:
        state = WipeState.ACCOUNT_ONLY_WIPE_PENDING if account_only else WipeState.WIPE_PENDING
        return await self._modify(
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

    @_deferred
    async def cancel_wipe(self, user: str, device_id: str) -> Device:
        return await self._modify(
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

    @_deferred
    async def acknowledge_wipe(self, user: str, device_id: str) -> Device:
        return await self._modify(user, device_id, wipe_acknowledged)

    @_deferred
    async def set_permission(
        self, user: str, device_id: str, permission: Permission | None
    ) -> Device:
        return await self._modify(
            user, device_id, lambda d, _: attrs.evolve(d, permission=permission)
        )

    @_deferred
    async def remove_device(self, user: str, device_id: str) -> bool:
        existed = await self._read_device(user, device_id) is not None
        await self._q("index_delete", user, device_id)
        await self._q("device_delete", user, device_id)
        return existed

    # ------------------------------------------------------------------ collections

    async def _collections(self, user: str, device_id: str) -> list[Row]:
        return sorted(
            await self._q("collection_list", user, device_id), key=lambda r: r["collection_id"]
        )

    async def _drop_collection_state(self, user: str, device_id: str, cid: int) -> None:
        await self._q("states_delete", user, device_id, cid)
        await self._q("mappings_delete", user, device_id, cid)

    @_deferred
    async def allocate_collection(self, user: str, device_id: str, ref: FolderRef) -> int:
        record = codec.folder_ref_to_json(ref)
        for _attempt in range(10):
            rows = await self._collections(user, device_id)
            for row in rows:
                if row["kind"] == ref.kind.value and row["backend_id"] == ref.backend_id:
                    cid = int(row["collection_id"])
                    await self._put_collection(user, device_id, cid, _folder_ref(row))
                    return cid
            new_id = max((int(r["collection_id"]) for r in rows), default=0) + 1
            await self._drop_collection_state(user, device_id, new_id)
            applied = await self._q(
                "collection_create",
                user,
                device_id,
                new_id,
                ref.kind.value,
                ref.backend_id,
                record,
                self._ttl,
            )
            # A lightweight transaction: someone else may have taken that id meanwhile.
            if not applied or applied[0].get("[applied]", True):
                return new_id
        raise StorageError(f"Cassandra: cannot allocate a collection id for {user}/{device_id}")

    @_deferred
    async def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Collection | None:
        if not valid_collection_id(collection_id):
            return None
        rows = await self._q("collection_get", user, device_id, collection_id)
        return Collection(collection_id, _folder_ref(rows[0])) if rows else None

    @_deferred
    async def find_collection(
        self, user: str, device_id: str, kind: FolderKind, backend_id: str
    ) -> Collection | None:
        for row in await self._collections(user, device_id):
            if row["kind"] == kind.value and row["backend_id"] == backend_id:
                return Collection(int(row["collection_id"]), _folder_ref(row))
        return None

    @_deferred
    async def list_collections(self, user: str, device_id: str) -> list[Collection]:
        return [
            Collection(int(r["collection_id"]), _folder_ref(r))
            for r in await self._collections(user, device_id)
        ]

    async def _put_collection(
        self, user: str, device_id: str, collection_id: int, ref: FolderRef
    ) -> None:
        await self._q(
            "collection_put",
            user,
            device_id,
            collection_id,
            ref.kind.value,
            ref.backend_id,
            codec.folder_ref_to_json(ref),
            self._ttl,
        )

    @_deferred
    async def update_collection(
        self, user: str, device_id: str, collection_id: int, ref: FolderRef
    ) -> bool:
        if not await self._q("collection_get", user, device_id, collection_id):
            return False
        await self._put_collection(user, device_id, collection_id, ref)
        return True

    @_deferred
    async def delete_collection(self, user: str, device_id: str, collection_id: int) -> None:
        await self._q("collection_delete", user, device_id, collection_id)
        await self._drop_collection_state(user, device_id, collection_id)

    # ------------------------------------------------------------------ sync states

    @_deferred
    async def get_sync_state(
        self, user: str, device_id: str, collection_id: int, sync_key: str
    ) -> SyncState | None:
        if not valid_collection_id(collection_id):
            return None
        rows = await self._q("state_get", user, device_id, collection_id, sync_key)
        return _state(rows[0]) if rows else None

    @_deferred
    async def current_sync_state(
        self, user: str, device_id: str, collection_id: int
    ) -> SyncState | None:
        if not valid_collection_id(collection_id):
            return None
        rows = await self._q("state_list", user, device_id, collection_id)
        current = [r for r in rows if r.get("current")]
        return _state(current[0]) if current else None

    @_deferred
    async def put_sync_state(
        self, user: str, device_id: str, collection_id: int, state: SyncState
    ) -> None:
        data = codec.dumps(state.data)
        partition = (user, device_id, collection_id)
        # Order matters if we are interrupted: drop stale keys and demote the parent first,
        # then write the new current state (at worst no state is current, never two).
        for row in await self._q("state_list", *partition):
            key = row["sync_key"]
            if key == state.sync_key:
                continue
            if key == state.parent_key:
                await self._q(
                    "state_put",
                    *partition,
                    key,
                    row.get("parent_key"),
                    row["data"],
                    row.get("response"),
                    False,
                    self._ttl,
                )
            else:
                await self._q("state_delete", *partition, key)
        await self._q(
            "state_put",
            *partition,
            state.sync_key,
            state.parent_key,
            data,
            state.response,
            True,
            self._ttl,
        )
        if collection_id:
            rows = await self._q("collection_get", *partition)
            if rows:
                await self._put_collection(user, device_id, collection_id, _folder_ref(rows[0]))

    # ------------------------------------------------------------------ idempotence maps

    @_deferred
    async def get_mapping(
        self, user: str, device_id: str, collection_id: int, kind: MappingKind, key: str
    ) -> str | None:
        if not valid_collection_id(collection_id):
            return None
        rows = await self._q("mapping_get", user, device_id, collection_id, kind.value, key)
        return str(rows[0]["map_value"]) if rows else None

    @_deferred
    async def put_mapping(
        self,
        user: str,
        device_id: str,
        collection_id: int,
        kind: MappingKind,
        key: str,
        value: str,
    ) -> None:
        await self._q(
            "mapping_put", user, device_id, collection_id, kind.value, key, value, self._ttl
        )

    # ------------------------------------------------------------------ ping

    @_deferred
    async def get_ping(self, user: str, device_id: str) -> PingParameters | None:
        rows = await self._q("ping_get", user, device_id)
        return codec.ping_from_json(rows[0]["record"]) if rows else None

    @_deferred
    async def put_ping(self, user: str, device_id: str, params: PingParameters) -> None:
        await self._q("ping_put", user, device_id, codec.ping_to_json(params), self._ttl)

    @_deferred
    async def forget_device(self, user: str, device_id: str) -> None:
        ids = {int(r["collection_id"]) for r in await self._collections(user, device_id)}
        for cid in sorted(ids | {0}):
            await self._drop_collection_state(user, device_id, cid)
        await self._q("collections_delete", user, device_id)
        await self._q("ping_delete", user, device_id)

    # ------------------------------------------------------------------ schema

    @_deferred
    async def installed_versions(self) -> list[SchemaVersion] | None:
        try:
            tables = await self._q("schema_table", self._settings.keyspace, "schema_version")
        except StorageError:
            tables = await self._q("schema_table_v2", self._settings.keyspace, "schema_version")
        if not tables:
            return None
        rows = await self._q("schema_versions")
        return [
            SchemaVersion(int(r["version"]), r["date"].replace(tzinfo=UTC))
            for r in sorted(rows, key=lambda r: -int(r["version"]))
        ]

    @_deferred
    async def apply_script(self, version: int, name: str, script: str) -> None:
        await self._ready()
        for statement in split_script(script):
            try:
                await self._run(statement)
            except StorageError as e:
                raise StorageError(f"schema file {name} (version {version}): {e}") from e

    @_deferred
    async def record_version(self, version: int, updated: datetime) -> None:
        await self._q("schema_record", version, updated)


class LazyCassandraStore(CassandraStore):
    """The CassandraStore ``opush/tap.py`` builds: connects on first use, retries after a
    failed attempt (see :meth:`CassandraStore.open`)."""

    def __init__(self, settings: CassandraSettings, reactor: Any = None) -> None:
        super().__init__(None, None, settings, reactor)
