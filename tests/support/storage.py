"""State-store helpers for tests: a ready embedded store on a fake clock, Cassandra settings.

Other areas' tests can use ``await embedded_store(tmp_path)`` to get an installed
:class:`~opush.storage.embedded.EmbeddedStore` (close it when done).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import attrs
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import Clock

from opush.storage import migration
from opush.storage.embedded import DEFAULT_FILENAME, EmbeddedStore
from opush.storage.interfaces import (
    DeviceRegistry,
    SchemaVersion,
    StateStore,
    StorageError,
)

#: Start of fake time in the tests: 2026-09-21, so dates look real.
EPOCH = 1_790_000_000.0

CASSANDRA_ENV = "OPUSH_TEST_CASSANDRA"


def fake_clock(start: float = EPOCH) -> Clock:
    clock = Clock()
    clock.advance(start)
    return clock


async def embedded_store(
    directory: Path, clock: Clock | None = None, *, install: bool = True
) -> EmbeddedStore:
    """An embedded store in ``directory`` with the schema installed (unless install=False)."""
    store = EmbeddedStore(directory / DEFAULT_FILENAME, clock=clock or fake_clock())
    if install:
        result = await migration.install(store, migration.load_schema("embedded"))
        assert result.success, result.message
    return store


def cassandra_address() -> tuple[str, int] | None:
    """host, port from OPUSH_TEST_CASSANDRA=host:port, or None when unset."""
    value = os.environ.get(CASSANDRA_ENV)
    if not value:
        return None
    host, _, port = value.rpartition(":")
    return (host or value, int(port)) if port.isdigit() else (value, 9042)


@attrs.define
class Backend:
    name: str
    store: StateStore
    registry: DeviceRegistry
    #: Row lifetime of this store instance, in seconds.
    ttl: float
    advance: Callable[[float], Awaitable[None]]
    now: Callable[[], datetime]
    _tag: str = attrs.field(factory=lambda: uuid.uuid4().hex[:8])

    def user(self, name: str) -> str:
        """A user name unique to this test (backends may be shared between tests)."""
        return f"{name}-{self._tag}@example.org"


@attrs.define
class FakeSchemaStore:
    """An in-memory SchemaStore that can fail on a given file, to test reruns."""

    versions: list[SchemaVersion] | None = None
    applied: list[str] = attrs.Factory(list)
    fail_on: str | None = None
    broken: bool = False

    def installed_versions(self) -> Deferred[list[SchemaVersion] | None]:
        if self.broken:
            return fail(StorageError("All host(s) tried for query failed"))
        if self.versions is None:
            return succeed(None)
        return succeed(sorted(self.versions, key=lambda v: -v.version))

    def apply_script(self, version: int, name: str, script: str) -> Deferred[None]:
        if name == self.fail_on:
            self.fail_on = None
            return fail(StorageError(f"boom in {name}"))
        self.applied.append(name)
        if self.versions is None:
            self.versions = []
        return succeed(None)

    def record_version(self, version: int, updated: datetime) -> Deferred[None]:
        assert self.versions is not None
        self.versions.append(SchemaVersion(version, updated))
        return succeed(None)
