"""Confirming a wake-up before a device is woken (no Status 2 for nothing).

A hint from a watcher only says "this folder may have changed".  Before a Ping answers
Status 2 (or a hanging Sync answers), the collection is checked against the device's sync
state: the sync engine's ``opush.sync.probe.has_changes`` (pending window, or backend changes
since the device's current SyncKey; MS-ASCMD 3.1.5.8: "the server uses the last SyncKey
returned to the client").  The hierarchy is checked with
``opush.sync.hierarchy.hierarchy_changed`` (did it change since the device's last FolderSync,
Status 7).

While the engine's probe is not available, `BaselineChecks` compares each folder's IMAP
STATUS with its value when the wait began: never a false wake-up, but changes made before
the Ping are left to the device's next Sync.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from opush.backends.interfaces import MailboxNotFound
from opush.storage.interfaces import Collection, FolderKind

if TYPE_CHECKING:
    from opush.commands.context import CommandContext


class WakeChecks(Protocol):
    async def prepare(self, collections: list[Collection]) -> None:
        """Called once before the first check (baselines)."""
        ...

    async def changed(self, collection: Collection) -> bool:
        """Does the device have something to fetch in this collection?"""
        ...

    async def hierarchy(self) -> bool:
        """Did the folder hierarchy change since the device's last FolderSync?"""
        ...


class EngineChecks:
    """The sync engine's and the hierarchy code's own answers."""

    def __init__(self, ctx: CommandContext, probe: Any, hub: Any = None) -> None:
        self.ctx = ctx
        self.probe = probe
        self.hub = hub

    async def prepare(self, collections: list[Collection]) -> None:
        return None

    async def changed(self, collection: Collection) -> bool:
        ctx = self.ctx
        return bool(
            await self.probe(
                ctx.runtime,
                ctx.credentials,
                ctx.device.user,
                ctx.device.device_id,
                collection.collection_id,
            )
        )

    async def hierarchy(self) -> bool:
        return await hierarchy_changed(self.ctx, self.hub)


class BaselineChecks:
    """Fallback without the engine's probe: STATUS now vs STATUS when the wait began."""

    def __init__(self, ctx: CommandContext) -> None:
        self.ctx = ctx
        self.baseline: dict[str, tuple[object, ...] | None] = {}

    async def _status(self, folder: str) -> tuple[object, ...] | None:
        try:
            st = await self.ctx.mail_store().status(folder)
        except MailboxNotFound:
            return None
        return (st.uidvalidity, st.uidnext, st.messages, st.highestmodseq)

    async def prepare(self, collections: list[Collection]) -> None:
        if self.ctx.runtime.mail is None:
            return
        for c in collections:
            if c.ref.kind is FolderKind.MAIL and c.ref.backend_id not in self.baseline:
                self.baseline[c.ref.backend_id] = await self._status(c.ref.backend_id)

    async def changed(self, collection: Collection) -> bool:
        folder = collection.ref.backend_id
        if collection.ref.kind is not FolderKind.MAIL or folder not in self.baseline:
            return False
        return await self._status(folder) != self.baseline[folder]

    async def hierarchy(self) -> bool:
        return await hierarchy_changed(self.ctx)


class _CachedSource:
    """A FolderSource whose listing comes from the hub while the user's watcher is live."""

    def __init__(self, source: Any, hub: Any, user: str) -> None:
        self.source = source
        self.hub = hub
        self.user = user
        self.kind = source.kind

    async def list_folders(self) -> Any:
        cached, generation = self.hub.listing(self.user, self.kind)
        if cached is not None:
            return cached
        listing = await self.source.list_folders()
        self.hub.remember_listing(self.user, self.kind, listing, generation)
        return listing

    async def close(self) -> None:
        close = getattr(self.source, "close", None)
        if close is not None:
            await close()


async def hierarchy_changed(ctx: CommandContext, hub: Any = None) -> bool:
    """``opush.sync.hierarchy``'s answer (the device's last FolderSync state against the
    backends' listing), the listing shared per user while push watches that user."""
    from opush.sync.hierarchy import Hierarchy, close_sources, for_version, sources_for

    user = ctx.device.user
    sources: list[Any] = sources_for(ctx.runtime, ctx.credentials)
    if hub is not None:
        # The hub's listing is shared by the user's devices: filter after it, per version.
        sources = [_CachedSource(s, hub, user) for s in sources]
    sources = for_version(sources, ctx.version)
    hierarchy = Hierarchy(ctx.runtime.state, user, ctx.device.device_id, sources)
    try:
        return bool(await hierarchy.changed_since())
    finally:
        await close_sources(sources)


def engine_checks(ctx: CommandContext) -> WakeChecks:
    """The engine's probe when present, else the STATUS baseline."""
    try:
        from opush.sync import probe
    except ImportError:
        return BaselineChecks(ctx)
    return EngineChecks(ctx, probe.has_changes, ctx.runtime.services.get("push"))
