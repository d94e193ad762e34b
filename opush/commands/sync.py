"""Sync (MS-ASCMD 2.2.1.21): the request is parsed here, each collection goes through
``opush.sync.engine`` with the collection's `ItemSource`.

- Collection WindowSize, else the request's, else opush.ini ``window-size``, capped by
  ``window-size.max`` (OP-177) and 512 (MS-ASCMD 2.2.3.199).
- Options omitted = the remembered ones (OP-135); FilterType change handled by the engine.
- Unknown CollectionId: Status 12 "folder hierarchy changed" (MS-ASCMD 2.2.3.177.17: the
  device runs FolderSync); unknown SyncKey: Status 3.
- The IMAP server dropping mid-Sync: top-level Status 16 "Retry" (2.2.3.177.17), and no state
  of that collection advanced (states are written at the end of each collection, before
  the answer is sent).
- Empty body or Partial (MS-ASCMD 2.2.1.21.1, 2.2.3.131): the last complete request of the
  device is reused (merged with a Partial one), at the collections' current SyncKeys; with no
  cached request, Status 13. (The Java server always answered 13: iOS and Windows Phone send
  such Syncs routinely.)
- Wait (minutes, 1..59) / HeartbeatInterval (seconds, 60..3540): invalid -> Status 14 with
  Limit (2.2.3.97); otherwise, when nothing is to be sent, the push component's waiter
  ``runtime.services["sync_wait"](ctx, collection_ids, seconds) -> awaitable bool`` is asked
  to wait for changes (or the request's interruption); with nothing new at the end the answer
  is an empty body (2.2.3.198: "the server sends an empty response").
- SUMMARY.IN / SUMMARY.OUT and BREAKDOWN lines are written for every Sync (guide 12.3, 12.4).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from copy import deepcopy
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import BackendUnavailable, MailboxNotFound, MailError
from opush.commands.context import CommandContext, CommandResult
from opush.http.errors import EasStatusError
from opush.log import Breakdown, format_summary, logger
from opush.push.heartbeat import (
    HeartbeatBounds,
    HeartbeatOutOfRange,
    WaitAndHeartbeat,
    sync_wait_seconds,
)
from opush.storage.interfaces import HIERARCHY, MappingKind, StorageError
from opush.sync.engine import (
    HIERARCHY_CHANGED,
    INCOMPLETE,
    INVALID_WAIT,
    PROTOCOL_ERROR,
    RETRY,
    SERVER_ERROR,
    ClientCommand,
    CollectionRequest,
    Summary,
    SyncEngine,
    load_state,
    window_size,
)
from opush.sync.sources import CLASSES, source_for
from opush.wbxml import E, ns

log = logger("opush.commands.sync")
log_in = logger("SUMMARY.IN")
log_out = logger("SUMMARY.OUT")
log_breakdown = logger("BREAKDOWN")

AIRSYNC = ns.AIRSYNC

MAX_COLLECTIONS = 1000


def _local(el: _Element) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(el: _Element | None, name: str) -> _Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c) == name:
            return c
    return None


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


def _int(el: _Element | None) -> int | None:
    text = _text(el)
    if text is None or not text.lstrip("-").isdigit():
        return None
    return int(text)


def _settings(ctx: CommandContext) -> tuple[int, int | None]:
    section = getattr(ctx.runtime.config, "opush", None)
    default = getattr(section, "window_size", None) or 50
    maximum = getattr(section, "window_size_max", None)
    return int(default), int(maximum) if maximum else None


def parse_commands(commands: _Element | None) -> list[ClientCommand]:
    out: list[ClientCommand] = []
    if commands is None:
        return out
    for cmd in commands:
        kind = _local(cmd)
        if not kind:
            continue
        out.append(
            ClientCommand(
                kind=kind,
                server_id=_text(_child(cmd, "ServerId")),
                client_id=_text(_child(cmd, "ClientId")),
                data=_child(cmd, "ApplicationData"),
                item_class=_text(_child(cmd, "Class")),
                # MS-ASAIRS 2.2.2.25 (16.0+): a Change or Delete of one occurrence.
                instance_id=_text(_child(cmd, "InstanceId")),
                send=_child(cmd, "Send") is not None,
            )
        )
    return out


def parse_collection(
    el: _Element, request_window: int | None, default: int, maximum: int | None
) -> tuple[CollectionRequest | None, str | None, str]:
    """(request, None, class) or (None, collection id text, class) when unusable."""
    cid_text = _text(_child(el, "CollectionId")) or ""
    key = _text(_child(el, "SyncKey"))
    item_class = _text(_child(el, "Class")) or "Email"
    if not cid_text.isdigit() or key is None or not key:
        return None, cid_text, item_class
    options = [c for c in el if _local(c) == "Options"]
    filter_type: int | None = None
    conflict: int | None = None
    for opt in options:
        f = _int(_child(opt, "FilterType"))
        if f is not None:
            filter_type = f
        c = _int(_child(opt, "Conflict"))
        if c is not None:
            conflict = c
    get_changes_el = _child(el, "GetChanges")
    if get_changes_el is None:
        # 2.2.3.84: omitted = 1, except with SyncKey 0.
        get_changes = key != "0"
    else:
        get_changes = _text(get_changes_el) in (None, "", "1")
    dam = _child(el, "DeletesAsMoves")
    deletes_as_moves = dam is None or _text(dam) in (None, "", "1")
    supported_el = _child(el, "Supported")
    supported = (
        tuple(sorted({c.tag for c in supported_el if isinstance(c.tag, str)}))
        if supported_el is not None
        else None
    )
    return (
        CollectionRequest(
            collection_id=int(cid_text),
            sync_key=key,
            window_size=window_size(
                _int(_child(el, "WindowSize")), request_window, default, maximum
            ),
            get_changes=get_changes,
            options=options or None,
            filter_type=filter_type if options else None,
            conflict=conflict,
            deletes_as_moves=deletes_as_moves,
            commands=parse_commands(_child(el, "Commands")),
            supported=supported,
            fingerprint=hashlib.sha256(etree.tostring(el)).hexdigest()[:32],
        ),
        None,
        item_class,
    )


def _limit_error(status: int, limit: int) -> CommandResult:
    return CommandResult.wbxml(
        E(AIRSYNC, "Sync", E(AIRSYNC, "Status", text=status), E(AIRSYNC, "Limit", text=limit))
    )


def _status_collection(
    cid: str, key: str | None, status: int, item_class: str, version: tuple[int, int]
) -> _Element:
    el = E(AIRSYNC, "Collection")
    if version < (14, 0):
        el.append(E(AIRSYNC, "Class", text=item_class))
    el.append(E(AIRSYNC, "SyncKey", text=key or "0"))
    el.append(E(AIRSYNC, "CollectionId", text=cid))
    el.append(E(AIRSYNC, "Status", text=status))
    return el


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    breakdown = Breakdown(now=ctx.runtime.clock.seconds)
    summary_in = Summary()
    summary_out = Summary()
    try:
        with breakdown.measure():
            return await _handle(ctx, request, summary_in, summary_out)
    finally:
        log_in.info("{summary}", summary=format_summary(*_counts(summary_in)))
        log_out.info("{summary}", summary=format_summary(*_counts(summary_out)))
        log_breakdown.info("{breakdown}", breakdown=breakdown.render())


_CACHE_KEY = "last"


async def _complete_request(ctx: CommandContext, request: _Element | None) -> _Element:
    """The request to run: a complete one is cached (without its client Commands) for later
    empty or Partial Syncs; an empty or Partial one is completed from that cache, with each
    cached collection's SyncKey replaced by the collection's current key."""
    state = ctx.runtime.state
    user, device_id = ctx.device.user, ctx.device.device_id
    if request is not None and _local(request) != "Sync":
        raise EasStatusError(INCOMPLETE, message="Sync request without a Sync root")
    partial = request is not None and _child(request, "Partial") is not None
    if request is not None and not partial:
        await state.put_mapping(
            user, device_id, HIERARCHY, MappingKind.SYNC_REQUEST, _CACHE_KEY, _cacheable(request)
        )
        return request
    raw = await state.get_mapping(user, device_id, HIERARCHY, MappingKind.SYNC_REQUEST, _CACHE_KEY)
    if not raw:
        raise EasStatusError(INCOMPLETE, message="empty or partial Sync and no cached request")
    cached = etree.fromstring(raw.encode("utf-8"))
    cached_collections = _child(cached, "Collections")
    if cached_collections is not None:
        for collection in cached_collections:
            cid = _int(_child(collection, "CollectionId"))
            key = _child(collection, "SyncKey")
            if cid is None or key is None:
                continue
            current = await state.current_sync_state(user, device_id, cid)
            if current is not None:
                key.text = current.sync_key
    if request is None:
        return cached
    # Partial: the request's elements win; its collections replace or add to the cached ones.
    for element in request:
        name = _local(element)
        if name == "Partial":
            continue
        if name == "Collections":
            if cached_collections is None:
                cached.append(element)
                continue
            by_id = {_int(_child(c, "CollectionId")): c for c in cached_collections}
            for collection in list(element):
                old = by_id.get(_int(_child(collection, "CollectionId")))
                if old is not None:
                    cached_collections.replace(old, collection)
                else:
                    cached_collections.append(collection)
            continue
        existing = _child(cached, name)
        if existing is not None:
            cached.replace(existing, element)
        else:
            cached.append(element)
    await state.put_mapping(
        user, device_id, HIERARCHY, MappingKind.SYNC_REQUEST, _CACHE_KEY, _cacheable(cached)
    )
    return cached


def _cacheable(request: _Element) -> str:
    """The request without client Commands (never replayed) as XML text."""
    copy = deepcopy(request)
    for collection in copy.iter(f"{{{AIRSYNC}}}Collection"):
        for commands in collection.findall(f"{{{AIRSYNC}}}Commands"):
            collection.remove(commands)
    return etree.tostring(copy, encoding="unicode")


def _counts(s: Summary) -> tuple[int, int, int]:
    return s.change, s.delete, s.fetch


async def _handle(
    ctx: CommandContext,
    request: _Element | None,
    summary_in: Summary,
    summary_out: Summary,
) -> CommandResult:
    request = await _complete_request(ctx, request)
    wait = _int(_child(request, "Wait"))
    heartbeat = _int(_child(request, "HeartbeatInterval"))
    try:
        # Bounds from opush.ini push.heartbeat.min/max within MS-ASCMD's 1..59 min / 60..3540 s.
        seconds = sync_wait_seconds(
            wait, heartbeat, HeartbeatBounds.from_config(ctx.runtime.config)
        )
    except WaitAndHeartbeat as e:
        raise EasStatusError(PROTOCOL_ERROR, message=str(e)) from e
    except HeartbeatOutOfRange as e:
        return _limit_error(INVALID_WAIT, e.limit)
    collections_el = _child(request, "Collections")
    if collections_el is None:
        raise EasStatusError(INCOMPLETE, message="Sync without Collections")
    items = [c for c in collections_el if _local(c) == "Collection"]
    if len(items) > MAX_COLLECTIONS:
        raise EasStatusError(15, message="too many collections")
    default, maximum = _settings(ctx)
    request_window = _int(_child(request, "WindowSize"))
    user = ctx.device.user
    device_id = ctx.device.device_id
    engine = SyncEngine(
        store=ctx.runtime.state,
        user=user,
        device_id=device_id,
        version=ctx.version,
        now=lambda: datetime.fromtimestamp(ctx.runtime.clock.seconds(), UTC),
    )
    parsed = [parse_collection(c, request_window, default, maximum) for c in items]

    # The answer is built in place (engine.sync ``parent``): no big subtree moves.
    root = E(AIRSYNC, "Sync")
    collections = etree.SubElement(root, f"{{{AIRSYNC}}}Collections")
    try:
        if seconds and not await _wait_for_changes(ctx, parsed, seconds):
            return CommandResult.empty()
        if not seconds and await _nothing_to_say(ctx, parsed):
            # MS-ASCMD 2.2.1.21.2: no pending server changes -> an empty Sync response
            # (headers only); the device keeps its SyncKey, which stays the current one.
            return CommandResult.empty()
        for req, cid_text, item_class in parsed:
            if req is None:
                collections.append(
                    _status_collection(
                        cid_text or "", None, PROTOCOL_ERROR, item_class, ctx.version
                    )
                )
                continue
            outcome = await _sync_one(ctx, engine, req, item_class, collections)
            if outcome.element.getparent() is not collections:
                collections.append(outcome.element)
            summary_in.add(outcome.summary_in)
            summary_out.add(outcome.summary_out)
    except (BackendUnavailable, StorageError) as e:
        raise EasStatusError(
            RETRY, message=f"{type(e).__name__}: {e} (nothing advanced)", level="warn"
        ) from e
    return CommandResult.wbxml(root)


async def _sync_one(
    ctx: CommandContext,
    engine: SyncEngine,
    req: CollectionRequest,
    item_class: str,
    parent: _Element,
) -> Any:
    collection = await ctx.runtime.state.get_collection(
        ctx.device.user, ctx.device.device_id, req.collection_id
    )
    if collection is None:
        return engine.status_outcome(req, HIERARCHY_CHANGED, item_class)
    source = source_for(ctx.runtime, ctx.credentials, collection)
    if req.options is not None and hasattr(source, "filter_type"):
        source.filter_type = req.filter_type or 0  # Tasks FilterType 8 (MS-ASCMD 2.2.3.69.2)
    try:
        return await engine.sync(req, source, parent)
    except MailboxNotFound:
        # The folder went away behind the device's back: it must FolderSync.
        return engine.status_outcome(
            req, HIERARCHY_CHANGED, CLASSES.get(collection.ref.kind, item_class)
        )
    except MailError as e:
        # The IMAP server refused (NO/BAD): this collection only, state intact (Status 5
        # "server error, retry", MS-ASCMD 2.2.3.177.17).
        log.warn(
            "Sync of collection {cid} refused by the mail server: {error}",
            cid=req.collection_id,
            error=e,
        )
        return engine.status_outcome(
            req, SERVER_ERROR, CLASSES.get(collection.ref.kind, item_class)
        )


async def _nothing_to_say(
    ctx: CommandContext, parsed: Sequence[tuple[CollectionRequest | None, str | None, str]]
) -> bool:
    """True when a Sync would answer every collection with Status 1 and nothing else: no
    client commands, no SyncKey 0, each key the current one (a previous key is a retry, whose
    answer is replayed), nothing pending or new in the backend (FilterType included)."""
    from opush.sync.probe import estimate

    if not parsed:
        return False
    user, device_id = ctx.device.user, ctx.device.device_id
    for req, _, _ in parsed:
        if req is None or req.sync_key == "0" or req.commands or not req.get_changes:
            return False
        current = await ctx.runtime.state.current_sync_state(user, device_id, req.collection_id)
        if current is None or current.sync_key != req.sync_key:
            return False
        if load_state(current).cursor is None:
            return False  # the first Sync after SyncKey 0 always gets a full answer
        count = await estimate(
            ctx.runtime,
            ctx.credentials,
            user,
            device_id,
            req.collection_id,
            req.sync_key,
            req.filter_type,
        )
        if count is None or count:
            return False
    return True


async def _wait_for_changes(
    ctx: CommandContext,
    parsed: Sequence[tuple[CollectionRequest | None, str | None, str]],
    seconds: int,
) -> bool:
    """Sync with Wait/HeartbeatInterval: True to answer now (something to send, client
    commands, or no waiter configured), False when the wait ended with nothing new."""
    from opush.sync.probe import has_changes

    ids: list[int] = []
    for req, _, _ in parsed:
        if req is None or req.sync_key == "0" or req.commands:
            return True
        ids.append(req.collection_id)
    for cid in ids:
        collection = await ctx.runtime.state.get_collection(
            ctx.device.user, ctx.device.device_id, cid
        )
        if collection is None:
            return True  # answered at once with Status 12
        if await has_changes(
            ctx.runtime, ctx.credentials, ctx.device.user, ctx.device.device_id, cid
        ):
            return True
    waiter = ctx.runtime.services.get("sync_wait")
    if waiter is None:
        return True
    return bool(await waiter(ctx, ids, seconds))
