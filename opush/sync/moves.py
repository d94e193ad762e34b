"""MoveItems tells the engine what the device already did, so that the next Sync sends
neither a Delete in the source collection nor an Add in the destination (MS-ASCMD 2.2.1.12:
the device moves the item itself and learns its new ServerId from DstMsgId).

The current state of each collection is rewritten under the same key (the device has not
used a newer one): only the device's view changes, the cursor and the answer stay.
"""

from __future__ import annotations

from opush.storage.interfaces import StateStore, SyncState
from opush.sync.state import CollectionState


async def _edit(
    store: StateStore,
    user: str,
    device_id: str,
    collection_id: int,
    drop: str | None,
    hold: str | None,
) -> None:
    current = await store.current_sync_state(user, device_id, collection_id)
    if current is None:
        return
    try:
        st = CollectionState.from_json(current.data)
    except (ValueError, KeyError, TypeError):
        return
    if drop is not None:
        st.have.discard(drop)
        st.pending.pop(drop, None)
        st.aliases.pop(drop, None)
    if hold is not None:
        st.have.add(hold)
        st.pending.pop(hold, None)
    await store.put_sync_state(
        user,
        device_id,
        collection_id,
        SyncState(current.sync_key, st.to_json(), current.parent_key, current.response),
    )


async def record_move(
    store: StateStore,
    user: str,
    device_id: str,
    source_collection: int,
    source_uid: int,
    destination_collection: int | None,
    destination_uid: int | None,
) -> None:
    """The device moved ``source_collection:source_uid`` to ``destination_collection:
    destination_uid`` (None when the server did not say the new uid: the destination then
    gets it as an Add on its next Sync)."""
    await _edit(store, user, device_id, source_collection, str(source_uid), None)
    if destination_collection is not None and destination_uid is not None:
        await _edit(store, user, device_id, destination_collection, None, str(destination_uid))


async def backend_id(
    store: StateStore, user: str, device_id: str, collection_id: int, item_id: str
) -> str:
    """The backend's id of the item the device calls ``item_id``: a 16.x draft the device
    changed was replaced (new IMAP UID) while the device kept its ServerId
    (``CollectionState.aliases``)."""
    current = await store.current_sync_state(user, device_id, collection_id)
    if current is None:
        return item_id
    try:
        st = CollectionState.from_json(current.data)
    except (ValueError, KeyError, TypeError):
        return item_id
    return st.aliases.get(item_id, item_id)
