"""Ping (MS-ASCMD 2.2.1.13): hold the request until a watched folder changes.

The device names folders and a heartbeat; the server answers when something changed
(Status 2 with the folders), when the heartbeat ends (Status 1), or at once when it cannot
wait (statuses below, MS-ASCMD 2.2.3.177.11):

- 3: no parameters and none remembered (both are cached per device, 3.1.5.8);
- 4: malformed request;
- 5: HeartbeatInterval outside push.heartbeat.min..max, the limit in HeartbeatInterval;
- 6: more than MaxFolders folders, the limit in MaxFolders (2.2.3.102);
- 7: the folder hierarchy changed since the last FolderSync, or a folder is unknown.

A newer request of the same device ends a waiting Ping at once (`ctx.interrupted`); it
answers Status 1 then (the device will Ping again or is busy syncing).  The waiting itself
is `opush.push.wait.wait_for_changes`.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.log import logger
from opush.push.heartbeat import HeartbeatOutOfRange
from opush.push.wait import CHANGES, HIERARCHY, get_hub, wait_for_changes
from opush.storage.interfaces import Collection, PingFolder, PingParameters
from opush.wbxml import E, ns

log = logger("opush.push")

NS = ns.PING

EXPIRED = 1
CHANGES_FOUND = 2
MISSING_PARAMETERS = 3
SYNTAX_ERROR = 4
HEARTBEAT_OUT_OF_RANGE = 5
TOO_MANY_FOLDERS = 6
HIERARCHY_CHANGED = 7


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _answer(status: int, *children: _Element) -> CommandResult:
    return CommandResult.wbxml(E(NS, "Ping", E(NS, "Status", text=status), *children))


class _BadRequest(Exception):
    pass


def _int(el: _Element) -> int:
    text = (el.text or "").strip()
    if not text.isdigit():
        raise _BadRequest(f"{el.tag}: not a number: {text!r}")
    return int(text)


def parse_request(
    request: _Element | None,
) -> tuple[int | None, tuple[PingFolder, ...] | None, list[str]]:
    """(HeartbeatInterval, Folders, raw folder ids) as sent; None for what was omitted.
    Raises _BadRequest for a malformed body."""
    if request is None:
        return None, None, []
    if request.tag != _q("Ping"):
        raise _BadRequest(f"root element {request.tag}")
    heartbeat: int | None = None
    folders: tuple[PingFolder, ...] | None = None
    ids: list[str] = []
    for child in request:
        if child.tag == _q("HeartbeatInterval"):
            heartbeat = _int(child)
        elif child.tag == _q("Folders"):
            items: list[PingFolder] = []
            for folder in child:
                if folder.tag != _q("Folder"):
                    raise _BadRequest(f"unexpected {folder.tag} in Folders")
                id_el = folder.find(_q("Id"))
                class_el = folder.find(_q("Class"))
                folder_id = (id_el.text or "").strip() if id_el is not None else ""
                if not folder_id:
                    raise _BadRequest("Folder without Id")
                ids.append(folder_id)
                folder_class = (class_el.text or "").strip() if class_el is not None else ""
                # Ids are our small integers; anything else is a stale or foreign id (7).
                items.append(
                    PingFolder(int(folder_id) if folder_id.isdigit() else -1, folder_class)
                )
            if not items:
                raise _BadRequest("empty Folders")
            folders = tuple(items)
    return heartbeat, folders, ids


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    hub = get_hub(ctx.runtime)
    settings = hub.settings
    user, device_id = ctx.device.user, ctx.device.device_id
    try:
        heartbeat, folders, _ = parse_request(request)
    except _BadRequest as exc:
        log.info("Ping from {device}: {error}", device=device_id, error=exc)
        return _answer(SYNTAX_ERROR)

    # Folder count and interval are checked before anything is remembered (3.1.5.8).
    if folders is not None:
        unique = tuple(dict.fromkeys(folders))
        if len(unique) > settings.max_folders:
            return _answer(TOO_MANY_FOLDERS, E(NS, "MaxFolders", text=settings.max_folders))
        folders = unique
    if heartbeat is not None:
        try:
            settings.bounds.check(heartbeat)
        except HeartbeatOutOfRange as exc:
            return _answer(HEARTBEAT_OUT_OF_RANGE, E(NS, "HeartbeatInterval", text=exc.limit))

    cached = await ctx.runtime.state.get_ping(user, device_id)
    if heartbeat is None and cached is not None:
        # Remembered under other bounds maybe: keep it inside today's.
        heartbeat = min(
            max(cached.heartbeat_interval, settings.bounds.minimum), settings.bounds.maximum
        )
    if folders is None and cached is not None:
        folders = cached.folders
    if heartbeat is None or not folders:
        return _answer(MISSING_PARAMETERS)
    params = PingParameters(heartbeat_interval=heartbeat, folders=folders)
    if cached != params:
        await ctx.runtime.state.put_ping(user, device_id, params)

    collections = await _collections(ctx, folders)
    if collections is None:
        return _answer(HIERARCHY_CHANGED)

    started = ctx.runtime.clock.seconds()
    result = await wait_for_changes(ctx, collections, float(heartbeat), hierarchy=True)
    log.debug(
        "Ping of {device} ended after {seconds:.1f}s: {reason} {changed}",
        device=device_id,
        seconds=ctx.runtime.clock.seconds() - started,
        reason=result.reason,
        changed=list(result.changed),
    )
    if result.reason == HIERARCHY:
        return _answer(HIERARCHY_CHANGED)
    if result.reason == CHANGES:
        return _answer(
            CHANGES_FOUND,
            E(NS, "Folders", *(E(NS, "Folder", text=str(cid)) for cid in result.changed)),
        )
    return _answer(EXPIRED)


async def _collections(
    ctx: CommandContext, folders: Sequence[PingFolder]
) -> list[Collection] | None:
    """The collections named by the Ping; None if one is unknown (Status 7: the device's
    hierarchy is out of date)."""
    out: list[Collection] = []
    for folder in folders:
        if folder.collection_id < 1:
            return None
        collection = await ctx.runtime.state.get_collection(
            ctx.device.user, ctx.device.device_id, folder.collection_id
        )
        if collection is None:
            return None
        out.append(collection)
    return out
