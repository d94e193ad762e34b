"""FolderDelete (MS-ASCMD 2.2.1.4): delete a folder and its subfolders, and their sync state.

Statuses (2.2.3.177.4): 3 a default folder, 4 unknown folder, 9 bad key, 10 malformed.
"""

from __future__ import annotations

from typing import Final

from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.commands.folders import SUCCESS, Session, element, folder_session, required_int
from opush.http.errors import EasStatusError
from opush.sync.hierarchy import SPECIAL_TYPES, FolderNotFound

SPECIAL: Final = 3
NOT_FOUND: Final = 4


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    async with folder_session(ctx, request, "FolderDelete", allow_zero=False) as session:
        if isinstance(session, CommandResult):
            return session
        assert request is not None
        return await _delete(session, request)


async def _delete(session: Session, request: _Element) -> CommandResult:
    server_id = required_int(request, "ServerId")
    base, hierarchy = session.base, session.hierarchy
    entry = base.get(server_id)
    if entry is None:
        raise EasStatusError(NOT_FOUND, message=f"no folder {server_id}")
    if entry.ref.folder_type in SPECIAL_TYPES or base.holds_special(server_id):
        # A default folder may live below a user folder (mail_conf.ini imap.mailbox.trash =
        # Work/Trash): deleting the parent would delete it too.
        raise EasStatusError(SPECIAL, message=f"{server_id} is or holds a default folder")
    source = hierarchy.source(entry.ref.kind)
    if source is None:
        raise EasStatusError(NOT_FOUND, message=f"no {entry.ref.kind.value} backend")
    try:
        removed = set(await source.delete(entry.ref))
    except FolderNotFound as e:
        raise EasStatusError(NOT_FOUND, message=f"folder is gone: {e}") from e
    kind = entry.ref.kind
    for collection in await hierarchy.state.list_collections(hierarchy.user, hierarchy.device_id):
        if collection.ref.kind is kind and collection.ref.backend_id in removed:
            await hierarchy.state.delete_collection(
                hierarchy.user, hierarchy.device_id, collection.collection_id
            )
    dropped = {server_id, *base.descendants(server_id)}
    dropped.update(
        c for c, e in base.entries.items() if e.ref.kind is kind and e.ref.backend_id in removed
    )
    snapshot = base.without(dropped)

    def answer(key: str) -> _Element:
        return element(
            "FolderDelete", element("Status", text=SUCCESS), element("SyncKey", text=key)
        )

    return await session.commit(snapshot, answer)
