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
    if entry.ref.folder_type in SPECIAL_TYPES:
        raise EasStatusError(EXISTS_OR_SPECIAL, message=f"{server_id} is a default folder")
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
    new_parent_backend = parent.ref.backend_id if parent is not None else None

    def follow(
        collection_id: int, ref_backend: str, ref_parent: str | None
    ) -> tuple[str, str | None]:
        if collection_id == server_id:
            return moved[entry.ref.backend_id], new_parent_backend
        parent_backend = moved.get(ref_parent, ref_parent) if ref_parent is not None else None
        return moved[ref_backend], parent_backend

    # Every collection of this device whose folder moved (known to the device or not).
    for collection in await hierarchy.state.list_collections(hierarchy.user, hierarchy.device_id):
        ref = collection.ref
        if ref.kind is not kind or ref.backend_id not in moved:
            continue
        backend, parent_backend = follow(
            collection.collection_id, ref.backend_id, ref.parent_backend_id
        )
        changed = attrs.evolve(ref, backend_id=backend, parent_backend_id=parent_backend)
        if collection.collection_id == server_id:
            changed = attrs.evolve(changed, display_name=name)
        await hierarchy.state.update_collection(
            hierarchy.user, hierarchy.device_id, collection.collection_id, changed
        )
    updated: list[Entry] = []
    for known in base.entries.values():
        ref = known.ref
        if ref.kind is not kind or ref.backend_id not in moved:
            continue
        backend, parent_backend = follow(known.collection_id, ref.backend_id, ref.parent_backend_id)
        changed = attrs.evolve(ref, backend_id=backend, parent_backend_id=parent_backend)
        if known.collection_id == server_id:
            changed = attrs.evolve(changed, display_name=name)
            updated.append(Entry(server_id, parent_id, changed))
        else:
            updated.append(attrs.evolve(known, ref=changed))
    snapshot = base.with_entries(updated)

    def answer(key: str) -> _Element:
        return element(
            "FolderUpdate", element("Status", text=SUCCESS), element("SyncKey", text=key)
        )

    return await session.commit(snapshot, answer)
