"""FolderSync (MS-ASCMD 2.2.1.5): the device's folder hierarchy and its changes.

SyncKey 0 lists everything as Adds; a known key gets the Adds/Updates/Deletes since the
snapshot it names, and a new key (the same key when nothing changed); an unknown key gets
Status 9, after which the device starts again from 0 (2.2.3.177.5).  Collection ids stay the
same for a user+device across resets and renames.
"""

from __future__ import annotations

from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.commands.folders import SUCCESS, Session, element, folder_session
from opush.sync.hierarchy import Changes, Entry, diff


def _folder(tag: str, entry: Entry) -> _Element:
    return element(
        tag,
        element("ServerId", text=entry.collection_id),
        element("ParentId", text=entry.parent_id),
        element("DisplayName", text=entry.ref.display_name),
        element("Type", text=entry.ref.folder_type),
    )


def answer(key: str, changes: Changes) -> _Element:
    """<FolderSync> with Status, SyncKey and Changes (Count first, 2.2.3.28.1)."""
    listed = element("Changes", element("Count", text=len(changes)))
    for entry in changes.adds:
        listed.append(_folder("Add", entry))
    for entry in changes.updates:
        listed.append(_folder("Update", entry))
    for collection_id in changes.deletes:
        listed.append(element("Delete", element("ServerId", text=collection_id)))
    return element(
        "FolderSync", element("Status", text=SUCCESS), element("SyncKey", text=key), listed
    )


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    async with folder_session(ctx, request, "FolderSync", allow_zero=True) as session:
        if isinstance(session, CommandResult):
            return session
        return await _sync(session)


async def _sync(session: Session) -> CommandResult:
    hierarchy = session.hierarchy
    refs = await hierarchy.listing()
    current = await hierarchy.snapshot(refs)
    await hierarchy.forget_missing(refs)
    changes = diff(session.base, current)
    if (
        session.key != "0"
        and session.key == session.current_key
        and not changes
        and session.base.refs() == current.refs()
    ):
        # Nothing new: keep the key, store nothing (a Ping-driven FolderSync costs one LIST).
        return CommandResult.wbxml(answer(session.key, changes))
    return await session.commit(current, lambda key: answer(key, changes))
