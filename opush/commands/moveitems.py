"""MoveItems (MS-ASCMD 2.2.1.12): move mails between folders; one Response per Move.

Statuses (2.2.3.177.10): 1 invalid source (collection or item unknown, or the item is already
gone), 2 invalid destination, 3 success (with DstMsgId, the item's new ServerId
``collectionId:uid``), 4 source and destination are the same, 5 the move failed on the server
(the mail is where it was; the device may retry), 7 the source or destination is locked.

The move is an IMAP UID MOVE (or COPY + \\Deleted + EXPUNGE) and the new uid comes from
COPYUID (RFC 4315).  The device already holds the mail under DstMsgId when it gets our answer,
so the sync state of both collections is told about the move (``opush.sync`` engine API,
``record_move``) so that the next Sync neither sends the mail again as an Add in the
destination nor a Delete for it in the source.
"""

from __future__ import annotations

from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import MailboxNotFound, MailError
from opush.backends.mailsource import FlagDetailStore
from opush.commands.context import CommandContext, CommandResult
from opush.commands.itemoperations import MailItemId, mail_folder, parse_server_id
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.sync import moves
from opush.wbxml import E, ns

log = logger("opush.commands.moveitems")

INVALID_SOURCE = 1
INVALID_DESTINATION = 2
SUCCESS = 3
SAME_FOLDER = 4
FAILED = 5
LOCKED = 7

MOVE = ns.MOVE


def _q(tag: str) -> str:
    return f"{{{MOVE}}}{tag}"


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


async def _record_move(
    ctx: CommandContext, source: MailItemId, destination: MailItemId | None
) -> None:
    """Tell the sync engine the device already moved this mail (see module docstring)."""
    await moves.record_move(
        ctx.runtime.state,
        ctx.device.user,
        ctx.device.device_id,
        int(source.collection_id),
        source.uid,
        int(destination.collection_id) if destination is not None else None,
        destination.uid if destination is not None else None,
    )


async def _move_one(ctx: CommandContext, move: _Element) -> tuple[int, str | None]:
    src_msg = _text(move.find(_q("SrcMsgId")))
    src_fld = _text(move.find(_q("SrcFldId")))
    dst_fld = _text(move.find(_q("DstFldId")))
    item = parse_server_id(src_msg)
    if item is None or src_fld is None or str(int(src_fld)) != item.collection_id:
        return INVALID_SOURCE, None
    source = await mail_folder(ctx, src_fld)
    if source is None:
        return INVALID_SOURCE, None
    destination = await mail_folder(ctx, dst_fld)
    if destination is None or dst_fld is None:
        return INVALID_DESTINATION, None
    if source == destination:
        return SAME_FOLDER, None
    store = ctx.mail_store()
    device_item = item
    real = await moves.backend_id(
        ctx.runtime.state, ctx.device.user, ctx.device.device_id, int(src_fld), str(item.uid)
    )
    if real.isdigit() and int(real) != item.uid:
        item = MailItemId(item.collection_id, int(real))  # a replaced 16.x draft
    try:
        if not await store.fetch_summaries(source, [item.uid]):
            return INVALID_SOURCE, None  # moved or deleted meanwhile
    except MailboxNotFound:
        return INVALID_SOURCE, None
    # The Flag details IMAP does not hold follow the message (MOVE keeps INTERNALDATE and
    # size, the entry's fingerprint).
    details = FlagDetailStore(
        ctx.runtime.state, ctx.user.login_at_domain.lower(), ctx.runtime.clock
    )
    kept = (await details.lookup(source)).get(item.uid)
    try:
        mapping = await store.move(source, [item.uid], destination)
    except MailboxNotFound:
        return INVALID_DESTINATION, None
    except MailError as e:
        log.warn(
            "moving {uid} from {src} to {dst} failed: {error}",
            uid=item.uid,
            src=source,
            dst=destination,
            error=e,
        )
        return FAILED, None
    new_uid = mapping.get(item.uid)
    if kept is not None and new_uid is not None:
        await details.store(destination, new_uid, kept[0], kept[1])
        await details.store(source, item.uid, kept[0], None)
    moved = MailItemId(str(int(dst_fld)), new_uid) if new_uid is not None else None
    await _record_move(ctx, device_item, moved)
    return SUCCESS, moved.server_id if moved is not None else None


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q("MoveItems"):
        raise EasStatusError(FAILED, message="MoveItems without its root element")
    root = E(MOVE, "MoveItems")
    for move in request:
        if not isinstance(move.tag, str) or etree.QName(move).localname != "Move":
            continue
        src_msg = _text(move.find(_q("SrcMsgId"))) or ""
        try:
            status, new_id = await _move_one(ctx, move)
        except ValueError:
            status, new_id = INVALID_SOURCE, None
        response = E(MOVE, "Response", E(MOVE, "SrcMsgId", text=src_msg))
        response.append(E(MOVE, "Status", text=status))
        if new_id is not None:
            response.append(E(MOVE, "DstMsgId", text=new_id))
        root.append(response)
    return CommandResult.wbxml(root)
