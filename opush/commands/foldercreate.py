"""FolderCreate (MS-ASCMD 2.2.1.3): a new folder under a folder the device knows.

Mail only for now (IMAP CREATE + SUBSCRIBE, Opush OP-193; an existing but unsubscribed folder
is subscribed, OP-233).  Statuses (2.2.3.177.3): 2 the name exists, 3 the parent is the
recipient information cache, 5 the parent is unknown, 9 bad key, 10 malformed request or a
type/name this server cannot create.
"""

from __future__ import annotations

from typing import Final

import attrs
from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.commands.folders import (
    MALFORMED,
    SUCCESS,
    Session,
    element,
    folder_session,
    required,
    required_int,
)
from opush.http.errors import EasStatusError
from opush.sync.hierarchy import (
    ROOT,
    Entry,
    FolderExists,
    FolderType,
    InvalidFolderName,
    ParentNotFound,
)

EXISTS: Final = 2
SPECIAL_PARENT: Final = 3
PARENT_NOT_FOUND: Final = 5


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    async with folder_session(ctx, request, "FolderCreate", allow_zero=False) as session:
        if isinstance(session, CommandResult):
            return session
        assert request is not None
        return await _create(session, request)


async def _create(session: Session, request: _Element) -> CommandResult:
    parent_id = required_int(request, "ParentId")
    name = required(request, "DisplayName")
    folder_type = required_int(request, "Type")
    hierarchy = session.hierarchy
    parent = session.base.get(parent_id) if parent_id != ROOT else None
    if parent_id != ROOT and parent is None:
        raise EasStatusError(PARENT_NOT_FOUND, message=f"no folder {parent_id}")
    if parent is not None and parent.ref.folder_type == FolderType.RECIPIENT_INFORMATION_CACHE:
        raise EasStatusError(SPECIAL_PARENT, message="parent is the recipient cache")
    source = hierarchy.source_creating(folder_type)
    if source is None:
        raise EasStatusError(MALFORMED, message=f"cannot create folders of type {folder_type}")
    if parent is not None and parent.ref.kind is not source.kind:
        raise EasStatusError(
            PARENT_NOT_FOUND, message=f"a type {folder_type} folder cannot go in {parent_id}"
        )
    try:
        ref = await source.create(parent.ref if parent else None, name, folder_type)
    except FolderExists as e:
        raise EasStatusError(EXISTS, message=f"folder exists: {e}") from e
    except ParentNotFound as e:
        raise EasStatusError(PARENT_NOT_FOUND, message=f"parent is gone: {e}") from e
    except InvalidFolderName as e:
        raise EasStatusError(MALFORMED, message=f"invalid folder name {name!r}") from e
    known = await hierarchy.state.find_collection(
        hierarchy.user, hierarchy.device_id, ref.kind, ref.backend_id
    )
    collection_id = await hierarchy.state.allocate_collection(
        hierarchy.user, hierarchy.device_id, ref
    )
    if known is not None and known.ref != ref:
        await hierarchy.state.update_collection(
            hierarchy.user, hierarchy.device_id, collection_id, ref
        )
    # The snapshot records what the device now believes (the type it asked for); if the
    # backend files the folder differently, the next FolderSync corrects it with an Update.
    believed = attrs.evolve(ref, folder_type=folder_type)
    snapshot = session.base.with_entries([Entry(collection_id, parent_id, believed)])

    def answer(key: str) -> _Element:
        return element(
            "FolderCreate",
            element("Status", text=SUCCESS),
            element("SyncKey", text=key),
            element("ServerId", text=collection_id),
        )

    return await session.commit(snapshot, answer)
