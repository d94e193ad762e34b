"""FolderUpdate (MS-ASCMD 2.2.1.6): rename and/or move a folder; its collection id stays.

IMAP RENAME moves the subfolders too: their collection ids follow them (and their
subscriptions, see MailFolderSource.rename).  Statuses (2.2.3.177.6): 2 the name exists or
the folder is a default one, 3 recipient information cache, 4 unknown folder, 5 unknown (or
impossible) parent, 9 bad key, 10 malformed.
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
from opush.storage.interfaces import FolderRef
from opush.sync.hierarchy import (
    ROOT,
    SPECIAL_TYPES,
    Entry,
    FolderExists,
    FolderNotFound,
    FolderType,
    InvalidFolderName,
    ParentNotFound,
)

EXISTS_OR_SPECIAL: Final = 2
RECIPIENT_CACHE: Final = 3
NOT_FOUND: Final = 4
PARENT_NOT_FOUND: Final = 5


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    async with folder_session(ctx, request, "FolderUpdate", allow_zero=False) as session:
        if isinstance(session, CommandResult):
            return session
        assert request is not None
        return await _update(session, request)


async def _update(session: Session, request: _Element) -> CommandResult:
    server_id = required_int(request, "ServerId")
    parent_id = required_int(request, "ParentId")
    name = required(request, "DisplayName")
    base, hierarchy = session.base, session.hierarchy
    entry = base.get(server_id)
    if entry is None:
        raise EasStatusError(NOT_FOUND, message=f"no folder {server_id}")
    if entry.ref.folder_type == FolderType.RECIPIENT_INFORMATION_CACHE:
        raise EasStatusError(RECIPIENT_CACHE, message="the recipient cache cannot change")
    if entry.ref.folder_type in SPECIAL_TYPES or base.holds_special(server_id):
        # Renaming a parent would also rename a default folder below it (mail_conf.ini names
        # it by its full path), which would then stop being the default folder.
        raise EasStatusError(EXISTS_OR_SPECIAL, message=f"{server_id} is or holds a default folder")
    parent = base.get(parent_id) if parent_id != ROOT else None
    if parent_id != ROOT and (
        parent is None
        or parent.ref.kind is not entry.ref.kind
        or parent_id == server_id
        or parent_id in base.descendants(server_id)
    ):
        raise EasStatusError(PARENT_NOT_FOUND, message=f"{parent_id} cannot hold {server_id}")
    source = hierarchy.source(entry.ref.kind)
    if source is None:
        raise EasStatusError(NOT_FOUND, message=f"no {entry.ref.kind.value} backend")
    try:
        moved = await source.rename(entry.ref, parent.ref if parent else None, name)
    except FolderExists as e:
        raise EasStatusError(EXISTS_OR_SPECIAL, message=f"folder exists: {e}") from e
    except FolderNotFound as e:
        raise EasStatusError(NOT_FOUND, message=f"folder is gone: {e}") from e
    except ParentNotFound as e:
        raise EasStatusError(PARENT_NOT_FOUND, message=f"bad parent: {e}") from e
    except InvalidFolderName as e:
        raise EasStatusError(MALFORMED, message=f"invalid folder name {name!r}") from e

    kind = entry.ref.kind
    new_parent = parent.ref.backend_id if parent is not None else None

    def follow(collection_id: int, ref: FolderRef) -> FolderRef:
        """Where a folder that moved with the renamed one is now."""
        if collection_id == server_id:
            return attrs.evolve(
                ref,
                backend_id=moved[ref.backend_id],
                parent_backend_id=new_parent,
                display_name=name,
            )
        old_parent = ref.parent_backend_id
        return attrs.evolve(
            ref,
            backend_id=moved[ref.backend_id],
            parent_backend_id=None if old_parent is None else moved.get(old_parent, old_parent),
        )

    # Every collection of this device whose folder moved (known to the device or not) keeps
    # its id: Sync and the other commands find the folder under its new name.
    for collection in await hierarchy.state.list_collections(hierarchy.user, hierarchy.device_id):
        if collection.ref.kind is kind and collection.ref.backend_id in moved:
            await hierarchy.state.update_collection(
                hierarchy.user,
                hierarchy.device_id,
                collection.collection_id,
                follow(collection.collection_id, collection.ref),
            )
    updated = [
        Entry(c, parent_id if c == server_id else e.parent_id, follow(c, e.ref))
        for c, e in base.entries.items()
        if e.ref.kind is kind and e.ref.backend_id in moved
    ]
    snapshot = base.with_entries(updated)

    def answer(key: str) -> _Element:
        return element(
            "FolderUpdate", element("Status", text=SUCCESS), element("SyncKey", text=key)
        )

    return await session.commit(snapshot, answer)
