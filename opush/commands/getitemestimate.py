"""GetItemEstimate (MS-ASCMD 2.2.1.9): how many changes the next Sync of each collection
would bring = the pending window plus new backend changes (nothing is stored).

Statuses (2.2.3.177.6): 1 success, 2 unknown collection, 3 sync state not primed (no Sync
with SyncKey 0 yet, or SyncKey 0 sent), 4 the SyncKey is not the collection's current one.
The IMAP server being unreachable is the retryable global status (opush/http/errors.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree
from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.http.errors import EasStatusError
from opush.sync.engine import pending_estimate
from opush.sync.sources import CLASSES, source_for
from opush.wbxml import E, ns

GIE = ns.GETITEMESTIMATE

SUCCESS = 1
INVALID_COLLECTION = 2
NOT_PRIMED = 3
INVALID_SYNC_KEY = 4


def _local(el: _Element) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _find(el: _Element | None, name: str) -> _Element | None:
    """First descendant named ``name`` (SyncKey/FilterType are in Options from 14.0 on)."""
    if el is None:
        return None
    for c in el.iter():
        if c is not el and _local(c) == name:
            return c
    return None


def _text(el: _Element | None) -> str | None:
    return el.text.strip() if el is not None and el.text is not None else None


def _response(
    status: int, cid: str, item_class: str | None, estimate: int | None, version: tuple[int, int]
) -> _Element:
    collection = E(GIE, "Collection")
    if version < (14, 0) and item_class:
        collection.append(E(GIE, "Class", text=item_class))
    collection.append(E(GIE, "CollectionId", text=cid))
    if estimate is not None:
        collection.append(E(GIE, "Estimate", text=estimate))
    return E(GIE, "Response", E(GIE, "Status", text=status), collection)


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or _local(request) != "GetItemEstimate":
        raise EasStatusError(2, message="GetItemEstimate without a body")
    collections = _find(request, "Collections")
    if collections is None:
        raise EasStatusError(2, message="GetItemEstimate without Collections")
    user, device_id = ctx.device.user, ctx.device.device_id
    now = datetime.fromtimestamp(ctx.runtime.clock.seconds(), UTC)
    out: list[_Element] = []
    for el in collections:
        if _local(el) != "Collection":
            continue
        cid_text = _text(_find(el, "CollectionId")) or ""
        item_class = _text(_find(el, "Class"))
        key = _text(_find(el, "SyncKey"))
        filter_text = _text(_find(el, "FilterType"))
        filter_type = int(filter_text) if filter_text and filter_text.isdigit() else None
        if not cid_text.isdigit():
            out.append(_response(INVALID_COLLECTION, cid_text, item_class, None, ctx.version))
            continue
        collection = await ctx.runtime.state.get_collection(user, device_id, int(cid_text))
        if collection is None:
            out.append(_response(INVALID_COLLECTION, cid_text, item_class, None, ctx.version))
            continue
        item_class = item_class or CLASSES.get(collection.ref.kind, "Email")
        current = await ctx.runtime.state.current_sync_state(user, device_id, int(cid_text))
        if current is None or key == "0":
            out.append(_response(NOT_PRIMED, cid_text, item_class, None, ctx.version))
            continue
        source = source_for(ctx.runtime, ctx.credentials, collection)
        if filter_type is not None and hasattr(source, "filter_type"):
            source.filter_type = filter_type  # Tasks FilterType 8 (MS-ASCMD 2.2.3.69.2)
        estimate = await pending_estimate(
            ctx.runtime.state, user, device_id, int(cid_text), key, source, now, filter_type
        )
        if estimate is None:
            out.append(_response(INVALID_SYNC_KEY, cid_text, item_class, None, ctx.version))
            continue
        out.append(_response(SUCCESS, cid_text, item_class, estimate, ctx.version))
    return CommandResult.wbxml(E(GIE, "GetItemEstimate", *out))
