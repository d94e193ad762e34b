"""What the type-agnostic sync engine needs from a backend: an `ItemSource` per collection.

The engine (``opush.sync.engine``) owns sync keys, the device's view (which item ids it
holds), the pending window, remembered Options and FilterType.  A source only answers
"what changed since this cursor" and converts items both ways.  Mail implements it in
``opush.backends.mailsource`` (IMAP UIDs as item ids); calendars and contacts will add theirs.

Item ids are strings (``"42"`` for IMAP UID 42); the device sees ``collectionId:itemId``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import attrs
from lxml.etree import _Element

#: A JSON object a source keeps in the engine's state between syncs (its cursor).
Json = Mapping[str, Any]


@attrs.frozen
class SourceItem:
    """An item that is new or changed since the cursor.

    ``date`` lets the engine apply FilterType (mail: INTERNALDATE; None = always in range).
    """

    item_id: str
    date: datetime | None = None


@attrs.frozen
class SourceChanges:
    """Answer of `ItemSource.changes`.

    ``complete``: ``changed`` lists EVERY item of the collection (a first listing, or after a
    reset); ids the device holds that are not listed are gone.
    ``reset``: the old cursor is void (IMAP UIDVALIDITY changed): ids the device holds mean
    nothing any more; the engine answers Status 3 and the device starts again from SyncKey 0.
    """

    cursor: Json
    changed: tuple[SourceItem, ...] = ()
    gone: frozenset[str] = frozenset()
    complete: bool = False
    reset: bool = False


@attrs.frozen
class RenderRequest:
    """How the device wants items shaped (from the collection's Options, remembered)."""

    collection_id: int
    version: tuple[int, int]
    #: The collection's Options elements (AirSync:Options), [] for none.
    options: Sequence[_Element] = ()


@attrs.frozen
class ClientChangeResult:
    """What applying one client Add/Change did: MS-ASCMD Sync per-command Status (1 ok, 6
    error in client/server conversion, 7 conflict, 8 object not found...); ``item_id`` for
    an Add."""

    status: int
    item_id: str | None = None
    #: (attachment ClientId, FileReference) of attachments the request added (16.x drafts,
    #: MS-ASAIRS 2.2.2.14): answered in the Add/Change response's ApplicationData.
    attachments: tuple[tuple[str, str], ...] = ()


class ItemSource(Protocol):
    """One collection of one user's data, seen by the sync engine.

    Every method may raise ``opush.backends.interfaces.BackendUnavailable`` (the Sync is then
    answered with a retryable status and no state advances).
    """

    #: The EAS Class of the items (Email, Calendar, Contacts, Tasks).
    item_class: str
    # Optional ``exact_changes = True``: ``changes`` never reports the engine's own writes
    # later on, so an item changed on both sides is a real conflict (server wins, Status 7).
    # Optional ``async send_item(item_id) -> bool`` for 16.x email2:Send on a draft
    # Add/Change (MS-ASEMAIL 2.2.2.69): submit it and file it in Sent Items; True when the
    # item left the collection (the device then gets its Delete).
    # Optional ``async apply_occurrence(item_id, instance_id, data | None, request) ->
    # ClientChangeResult`` for items that recur (calendars): a 16.x Change (``data``) or
    # Delete (None) of the one occurrence that ``instance_id`` (MS-ASAIRS 2.2.2.25) names.

    async def changes(self, cursor: Json | None) -> SourceChanges:
        """What changed since ``cursor``; None = list everything (``complete`` result).

        Must cost O(changes) when the backend can (IMAP QRESYNC), and be cheap when nothing
        changed: Sync without changes and Ping call it every time."""
        ...

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        """ApplicationData children per item id; ids that no longer exist are left out."""
        ...

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        """A client Change (``data`` is the ApplicationData element)."""
        ...

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        """A client Add; the result carries the new item id (status 1) or the failure."""
        ...

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        """Client Deletes (MS-ASCMD DeletesAsMoves: ``move_to_trash``); ids already gone are
        not an error."""
        ...
