"""Cheap questions about a collection without answering a Sync (Ping, Sync Wait,
GetItemEstimate).  Nothing here writes state."""

from __future__ import annotations

from datetime import UTC, datetime

from opush.backends.interfaces import Credentials
from opush.runtime import Runtime
from opush.sync.engine import pending_estimate
from opush.sync.sources import source_for


async def estimate(
    runtime: Runtime,
    credentials: Credentials,
    user: str,
    device_id: str,
    collection_id: int,
    sync_key: str | None = None,
    filter_type: int | None = None,
) -> int | None:
    """Changes the next Sync would bring (pending window + new backend changes); None when
    the collection is unknown or ``sync_key`` is not its current key (None = any key)."""
    collection = await runtime.state.get_collection(user, device_id, collection_id)
    if collection is None:
        return None
    source = source_for(runtime, credentials, collection)
    if filter_type is not None and hasattr(source, "filter_type"):
        source.filter_type = filter_type  # Tasks FilterType 8 (MS-ASCMD 2.2.3.69.2)
    now = datetime.fromtimestamp(runtime.clock.seconds(), UTC)
    return await pending_estimate(
        runtime.state, user, device_id, collection_id, sync_key, source, now, filter_type
    )


async def has_changes(
    runtime: Runtime,
    credentials: Credentials,
    user: str,
    device_id: str,
    collection_id: int,
) -> bool:
    """Does the device have something to fetch in this collection since its current SyncKey?

    For Ping and Sync Wait.  One state read plus, for mail with QRESYNC, one IMAP STATUS
    when nothing changed.  A collection never synced (no state) counts as changed only if it
    has a state to compare with: False.  May raise BackendUnavailable."""
    count = await estimate(runtime, credentials, user, device_id, collection_id)
    return bool(count)
