"""SendMail, SmartReply and SmartForward (MS-ASCMD 2.2.1.17, 2.2.1.20, 2.2.1.19): the shared
path from the device's request to SMTP, the Sent folder and the original's flags.

Two request forms (MS-ASCMD 2.2.1.17.1):

- 12.x: the body is the raw MIME message (``message/rfc822``); the query string carries
  ``SaveInSent=T`` and, for SmartReply/SmartForward, ``CollectionId``/``ItemId`` or ``LongId``
  (MS-ASHTTP 2.2.1.1.1.2.x, both the plain and the base64 forms: `EasQuery`).
- 14.0+: a WBXML ``ComposeMail`` document: ClientId, SaveInSentItems, ReplaceMime, Source
  (FolderId + ItemId, or LongId; InstanceId), Mime (OPAQUE), and from 16.0 Forwardees.

Outcomes (MS-ASCMD 2.2.3.177.14/.16 list the common statuses of 2.2.2): success is an empty
200.  A ClientId already sent answers 118 MessagePreviouslySent and sends nothing (a retry
after a lost response; 12.x: the Message-ID plays that part and the retry gets 200).  Over
mail_conf.ini ``message.maxSize``: 115 SendQuotaExceeded (the Java server sent an error mail
instead).  No recipient: 119.  The original of a SmartReply/SmartForward gone and no
ReplaceMime: 150 ItemNotFound (quoting nothing or dropping the forwarded attachments would
silently lose what the user meant to send).  SMTP down, timing out or answering 4xx:
`SmtpUnavailable`, which opush/http/errors.py answers 111 (12.x: 503 + Retry-After); SMTP
refusing (5xx): 120 MailSubmissionFailed.  On every failure nothing reaches the Sent folder and
the ClientId is not recorded, so the device's retry sends the message.

After a successful send, the Sent copy (the bytes transmitted, so without Bcc, ``\\Seen``) is
appended to the Sent folder (mail_conf.ini ``imap.mailbox.sent``, else the folder with the
``\\Sent`` special use); a missing Sent folder or a failing APPEND is logged and does not fail
the send (OP-130).  The original gets ``\\Answered`` (reply) or ``$Forwarded`` (forward), which
Sync reports as LastVerbExecuted (MS-ASEMAIL 2.2.2.45) from 14.0 on.
"""

from __future__ import annotations

import attrs
from lxml.etree import _Element
from twisted.logger import LogLevel

from opush.backends.interfaces import (
    Folder,
    MailboxNotFound,
    MailError,
    MailStore,
    MessageNotFound,
    SpecialUse,
)
from opush.backends.interfaces import MessageTooLarge as FetchTooLarge
from opush.backends.outbox import sent_folder_for, smtp_client_for
from opush.backends.smtp import SmtpClient, SmtpRefused
from opush.commands.context import CommandContext, CommandResult
from opush.content.email import (
    Identity,
    MessageTooLarge,
    OutgoingMail,
    prepare_outgoing,
    smart_forward,
    smart_reply,
)
from opush.content.email.compose import to_bytes
from opush.content.email.headers import HeaderView
from opush.content.email.structure import parse_message
from opush.http.errors import EasStatusError, GlobalStatus
from opush.log import is_enabled, logger
from opush.storage.interfaces import HIERARCHY, FolderKind, MappingKind
from opush.sync.ids import InvalidServerId, parse_mail_server_id
from opush.wbxml import ns, opaque

log = logger("opush.commands.compose")
mail_data = logger("MAIL.DATA")

CM = ns.COMPOSEMAIL
DEFAULT_MAX_SIZE = 10485760  # mail_conf.ini message.maxSize default

SEND_MAIL = "SendMail"
SMART_REPLY = "SmartReply"
SMART_FORWARD = "SmartForward"


def _q(tag: str) -> str:
    return f"{{{CM}}}{tag}"


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


@attrs.frozen
class Source:
    """The original message of a SmartReply/SmartForward as the device named it."""

    folder_id: str | None = None
    item_id: str | None = None
    long_id: str | None = None
    instance_id: str | None = None


@attrs.frozen
class ComposeRequest:
    command: str
    mime: bytes
    save_in_sent: bool
    #: 14.0+ ComposeMail form (WBXML) rather than the 12.x raw MIME body.
    wbxml: bool
    client_id: str | None = None
    replace_mime: bool = False
    source: Source | None = None
    #: (name, address) of 16.0 Forwardees.
    forwardees: tuple[tuple[str | None, str], ...] = ()


def parse_request(ctx: CommandContext, request: _Element | None, command: str) -> ComposeRequest:
    """Either form of the request (see module docstring); EasStatusError when unusable."""
    if request is None:
        if not ctx.body.strip():
            raise EasStatusError(
                GlobalStatus.INVALID_CONTENT, message=f"{command} without a message"
            )
        source = None
        if command != SEND_MAIL:
            p = ctx.params
            source = Source(
                folder_id=p.get("CollectionId"),
                item_id=p.get("ItemId"),
                long_id=p.get("LongId"),
                instance_id=p.get("Occurrence"),
            )
        return ComposeRequest(
            command=command,
            mime=ctx.body,
            save_in_sent=ctx.save_in_sent,
            wbxml=False,
            source=source,
        )
    if request.tag != _q(command):
        raise EasStatusError(
            GlobalStatus.INVALID_CONTENT, message=f"{command}: unexpected root {request.tag}"
        )
    mime_el = request.find(_q("Mime"))
    if mime_el is None:
        raise EasStatusError(GlobalStatus.INVALID_CONTENT, message=f"{command} without Mime")
    try:
        mime = opaque(mime_el)
    except ValueError as e:
        raise EasStatusError(GlobalStatus.INVALID_MIME, message=str(e)) from e
    source = None
    source_el = request.find(_q("Source"))
    if source_el is not None:
        source = Source(
            folder_id=_text(source_el.find(_q("FolderId"))),
            item_id=_text(source_el.find(_q("ItemId"))),
            long_id=_text(source_el.find(_q("LongId"))),
            instance_id=_text(source_el.find(_q("InstanceId"))),
        )
    forwardees: list[tuple[str | None, str]] = []
    for fw in request.iter(_q("Forwardee")):
        email = _text(fw.find(_q("ForwardeeEmail")))
        if email:
            forwardees.append((_text(fw.find(_q("ForwardeeName"))), email))
    return ComposeRequest(
        command=command,
        mime=mime,
        save_in_sent=request.find(_q("SaveInSentItems")) is not None,
        wbxml=True,
        client_id=_text(request.find(_q("ClientId"))),
        replace_mime=request.find(_q("ReplaceMime")) is not None,
        source=source,
        forwardees=tuple(forwardees),
    )


# --------------------------------------------------------------------------- settings


def max_size(ctx: CommandContext) -> int:
    mail = getattr(ctx.runtime.config, "mail", None)
    value = getattr(mail, "message_max_size", None)
    return value if isinstance(value, int) and value > 0 else DEFAULT_MAX_SIZE


def sent_folder_name(ctx: CommandContext) -> str:
    return sent_folder_for(ctx.runtime)


def smtp_client(ctx: CommandContext) -> SmtpClient:
    return smtp_client_for(ctx.runtime)


def identity(ctx: CommandContext) -> Identity:
    user = ctx.user
    return Identity(address=user.email, display_name=user.display_name)


# --------------------------------------------------------------------------- idempotence


def _idempotence_key(req: ComposeRequest) -> str | None:
    if req.client_id:
        return f"client:{req.client_id}"
    if not req.wbxml:
        # 12.x has no ClientId: a resent MIME keeps its Message-ID.
        try:
            msg_id = HeaderView(parse_message(req.mime)).text("message-id")
        except Exception:
            msg_id = None
        if msg_id and msg_id.strip():
            return f"message-id:{msg_id.strip()}"
    return None


async def already_sent(ctx: CommandContext, key: str | None) -> bool:
    if key is None:
        return False
    found = await ctx.runtime.state.get_mapping(
        ctx.device.user, ctx.device.device_id, HIERARCHY, MappingKind.SENDMAIL, key
    )
    return found is not None


async def remember_sent(ctx: CommandContext, key: str | None) -> None:
    if key is None:
        return
    try:
        await ctx.runtime.state.put_mapping(
            ctx.device.user, ctx.device.device_id, HIERARCHY, MappingKind.SENDMAIL, key, ""
        )
    except Exception as e:  # the mail is gone already: answering an error would resend it
        log.warn("cannot record sent {key}: {error}", key=key, error=e)


# --------------------------------------------------------------------------- original


@attrs.frozen
class Original:
    folder: str
    uid: int
    data: bytes


async def _resolve(ctx: CommandContext, source: Source) -> tuple[str, int] | None:
    server_id = source.item_id or source.long_id
    try:
        collection_id, uid = parse_mail_server_id(server_id)
    except InvalidServerId:
        return None
    if source.item_id and source.folder_id and source.folder_id.strip() != str(collection_id):
        return None  # an ItemId of another folder
    collection = await ctx.runtime.state.get_collection(
        ctx.device.user, ctx.device.device_id, collection_id
    )
    if collection is None or collection.ref.kind is not FolderKind.MAIL:
        return None
    return collection.ref.backend_id, uid


async def fetch_original(
    ctx: CommandContext, store: MailStore, source: Source | None, limit: int
) -> Original | None:
    """The original message's bytes, None if the device named none or it is gone."""
    if source is None:
        return None
    where = await _resolve(ctx, source)
    if where is None:
        return None
    folder, uid = where
    try:
        data = await store.fetch_body(folder, uid, max_size=limit)
    except (MessageNotFound, MailboxNotFound):
        return None
    except FetchTooLarge as e:
        raise EasStatusError(
            GlobalStatus.SEND_QUOTA_EXCEEDED,
            message=f"original message {folder}:{uid} exceeds message.maxSize",
        ) from e
    if not data:
        return None
    return Original(folder, uid, data)


def _add_forwardees(mime: bytes, forwardees: tuple[tuple[str | None, str], ...]) -> bytes:
    if not forwardees:
        return mime
    from email.utils import formataddr

    msg = parse_message(mime)
    extra = ", ".join(formataddr((name or "", addr)) for name, addr in forwardees)
    current = msg.get("To")
    del msg["To"]
    msg["To"] = f"{current}, {extra}" if current else extra
    return to_bytes(msg)


def build_outgoing(
    ctx: CommandContext, req: ComposeRequest, original: Original | None, limit: int
) -> OutgoingMail:
    who = identity(ctx)
    try:
        if req.command == SMART_REPLY:
            return smart_reply(
                req.mime,
                original.data if original else None,
                who,
                replace_mime=req.replace_mime,
                max_size=limit,
            )
        if req.command == SMART_FORWARD:
            return smart_forward(
                _add_forwardees(req.mime, req.forwardees),
                original.data if original else None,
                who,
                replace_mime=req.replace_mime,
                max_size=limit,
            )
        return prepare_outgoing(req.mime, who, max_size=limit)
    except MessageTooLarge as e:
        raise EasStatusError(
            GlobalStatus.SEND_QUOTA_EXCEEDED, message=f"message.maxSize: {e}", level="info"
        ) from e


# --------------------------------------------------------------------------- sending


async def submit(ctx: CommandContext, out: OutgoingMail) -> None:
    """SMTP, or the failure as an EAS status (see module docstring)."""
    if not out.recipients:
        raise EasStatusError(
            GlobalStatus.MESSAGE_HAS_NO_RECIPIENT, message="no To, Cc or Bcc recipient"
        )
    if is_enabled("MAIL.DATA", LogLevel.debug):
        mail_data.debug(
            "from {sender} to {recipients}:\n{data}",
            sender=out.mail_from,
            recipients=", ".join(out.recipients),
            data=out.data.decode("utf-8", "replace"),
        )
    client = smtp_client(ctx)
    try:
        await client.send(out.mail_from, out.recipients, out.data, credentials=ctx.credentials)
    except SmtpRefused as e:
        raise EasStatusError(
            GlobalStatus.MAIL_SUBMISSION_FAILED, message=f"SMTP refused: {e}", level="warn"
        ) from e


async def _sent_folder(store: MailStore, configured: str) -> str | None:
    try:
        folders: list[Folder] = await store.list_folders()
    except Exception:
        return None
    for folder in folders:
        if folder.special_use is SpecialUse.SENT and folder.name != configured:
            return folder.name
    return None


async def save_sent_copy(ctx: CommandContext, store: MailStore, out: OutgoingMail) -> None:
    """APPEND the Sent copy; never fails the command (OP-130)."""
    folder = sent_folder_name(ctx)
    try:
        try:
            await store.append(folder, out.data, flags=["\\Seen"])
            return
        except MailboxNotFound:
            fallback = await _sent_folder(store, folder)
            if fallback is None:
                log.warn(
                    "message sent, but no Sent folder {folder} to keep a copy in (OP-130)",
                    folder=folder,
                )
                return
            await store.append(fallback, out.data, flags=["\\Seen"])
    except Exception as e:
        log.warn(
            "message sent, but its copy could not be saved in {folder}: {error}",
            folder=folder,
            error=e,
        )


async def flag_original(
    ctx: CommandContext, store: MailStore, original: Original, flag: str
) -> None:
    try:
        await store.set_flags(original.folder, [original.uid], add=[flag])
    except (MailError, Exception) as e:
        log.warn(
            "message sent, but {folder}:{uid} could not be flagged {flag}: {error}",
            folder=original.folder,
            uid=original.uid,
            flag=flag,
            error=e,
        )


async def handle_compose(
    ctx: CommandContext, request: _Element | None, command: str
) -> CommandResult:
    req = parse_request(ctx, request, command)
    key = _idempotence_key(req)
    if await already_sent(ctx, key):
        log.info("{command} {key} was already sent: not sending it again", command=command, key=key)
        if req.wbxml:
            raise EasStatusError(
                GlobalStatus.MESSAGE_PREVIOUSLY_SENT, message=f"{key} already sent"
            )
        return CommandResult.empty()
    limit = max_size(ctx)
    if len(req.mime) > limit:
        raise EasStatusError(
            GlobalStatus.SEND_QUOTA_EXCEEDED,
            message=f"message of {len(req.mime)} bytes exceeds message.maxSize {limit}",
        )
    store = ctx.mail_store()
    original: Original | None = None
    if command != SEND_MAIL:
        original = await fetch_original(ctx, store, req.source, limit)
        if original is None and not req.replace_mime:
            raise EasStatusError(
                GlobalStatus.ITEM_NOT_FOUND,
                message=f"{command}: original {req.source} not found",
            )
    out = build_outgoing(ctx, req, original, limit)
    await submit(ctx, out)
    await remember_sent(ctx, key)
    if req.save_in_sent:
        await save_sent_copy(ctx, store, out)
    if original is not None:
        flag = "\\Answered" if command == SMART_REPLY else "$Forwarded"
        await flag_original(ctx, store, original, flag)
    return CommandResult.empty()


__all__ = [
    "SEND_MAIL",
    "SMART_FORWARD",
    "SMART_REPLY",
    "ComposeRequest",
    "Original",
    "Source",
    "handle_compose",
    "parse_request",
    "save_sent_copy",
    "smtp_client",
    "submit",
]
