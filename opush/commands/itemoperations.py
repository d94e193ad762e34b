"""ItemOperations (MS-ASCMD 2.2.1.10): Fetch a mail, an attachment or a search result from the
mailbox, and EmptyFolderContents.

Fetch forms (MS-ASCMD 2.2.3.67.1):

- ``airsync:CollectionId`` + ``airsync:ServerId`` (ServerId ``collectionId:uid``, the sync
  engine's convention) or ``search:LongId`` (our Search answers the same ``collectionId:uid``):
  the mail, shaped by ``Options`` (BodyPreference, MIMESupport, Schema) with
  ``opush.content.email``.  Fetch never marks the mail read (IMAP ``BODY.PEEK``).
- ``airsyncbase:FileReference`` (``collectionId:uid:section``, see
  ``opush.content.email.filereference``): the attachment bytes, optionally a byte ``Range``
  (2.2.3.143.2) with ``Total``.

Content delivery (2.2.1.10.1): inline, attachments base64 in ``Data`` and bodies in
``airsyncbase:Data``; or, when the device asks with ``MS-ASAcceptMultiPart: T`` (MS-ASHTTP
2.2.1.1.2.5) or the base64 query's AcceptMultiPart option bit, the multipart body
``application/vnd.ms-sync.multipart`` (2.2.1.10.1.1): PartsCount, (Offset, Length) per part,
then the parts; part 0 is the WBXML response and each ``Part`` element indexes a data part.

Statuses are per operation (2.2.3.177.7); the ItemOperations Status is 1 unless the request
itself is unusable.  Helpers shared by GetAttachment, MoveItems and Search live here too:
collection -> IMAP folder resolution, ServerId parsing, fetching one mail's EAS properties and
one attachment's bytes.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence

import attrs
from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import (
    Folder,
    MailboxNotFound,
    MailError,
    MailStore,
    MessageNotFound,
    MessageTooLarge,
)
from opush.commands.context import CommandContext, CommandResult
from opush.commands.conversations import conversation_mails
from opush.content.email import (
    EmailOptions,
    FileReferenceError,
    MailFlags,
    MessageRef,
    PartNotFound,
    decode_transfer,
    email_application_data,
    parse_file_reference,
    parse_options,
)
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.storage.interfaces import FolderKind
from opush.sync import moves
from opush.sync.ids import InvalidServerId, parse_mail_server_id
from opush.wbxml import E, encode, is_opaque, ns, opaque

log = logger("opush.commands.itemoperations")

MULTIPART_CONTENT_TYPE = "application/vnd.ms-sync.multipart"

# ItemOperations Status (MS-ASCMD 2.2.3.177.7).
SUCCESS = 1
PROTOCOL_ERROR = 2
SERVER_ERROR = 3
NOT_FOUND = 6  # "object not found or access denied"
BYTE_RANGE_INVALID = 8
STORE_UNKNOWN = 9
FILE_EMPTY = 10
DATA_TOO_LARGE = 11
CONVERSION_FAILED = 14
ATTACHMENT_INVALID = 15
ACTION_NOT_SUPPORTED = 156

#: Largest mail or attachment read into memory for one Fetch (bytes); beyond it Status 11.
MAX_FETCH_BYTES = 64 * 1024 * 1024

IO = ns.ITEMOPERATIONS


def _q(namespace: str, tag: str) -> str:
    return f"{{{namespace}}}{tag}"


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


def _local(el: _Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


# --------------------------------------------------------------------------- shared helpers


@attrs.frozen
class MailItemId:
    """A mail as the device names it: collection id (decimal string) and IMAP uid."""

    collection_id: str
    uid: int

    @property
    def server_id(self) -> str:
        return f"{self.collection_id}:{self.uid}"


def parse_server_id(value: str | None) -> MailItemId | None:
    """``"5:42"`` -> MailItemId("5", 42); None for anything else (the sync engine's
    ``opush.sync.ids`` rules: the device treats ServerIds as opaque, so a malformed one is
    simply "not found")."""
    try:
        collection_id, uid = parse_mail_server_id(value)
    except InvalidServerId:
        return None
    return MailItemId(str(collection_id), uid)


async def mail_folder(ctx: CommandContext, collection_id: str | None) -> str | None:
    """The IMAP folder behind one of this device's mail collection ids, None if unknown."""
    if not collection_id or not collection_id.strip().isdigit():
        return None
    collection = await ctx.runtime.state.get_collection(
        ctx.device.user, ctx.device.device_id, int(collection_id.strip())
    )
    if collection is None or collection.ref.kind is not FolderKind.MAIL:
        return None
    return collection.ref.backend_id


async def collection_of(ctx: CommandContext, folder: str) -> str | None:
    """The device's collection id for an IMAP folder it knows (FolderSync mapped it)."""
    found = await ctx.runtime.state.find_collection(
        ctx.device.user, ctx.device.device_id, FolderKind.MAIL, folder
    )
    return None if found is None else str(found.collection_id)


async def mail_properties(
    ctx: CommandContext,
    store: MailStore,
    folder: str,
    item: MailItemId,
    options: EmailOptions,
) -> list[_Element] | None:
    """The ApplicationData children of one mail for this device's version, None if the
    mail is gone.  Reads with BODY.PEEK: the mail's \\Seen flag is left alone."""
    summaries = await store.fetch_summaries(folder, [item.uid])
    if not summaries:
        return None
    summary = summaries[0]
    try:
        raw = await store.fetch_body(folder, item.uid, "", max_size=MAX_FETCH_BYTES)
    except MessageNotFound:
        return None
    except MessageTooLarge:
        # Too big to hold: the header still gives a usable item (subject, addresses...).
        raw = await store.fetch_body(folder, item.uid, "HEADER")
    from opush.backends.mailsource import FlagDetailStore, fingerprint

    details = None  # the Flag details devices set (FlagDetailStore), as Sync sends them
    if ctx.runtime.state is not None:
        known = await FlagDetailStore(
            ctx.runtime.state, ctx.user.login_at_domain.lower(), ctx.runtime.clock
        ).lookup(folder)
        entry = known.get(item.uid)
        if entry is not None and entry[0] == fingerprint(summary.internaldate, summary.size):
            details = entry[1]
    return email_application_data(
        raw,
        ref=MessageRef(item.collection_id, item.uid),
        flags=MailFlags.from_imap(summary.flags),
        internaldate=summary.internaldate,
        options=options,
        version=ctx.version,
        user_addresses=[ctx.user.email],
        flag_details=details,
    )


@attrs.frozen
class Attachment:
    content_type: str
    data: bytes


async def fetch_attachment(
    ctx: CommandContext, file_reference: str, store: MailStore | None = None
) -> Attachment:
    """The decoded bytes of the attachment a FileReference names.

    Raises FileReferenceError (not one of ours, or its collection is unknown to the device)
    and PartNotFound (the mail or the part is gone); backend errors pass through.
    """
    ref = parse_file_reference(file_reference)
    folder = await mail_folder(ctx, ref.collection_id)
    if folder is None:
        raise FileReferenceError(f"unknown collection in {file_reference!r}")
    store = store or ctx.mail_store()
    try:
        summaries = await store.fetch_summaries(folder, [ref.uid])
    except MailboxNotFound:
        raise PartNotFound(ref.part) from None
    if not summaries or summaries[0].body is None:
        raise PartNotFound(ref.part)
    node = next(
        (p for p in summaries[0].body.walk() if p.section == ref.part and p.type != "multipart"),
        None,
    )
    if node is None:
        raise PartNotFound(ref.part)
    try:
        data = await store.fetch_body(folder, ref.uid, ref.part, max_size=MAX_FETCH_BYTES)
    except MessageNotFound:
        raise PartNotFound(ref.part) from None
    content_type = f"{node.type}/{node.subtype}"
    if node.type == "message" and node.encoding not in ("base64", "quoted-printable"):
        return Attachment(content_type, data)
    return Attachment(content_type, decode_transfer(data, node.encoding or "7bit"))


def multipart_body(parts: Sequence[bytes]) -> bytes:
    """MS-ASCMD 2.2.1.10.1.1 MultiPartResponse: PartsCount, then an (Offset, Length) pair per
    part (offsets from the start of the structure), then the parts; little-endian int32."""
    header = 4 + 8 * len(parts)
    out = [struct.pack("<i", len(parts))]
    offset = header
    for part in parts:
        out.append(struct.pack("<ii", offset, len(part)))
        offset += len(part)
    out.extend(parts)
    return b"".join(out)


def parse_multipart(body: bytes) -> list[bytes]:
    """The parts of a MultiPartResponse (tests and tools); ValueError if malformed."""
    if len(body) < 4:
        raise ValueError("multipart body shorter than its count")
    (count,) = struct.unpack_from("<i", body, 0)
    if count < 0 or 4 + 8 * count > len(body):
        raise ValueError(f"bad part count {count}")
    parts = []
    for i in range(count):
        offset, length = struct.unpack_from("<ii", body, 4 + 8 * i)
        if offset < 0 or length < 0 or offset + length > len(body):
            raise ValueError(f"part {i} out of bounds")
        parts.append(body[offset : offset + length])
    return parts


# --------------------------------------------------------------------------- Fetch


class _Parts:
    """Binary parts of a multipart answer (None: answer inline)."""

    def __init__(self, multipart: bool) -> None:
        self.multipart = multipart
        self.data: list[bytes] = []

    def add(self, data: bytes) -> int:
        self.data.append(data)
        return len(self.data)  # part 0 is the WBXML itself


def _parse_range(text: str | None, total: int) -> tuple[int, int] | None:
    """ "m-n" (MS-ASCMD 2.2.3.143.2, zero-based, inclusive) clipped to the data; None when
    malformed or starting beyond the end."""
    if text is None:
        return (0, total - 1) if total else (0, -1)
    start_s, sep, end_s = text.partition("-")
    if not sep or not start_s.strip().isdigit() or not end_s.strip().isdigit():
        return None
    start, end = int(start_s), int(end_s)
    if start > end or (total and start >= total) or (not total and start > 0):
        return None
    return start, min(end, total - 1)


def _schema_filter(children: list[_Element], schema: _Element | None) -> list[_Element]:
    """Keep only the properties named in Options/Schema (MS-ASCMD 2.2.3.158.1); no Schema or
    an empty one means every property."""
    if schema is None or len(schema) == 0:
        return children
    wanted = {el.tag for el in schema if isinstance(el.tag, str)}
    return [c for c in children if c.tag in wanted]


def _move_body_to_part(children: list[_Element], parts: _Parts) -> None:
    """Multipart: each airsyncbase:Body/Data becomes a Part index (MS-ASAIRS 2.2.2.33)."""
    for body in children:
        if body.tag != _q(ns.AIRSYNCBASE, "Body"):
            continue
        data_el = body.find(_q(ns.AIRSYNCBASE, "Data"))
        if data_el is None:
            continue
        data = opaque(data_el) if is_opaque(data_el) else (data_el.text or "").encode("utf-8")
        index = body.index(data_el)
        body.remove(data_el)
        body.insert(index, E(IO, "Part", text=parts.add(data)))


async def _fetch_item(
    ctx: CommandContext,
    out: _Element,
    item: MailItemId | None,
    options_el: _Element | None,
    parts: _Parts,
) -> int:
    folder = await mail_folder(ctx, item.collection_id) if item is not None else None
    if item is None or folder is None:
        return NOT_FOUND
    real = await moves.backend_id(
        ctx.runtime.state,
        ctx.device.user,
        ctx.device.device_id,
        int(item.collection_id),
        str(item.uid),
    )
    if real.isdigit() and int(real) != item.uid:
        item = MailItemId(item.collection_id, int(real))  # a replaced 16.x draft
    options = parse_options(options_el)
    store = ctx.mail_store()
    try:
        children = await mail_properties(ctx, store, folder, item, options)
    except MailboxNotFound:
        return NOT_FOUND
    if children is None:
        return NOT_FOUND
    schema = options_el.find(_q(IO, "Schema")) if options_el is not None else None
    children = _schema_filter(children, schema)
    if parts.multipart:
        _move_body_to_part(children, parts)
    props = E(IO, "Properties", *children)
    out.append(E(ns.AIRSYNC, "Class", text="Email"))
    out.append(props)
    return SUCCESS


async def _fetch_file(
    ctx: CommandContext,
    out: _Element,
    reference: str,
    options_el: _Element | None,
    parts: _Parts,
) -> int:
    try:
        attachment = await fetch_attachment(ctx, reference)
    except FileReferenceError:
        return ATTACHMENT_INVALID
    except PartNotFound:
        return ATTACHMENT_INVALID
    except MessageTooLarge:
        return DATA_TOO_LARGE
    data = attachment.data
    range_text = _text(options_el.find(_q(IO, "Range"))) if options_el is not None else None
    span = _parse_range(range_text, len(data))
    if span is None:
        return BYTE_RANGE_INVALID
    start, end = span
    chunk = data[start : end + 1]
    props = E(IO, "Properties", E(ns.AIRSYNCBASE, "ContentType", text=attachment.content_type))
    if range_text is not None:
        # The range actually served and the whole size (MS-ASCMD 2.2.3.143.2, 2.2.3.184.2).
        props.append(E(IO, "Range", text=f"{start}-{max(start, end)}"))
        props.append(E(IO, "Total", text=len(data)))
    if parts.multipart:
        props.append(E(IO, "Part", text=parts.add(chunk)))
    else:
        props.append(E(IO, "Data", text=base64.b64encode(chunk).decode("ascii")))
    out.append(props)
    return SUCCESS


async def _fetch(ctx: CommandContext, request: _Element, parts: _Parts) -> _Element:
    out = E(IO, "Fetch")
    status_el = E(IO, "Status", text=SUCCESS)
    out.append(status_el)
    store_name = (_text(request.find(_q(IO, "Store"))) or "").lower()
    options_el = request.find(_q(IO, "Options"))
    reference = _text(request.find(_q(ns.AIRSYNCBASE, "FileReference")))
    long_id = _text(request.find(_q(ns.SEARCH, "LongId")))
    collection_id = _text(request.find(_q(ns.AIRSYNC, "CollectionId")))
    server_id = _text(request.find(_q(ns.AIRSYNC, "ServerId")))

    status: int
    if store_name != "mailbox":
        # DocumentLibrary (UNC/SharePoint) is not offered (MS-ASCMD 2.2.3.177.7: 9).
        status = STORE_UNKNOWN
    elif reference is not None:
        out.append(E(ns.AIRSYNCBASE, "FileReference", text=reference))
        status = await _fetch_file(ctx, out, reference, options_el, parts)
    elif long_id is not None:
        out.append(E(ns.SEARCH, "LongId", text=long_id))
        item = parse_server_id(long_id)
        status = await _fetch_item(ctx, out, item, options_el, parts)
    elif server_id is not None:
        item = parse_server_id(server_id)
        if item is not None and collection_id is not None and collection_id != item.collection_id:
            item = None  # ServerId of another collection
        if collection_id is not None:
            out.append(E(ns.AIRSYNC, "CollectionId", text=collection_id))
        out.append(E(ns.AIRSYNC, "ServerId", text=server_id))
        status = await _fetch_item(ctx, out, item, options_el, parts)
    else:
        status = PROTOCOL_ERROR
    if status != SUCCESS:
        # Keep the identifying elements, drop half-built properties.
        for child in list(out):
            if child.tag in (_q(IO, "Properties"), _q(ns.AIRSYNC, "Class")):
                out.remove(child)
    status_el.text = str(status)
    return out


# --------------------------------------------------------------------------- EmptyFolderContents


def _descendants(folders: Sequence[Folder], parent: str) -> list[str]:
    prefixes = {f"{parent}{f.separator}" for f in folders if f.separator}
    found = [f.name for f in folders if any(f.name.startswith(p) for p in prefixes)]
    return sorted(found, key=lambda name: -len(name))  # children first


# --------------------------------------------------------------------------- Move (conversation)

#: Folders a conversation Move leaves alone, as Exchange does: what was sent and what was
#: deleted stay where they are, and notes are no mail (FolderHierarchy types, MS-ASCMD
#: 2.2.3.186.3).
_KEPT_TYPES = (4, 5, 10)


async def _move_conversation(ctx: CommandContext, request: _Element) -> _Element:
    """ItemOperations Move (14.0+, MS-ASCMD 2.2.3.117.1): every mail of a conversation to
    DstFldId.  ``MoveAlways`` (later mails of it too) needs a server-side rule, which IMAP
    cannot hold: the mails there now are moved, and the device is told Success."""
    conversation_el = request.find(_q(IO, "ConversationId"))
    destination_id = _text(request.find(_q(IO, "DstFldId")))
    conversation = opaque(conversation_el) if conversation_el is not None else b""
    out = E(IO, "Move")
    status_el = E(IO, "Status", text=SUCCESS)
    out.append(status_el)
    if conversation_el is not None:
        out.append(E(IO, "ConversationId", text=conversation))
    if not conversation or destination_id is None:
        status_el.text = str(PROTOCOL_ERROR)
        return out
    destination = await mail_folder(ctx, destination_id)
    if destination is None:
        status_el.text = str(NOT_FOUND)
        return out
    collections = await ctx.runtime.state.list_collections(ctx.device.user, ctx.device.device_id)
    folders = [
        (str(c.collection_id), c.ref.backend_id)
        for c in collections
        if c.ref.kind is FolderKind.MAIL
        and c.ref.backend_id != destination
        and c.ref.folder_type not in _KEPT_TYPES
    ]
    store = ctx.mail_store()
    mails = await conversation_mails(store, folders, conversation)
    by_folder: dict[tuple[str, str], list[int]] = {}
    for m in mails:
        by_folder.setdefault((m.collection_id, m.folder), []).append(m.uid)
    # Unlike MoveItems the device moves nothing itself: its next Syncs bring the Deletes
    # and the Adds.
    for (_collection_id, folder), uids in by_folder.items():
        try:
            await store.move(folder, uids, destination)
        except MailboxNotFound:
            continue
        except MailError as e:
            log.warn("conversation move from {f} failed: {e}", f=folder, e=e)
            status_el.text = str(SERVER_ERROR)
    log.info(
        "conversation {c}: {n} mail(s) moved to {dst}",
        c=conversation.hex(),
        n=len(mails),
        dst=destination,
    )
    return out


async def _empty_folder(ctx: CommandContext, request: _Element) -> _Element:
    collection_id = _text(request.find(_q(ns.AIRSYNC, "CollectionId")))
    out = E(IO, "EmptyFolderContents")
    status_el = E(IO, "Status", text=SUCCESS)
    out.append(status_el)
    if collection_id is not None:
        out.append(E(ns.AIRSYNC, "CollectionId", text=collection_id))
    folder = await mail_folder(ctx, collection_id)
    if folder is None:
        status_el.text = str(NOT_FOUND)
        return out
    options = request.find(_q(IO, "Options"))
    delete_subfolders = options is not None and options.find(_q(IO, "DeleteSubFolders")) is not None
    store = ctx.mail_store()
    try:
        await store.empty_folder(folder)
    except MailboxNotFound:
        status_el.text = str(NOT_FOUND)
        return out
    if delete_subfolders:
        # MS-ASCMD 2.2.3.44: without DeleteSubFolders the subfolders stay.
        failed = 0
        for name in _descendants(await store.list_folders(), folder):
            try:
                await store.delete_folder(name)
            except MailboxNotFound:
                continue
            except MailError as e:
                failed += 1
                log.warn("could not delete {folder}: {error}", folder=name, error=e)
        if failed:
            status_el.text = "17"  # partial success
    log.info(
        "{user} emptied {folder} (subfolders deleted: {sub})",
        user=ctx.user.login_at_domain,
        folder=folder,
        sub=delete_subfolders,
    )
    return out


# --------------------------------------------------------------------------- command


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q(IO, "ItemOperations"):
        raise EasStatusError(PROTOCOL_ERROR, message="ItemOperations without its root element")
    parts = _Parts(ctx.accept_multipart)
    response = E(IO, "Response")
    for op in request:
        name = _local(op)
        if name == "Fetch":
            response.append(await _fetch(ctx, op, parts))
        elif name == "EmptyFolderContents":
            response.append(await _empty_folder(ctx, op))
        elif name == "Move":
            response.append(await _move_conversation(ctx, op))
        else:
            raise EasStatusError(PROTOCOL_ERROR, message=f"unknown ItemOperations child {name}")
    root = E(IO, "ItemOperations", E(IO, "Status", text=SUCCESS), response)
    if not parts.multipart:
        return CommandResult.wbxml(root)
    # 2.2.1.10.1: part 0 is the WBXML response, then each Part's data.
    wbxml = encode(root, ctx.version_text)
    return CommandResult.data(multipart_body([wbxml, *parts.data]), MULTIPART_CONTENT_TYPE)
