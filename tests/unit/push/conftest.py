"""Deterministic doubles for the push unit tests: a fake clock, a change source the test
drives, scripted wake-up checks, and the part of the state store Ping reads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from opush.backends.interfaces import Credentials, MailBackendUnavailable, UserIdentity
from opush.commands.context import CommandContext
from opush.http.query import EasQuery
from opush.push.heartbeat import HeartbeatBounds
from opush.push.hub import Emit, Hint, PushHub, PushSettings
from opush.runtime import Runtime
from opush.storage.interfaces import (
    Collection,
    Device,
    FolderKind,
    FolderRef,
    PingParameters,
)

USER = "alice@example.org"
CREDENTIALS = Credentials(UserIdentity("alice", "example.org", USER), "secret")


@attrs.define(eq=False)
class FakeSource:
    """A ChangeSource the test drives: `hint(...)` emits, `die()` loses it."""

    emit: Emit
    lost: Callable[[], None]
    folders: frozenset[str]
    started: bool = False
    stopped: bool = False
    fail_start: bool = False
    kind: FolderKind = FolderKind.MAIL

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("no server")
        self.started = True
        self.emit(Hint(self.kind, resync=True))

    def update_folders(self, folders: frozenset[str]) -> None:
        self.folders = folders

    async def stop(self) -> None:
        self.stopped = True

    def hint(self, *folders: str, hierarchy: bool = False) -> None:
        self.emit(Hint(self.kind, frozenset(folders), hierarchy=hierarchy))

    def die(self) -> None:
        self.lost()


@attrs.define
class Sources:
    made: list[FakeSource] = attrs.field(factory=list)
    fail_next: int = 0

    def factory(
        self,
        hub: PushHub,
        credentials: Credentials,
        folders: frozenset[str],
        emit: Emit,
        lost: Callable[[], None],
    ) -> FakeSource:
        source = FakeSource(emit, lost, folders, fail_start=self.fail_next > 0)
        self.fail_next = max(0, self.fail_next - 1)
        self.made.append(source)
        return source

    @property
    def last(self) -> FakeSource:
        return self.made[-1]


@attrs.define
class Checks:
    """Scripted answers: folders in `changed` have changes, `hierarchy_changed` too."""

    changed: set[str] = attrs.field(factory=set)
    hierarchy_changed: bool = False
    broken: bool = False
    #: When set, every check waits for it (checks in flight, then all done at once).
    gate: Deferred[None] | None = None
    calls: list[str] = attrs.field(factory=list)

    async def prepare(self, collections: list[Collection]) -> None:
        return None

    async def changed_(self, collection: Collection) -> bool:
        self.calls.append(collection.ref.backend_id)
        if self.gate is not None:
            await self.gate
        if self.broken:
            raise MailBackendUnavailable("IMAP down")
        return collection.ref.backend_id in self.changed

    async def hierarchy(self) -> bool:
        self.calls.append("<hierarchy>")
        return self.hierarchy_changed

    def for_ctx(self, ctx: Any) -> Any:
        return _ChecksView(self)


@attrs.define
class _ChecksView:
    owner: Checks

    async def prepare(self, collections: list[Collection]) -> None:
        return None

    async def changed(self, collection: Collection) -> bool:
        return await self.owner.changed_(collection)

    async def hierarchy(self) -> bool:
        return await self.owner.hierarchy()


def collection(cid: int, folder: str, kind: FolderKind = FolderKind.MAIL) -> Collection:
    return Collection(cid, FolderRef(kind, folder, folder, 12 if folder != "INBOX" else 2))


@attrs.define
class FakeState:
    """get_ping/put_ping/get_collection over dicts; every Deferred has already fired."""

    collections: dict[int, Collection] = attrs.field(factory=dict)
    pings: dict[tuple[str, str], PingParameters] = attrs.field(factory=dict)
    puts: int = 0

    def get_ping(self, user: str, device_id: str) -> Deferred[PingParameters | None]:
        return succeed(self.pings.get((user, device_id)))

    def put_ping(self, user: str, device_id: str, params: PingParameters) -> Deferred[None]:
        self.puts += 1
        self.pings[(user, device_id)] = params
        return succeed(None)

    def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[Collection | None]:
        return succeed(self.collections.get(collection_id))


@attrs.define
class World:
    clock: Clock
    hub: PushHub
    sources: Sources
    checks: Checks
    state: FakeState
    runtime: Runtime

    def ctx(self, device_id: str = "DEV1", command: str = "Ping") -> CommandContext:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        device = Device(USER, device_id, "Test", None, now, now)
        return CommandContext(
            runtime=self.runtime,
            command=command,
            credentials=CREDENTIALS,
            device=device,
            version=(14, 1),
            query=EasQuery(command, device_id, "Test"),
            headers={},
            body=b"",
            content_type=None,
            policy_key=None,
            request_id=1,
        )


@pytest.fixture
def world() -> World:
    clock = Clock()
    sources = Sources()
    checks = Checks()
    settings = PushSettings(bounds=HeartbeatBounds(60, 3540), max_folders=3, linger=30.0)
    hub = PushHub(clock, settings, {FolderKind.MAIL: sources.factory})
    hub.checks = checks.for_ctx
    state = FakeState(
        {
            1: collection(1, "INBOX"),
            2: collection(2, "Work"),
            3: collection(3, "Cal", FolderKind.CALENDAR),
        }
    )
    runtime = Runtime(clock=clock, auth=None, devices=None, state=state)  # type: ignore[arg-type]
    runtime.services["push"] = hub
    return World(clock, hub, sources, checks, state, runtime)
