"""Cassandra client behaviour that needs no cluster: retry policies and their log lines, the
future-to-Deferred bridge, connection failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from cassandra import ConsistencyLevel
from cassandra.policies import RetryPolicy, WriteType
from twisted.logger import LogLevel

from opush.storage.cassandra import (
    ALWAYS_RETRY,
    RETRY_OR_CL_DOWNGRADE,
    CassandraSettings,
    CassandraStore,
    OpushRetryPolicy,
    split_script,
)
from opush.storage.interfaces import StorageError

QUORUM, ONE, TWO = ConsistencyLevel.QUORUM, ConsistencyLevel.ONE, ConsistencyLevel.TWO


class Query:
    consistency_level = QUORUM


def policy(name: str, max_retries: int = 3) -> tuple[OpushRetryPolicy, list[tuple[LogLevel, str]]]:
    logged: list[tuple[LogLevel, str]] = []
    return OpushRetryPolicy(name, max_retries, lambda lvl, t: logged.append((lvl, t))), logged


def test_write_timeout_is_retried_and_logged_as_the_guide_shows() -> None:
    p, logged = policy(ALWAYS_RETRY)
    decision = p.on_write_timeout(Query(), QUORUM, WriteType.SIMPLE, 2, 1, 0)
    assert decision == (RetryPolicy.RETRY, QUORUM)
    assert logged == [
        (
            LogLevel.info,
            "Retrying on write timeout at consistency QUORUM(initial consistency: QUORUM, "
            "write type: SIMPLE, required acknowledgments: 2, received acknowledgments: 1, "
            "retries: 0)",
        )
    ]


def test_read_timeout_and_unavailable_are_retried_at_the_same_level() -> None:
    p, logged = policy(ALWAYS_RETRY)
    assert p.on_read_timeout(Query(), QUORUM, 2, 1, False, 1) == (RetryPolicy.RETRY, QUORUM)
    assert p.on_unavailable(Query(), QUORUM, 2, 1, 2) == (RetryPolicy.RETRY, QUORUM)
    assert logged[0][1] == (
        "Retrying on read timeout at consistency QUORUM (initial consistency: QUORUM, "
        "required responses: 2, received responses: 1, data retrieved: false, retries: 1)"
    )
    assert logged[1][1] == (
        "Retrying on unavailable exception at consistency QUORUM (initial consistency: "
        "QUORUM, required replica: 2, alive replica: 1, retries: 2)"
    )


def test_max_retries_then_the_error_is_rethrown() -> None:
    p, logged = policy(ALWAYS_RETRY, max_retries=2)
    assert p.on_write_timeout(Query(), QUORUM, WriteType.SIMPLE, 2, 1, 2)[0] == (
        RetryPolicy.RETHROW
    )
    assert p.on_read_timeout(Query(), QUORUM, 2, 1, True, 2)[0] == RetryPolicy.RETHROW
    assert p.on_unavailable(Query(), QUORUM, 2, 1, 2)[0] == RetryPolicy.RETHROW
    assert logged == []


def test_downgrade_on_unavailable() -> None:
    p, logged = policy(RETRY_OR_CL_DOWNGRADE)
    assert p.on_unavailable(Query(), QUORUM, 2, 1, 0) == (RetryPolicy.RETRY, ONE)
    assert logged[0][0] is LogLevel.warn
    assert logged[1] == (
        LogLevel.info,
        "Retrying on unavailable exception at consistency ONE (initial consistency: QUORUM, "
        "required replica: 2, alive replica: 1, retries: 0)",
    )
    assert p.on_unavailable(Query(), QUORUM, 3, 2, 0) == (RetryPolicy.RETRY, TWO)
    # once downgraded, a second unavailable fails; no replica at all fails at once
    assert p.on_unavailable(Query(), ONE, 2, 1, 1)[0] == RetryPolicy.RETHROW
    assert p.on_unavailable(Query(), QUORUM, 2, 0, 0)[0] == RetryPolicy.RETHROW
    # timeouts are retried at the same level, as with ALWAYS_RETRY
    assert p.on_write_timeout(Query(), QUORUM, WriteType.BATCH, 2, 1, 0) == (
        RetryPolicy.RETRY,
        QUORUM,
    )


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="NEVER"):
        OpushRetryPolicy("NEVER", 3, lambda lvl, t: None)


def test_cluster_is_configured_as_the_guide_says() -> None:
    settings = CassandraSettings(
        seeds=("192.168.56.4", "192.168.56.5"),
        keyspace="opush",
        user="opush",
        password="secret",
        read_timeout_ms=5000,
        retry_policy=RETRY_OR_CL_DOWNGRADE,
        max_retries=5,
    )
    cluster = CassandraStore.build_cluster(settings)
    profile = cluster.profile_manager.default
    assert profile.consistency_level == QUORUM
    assert profile.request_timeout == 5.0
    assert isinstance(profile.retry_policy, OpushRetryPolicy)
    assert (profile.retry_policy.name, profile.retry_policy.max_retries) == (
        RETRY_OR_CL_DOWNGRADE,
        5,
    )
    assert cluster.contact_points == ["192.168.56.4", "192.168.56.5"]
    assert "secret" not in repr(settings)


class FakeFuture:
    """Stands in for the driver's ResponseFuture: pages, then success or failure."""

    def __init__(self, pages: list[list[dict[str, Any]]], error: Exception | None = None):
        self.pages = pages
        self.error = error
        self.has_more_pages = len(pages) > 1
        self._callbacks: tuple[Callable[..., None], Callable[..., None]] | None = None

    def add_callbacks(self, ok: Callable[..., None], err: Callable[..., None]) -> None:
        self._callbacks = (ok, err)
        self._deliver()

    def start_fetching_next_page(self) -> None:
        self.pages.pop(0)
        self.has_more_pages = len(self.pages) > 1
        self._deliver()

    def _deliver(self) -> None:
        assert self._callbacks
        if self.error:
            self._callbacks[1](self.error)
        else:
            self._callbacks[0](self.pages[0])


class FakeSession:
    def __init__(self, future: FakeFuture | Exception) -> None:
        self.future = future

    def execute_async(self, statement: Any, params: Any) -> FakeFuture:
        if isinstance(self.future, Exception):
            raise self.future
        return self.future


class DirectReactor:
    """callFromThread runs at once: the driver's thread is the test's thread here."""

    def callFromThread(self, f: Callable[..., Any], *a: Any) -> None:
        f(*a)


def store_with(future: FakeFuture | Exception) -> CassandraStore:
    settings = CassandraSettings(seeds=("h",), keyspace="k")
    return CassandraStore(None, FakeSession(future), settings, DirectReactor())  # type: ignore[arg-type]


def test_all_pages_are_collected() -> None:
    store = store_with(FakeFuture([[{"a": 1}], [{"a": 2}], [{"a": 3}]]))
    results: list[Any] = []
    store._run("SELECT").addCallback(results.append)
    assert results == [[{"a": 1}, {"a": 2}, {"a": 3}]]


def test_driver_errors_become_storage_errors() -> None:
    for failing in (FakeFuture([[]], RuntimeError("Operation timed out")), RuntimeError("down")):
        failures: list[Any] = []
        store_with(failing)._run("SELECT").addErrback(failures.append)
        assert failures and failures[0].check(StorageError)


def test_split_script() -> None:
    script = (
        "-- a comment; with a semicolon\nCREATE TABLE a (x int);\n\n  -- end\n"
        ";CREATE TABLE b (y int)"
    )
    assert split_script(script) == ["CREATE TABLE a (x int)", "CREATE TABLE b (y int)"]


@pytest_twisted.ensureDeferred
async def test_unreachable_cluster_is_a_clear_storage_error() -> None:
    settings = CassandraSettings(seeds=("127.0.0.1",), port=1, keyspace="opush")
    with pytest.raises(StorageError, match=r"Cannot connect to Cassandra \['127.0.0.1'\]"):
        await CassandraStore.connect(settings)


def test_settings_from_cassandra_ini() -> None:
    from opush.config.sections import CassandraSection, RetryPolicy

    section = CassandraSection(
        cassandra_seeds=("192.168.56.4", "192.168.56.5:9142"),
        cassandra_keyspace="opush",
        cassandra_user="opush",
        cassandra_password="opush",
        cassandra_retry_policy=RetryPolicy.RETRY_OR_CL_DOWNGRADE,
        cassandra_max_retries=5,
    )
    settings = CassandraSettings.from_section(section)
    assert settings.seeds == ("192.168.56.4", "192.168.56.5")
    assert (settings.port, settings.keyspace, settings.user) == (9142, "opush", "opush")
    assert (settings.retry_policy, settings.max_retries) == (RETRY_OR_CL_DOWNGRADE, 5)
    assert settings.read_timeout_ms == 12000


def test_retry_lines_use_the_java_driver_logger_name() -> None:
    from opush.log._format import abbreviate
    from opush.storage.cassandra import retry_log

    assert abbreviate(retry_log.namespace) == "c.d.d.c.p.LoggingRetryPolicy"


@pytest_twisted.ensureDeferred
async def test_unreachable_cluster_gives_an_error_status_and_is_retried() -> None:
    from opush.storage import migration

    store = CassandraStore.open(CassandraSettings(seeds=("127.0.0.1",), port=1, keyspace="o"))
    schema = migration.load_schema("cassandra")
    for _attempt in range(2):  # each use tries to connect again
        summary = await migration.get_status(store, schema)
        assert summary.status is migration.SchemaStatus.EXECUTION_ERROR
        assert summary.message is not None
        assert summary.message.startswith("Cannot connect to Cassandra ['127.0.0.1']")
        assert not summary.serves_devices
    with pytest.raises(StorageError):
        await store.get_device("u", "d")
    await store.close()
