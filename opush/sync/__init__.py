"""The type-agnostic sync engine: sync keys, the device's view, windows, client commands.

Public API (stable; other commands rely on it):

- ServerIds: :func:`server_id`, :func:`parse_server_id`, :func:`parse_mail_server_id`,
  :class:`InvalidServerId` (``"collectionId:itemId"``, mail item id = IMAP UID).
- Backends implement :class:`ItemSource` (``opush.sync.interfaces``); mail's is
  ``opush.backends.mailsource.MailItemSource``.
- Engine: ``opush.sync.engine`` (used by the Sync and GetItemEstimate commands).
- Push: ``opush.sync.probe.has_changes(runtime, credentials, user, device_id,
  collection_id)`` -> bool: does this collection have something to send for the device's
  current SyncKey (pending window or new backend changes)?  Cheap (one IMAP STATUS when
  nothing changed).
- MoveItems: ``opush.sync.moves.record_move(state, user, device_id, src_collection,
  src_uid, dst_collection, dst_uid)`` tells the engine the device already moved a mail.
"""

from opush.sync.ids import (
    IdSet,
    InvalidServerId,
    parse_mail_server_id,
    parse_server_id,
    server_id,
)
from opush.sync.interfaces import (
    ClientChangeResult,
    ItemSource,
    RenderRequest,
    SourceChanges,
    SourceItem,
)

__all__ = [
    "ClientChangeResult",
    "IdSet",
    "InvalidServerId",
    "ItemSource",
    "RenderRequest",
    "SourceChanges",
    "SourceItem",
    "parse_mail_server_id",
    "parse_server_id",
    "server_id",
]
