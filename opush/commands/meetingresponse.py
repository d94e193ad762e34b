"""MeetingResponse (MS-ASCMD 2.2.1.11): accept, tentatively accept or decline an invitation.

For a meeting request received by mail (a message with a ``text/calendar`` METHOD:REQUEST part,
in a mail collection), each ``Request`` is handled as follows:

1. the iMIP REPLY (RFC 6047 2.3 / RFC 5546 3.2.3: ATTENDEE with the new PARTSTAT) goes to the
   organizer over SMTP, always before 16.0 (the Java server's obm-sync notified the organizer
   itself) and from 16.0 only when the request carries ``SendResponse`` (MS-ASCMD 2.2.1.11:
   "In protocol version 16.0 and 16.1, an email is sent back to the meeting organizer if the
   SendResponse element is present");
2. the calendar side goes to the calendar backend's hook, when a profile provides one:
   ``runtime.services["meeting_responses"]`` with
   ``async record(ctx, invitation_ics: str, answer: MeetingAnswer, instance_id: str | None)
   -> str | None`` returning the calendar item's ServerId, answered as ``CalendarId`` unless
   declined (2.2.3.18); requests whose RequestId is a calendar item (Calendar collection) are
   passed to ``record_calendar_item(ctx, collection_id, server_id, answer, instance_id)``;
3. the meeting request mail is moved to the Deleted Items folder, as Exchange does once it is
   answered (the device drops it from its Inbox).

An answer given from the calendar item is mailed to the organizer the same way when the
calendar backend does not notify organizers itself (the hook's ``invitation_of``: CalDAV;
obm-sync notifies).  16.x ``SendResponse`` may carry the user's words (airsyncbase:Body,
sent in the mail and as the reply's COMMENT) and, from 16.1, a new time
(ProposedStartTime/ProposedEndTime): the mail is then an iTIP COUNTER (RFC 5546 3.2.7).

Result Status (2.2.3.177.9): 1 success, 2 invalid meeting request (unknown item, no invitation
in it, bad UserResponse), 3 the mailbox failed (IMAP), 4 the server failed (SMTP, calendar).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs
from lxml.etree import _Element

from opush.backends.interfaces import (
    BackendError,
    MailboxNotFound,
    MessageNotFound,
)
from opush.backends.interfaces import MessageTooLarge as FetchTooLarge
from opush.commands.compose import identity, max_size, submit
from opush.commands.context import CommandContext, CommandResult
from opush.content.calendar import CalendarItemError, parse_date
from opush.content.email import prepare_outgoing
from opush.content.email.htmltext import html_to_text
from opush.content.email.imip import (
    MeetingAnswer,
    MeetingReply,
    NotAnInvitation,
    invitation_in,
    meeting_reply,
)
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.storage.interfaces import FolderKind
from opush.sync.ids import InvalidServerId, parse_mail_server_id
from opush.wbxml import E, ns

log = logger("opush.commands.meetingresponse")

MR = ns.MEETINGRESPONSE

SUCCESS = 1
INVALID_REQUEST = 2
MAILBOX_ERROR = 3
SERVER_ERROR = 4


def _q(tag: str, namespace: str = MR) -> str:
    return f"{{{namespace}}}{tag}"


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


@attrs.frozen
class MeetingRequest:
    """One ``Request`` of the command."""

    answer: MeetingAnswer | None
    request_id: str | None
    collection_id: str | None
    long_id: str | None
    instance_id: str | None
    send_response: bool
    #: 16.x SendResponse: the user's words, and a new time the user proposes (16.1).
    comment: str | None = None
    proposed: tuple[datetime, datetime] | None = None


def _send_response(el: _Element) -> tuple[str | None, tuple[datetime, datetime] | None]:
    """MS-ASCMD 2.2.3.157 SendResponse: airsyncbase:Body (Type/Data) and 16.1
    ProposedStartTime/ProposedEndTime (2.2.3.142, 2.2.3.141)."""
    send = el.find(_q("SendResponse"))
    if send is None:
        return None, None
    comment = None
    body = send.find(f"{{{ns.AIRSYNCBASE}}}Body")
    if body is not None:
        data = body.findtext(f"{{{ns.AIRSYNCBASE}}}Data") or ""
        kind = (body.findtext(f"{{{ns.AIRSYNCBASE}}}Type") or "1").strip()
        comment = (html_to_text(data) if kind == "2" else data).strip() or None
    start, end = _text(send.find(_q("ProposedStartTime"))), _text(send.find(_q("ProposedEndTime")))
    proposed = None
    if start and end:
        try:
            proposed = (parse_date(start), parse_date(end))
        except CalendarItemError:
            proposed = None
        if proposed is not None and proposed[1] < proposed[0]:
            proposed = None
    return comment, proposed


def parse(el: _Element, version: tuple[int, int]) -> MeetingRequest:
    raw = _text(el.find(_q("UserResponse")))
    answer: MeetingAnswer | None
    try:
        answer = MeetingAnswer(int(raw or ""))
    except ValueError:
        answer = None
    comment, proposed = _send_response(el)
    return MeetingRequest(
        answer=answer,
        request_id=_text(el.find(_q("RequestId"))),
        collection_id=_text(el.find(_q("CollectionId"))),
        long_id=_text(el.find(_q("LongId", ns.SEARCH))),
        instance_id=_text(el.find(_q("InstanceId"))),
        # Before 16.0 the server answers the organizer (see module docstring).
        send_response=version < (16, 0) or el.find(_q("SendResponse")) is not None,
        comment=comment,
        proposed=proposed,
    )


class _Failed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


async def _respond(ctx: CommandContext, req: MeetingRequest) -> str | None:
    """Handle one request; returns the CalendarId (if any), raises _Failed(status)."""
    if req.answer is None:
        raise _Failed(INVALID_REQUEST)
    server_id = req.request_id or req.long_id
    try:
        collection_id, uid = parse_mail_server_id(server_id)
    except InvalidServerId:
        collection_id, uid = None, None
    if req.request_id and req.collection_id and collection_id is not None:
        if req.collection_id.strip() != str(collection_id):
            raise _Failed(INVALID_REQUEST)
    if collection_id is None:
        # Not a mail ServerId: maybe a calendar item.
        return await _calendar_item(ctx, req)
    collection = await ctx.runtime.state.get_collection(
        ctx.device.user, ctx.device.device_id, collection_id
    )
    if collection is None:
        raise _Failed(INVALID_REQUEST)
    if collection.ref.kind is not FolderKind.MAIL:
        return await _calendar_item(ctx, req)
    assert uid is not None
    folder = collection.ref.backend_id
    store = ctx.mail_store()
    try:
        data = await store.fetch_body(folder, uid, max_size=max_size(ctx))
    except (MessageNotFound, MailboxNotFound, FetchTooLarge):
        raise _Failed(INVALID_REQUEST) from None
    except BackendError as e:
        log.warn("cannot read meeting request {f}:{uid}: {e}", f=folder, uid=uid, e=e)
        raise _Failed(MAILBOX_ERROR) from e
    ics = invitation_in(data) if data else None
    if ics is None:
        raise _Failed(INVALID_REQUEST)
    who = identity(ctx)
    try:
        reply = meeting_reply(
            ics,
            who,
            req.answer,
            instance_id=req.instance_id,
            comment=req.comment,
            proposed=req.proposed,
        )
    except NotAnInvitation as e:
        log.info("{f}:{uid} is not an invitation: {e}", f=folder, uid=uid, e=e)
        raise _Failed(INVALID_REQUEST) from e

    calendar_id = await _record(ctx, ics, req)
    if req.send_response:
        try:
            await submit(ctx, prepare_outgoing(reply.mime, who))
        except (BackendError, EasStatusError) as e:
            log.warn("iMIP reply to {org} not sent: {e}", org=reply.organizer, e=e)
            raise _Failed(SERVER_ERROR) from e
    try:
        await store.delete(folder, [uid], move_to_trash=True)
    except BackendError as e:
        log.warn("answered meeting request {f}:{uid} not removed: {e}", f=folder, uid=uid, e=e)
    return calendar_id if req.answer is not MeetingAnswer.DECLINED else None


async def _record(ctx: CommandContext, ics: str, req: MeetingRequest) -> str | None:
    """The calendar backend's hook (later modules); None without one."""
    hook: Any = ctx.runtime.services.get("meeting_responses")
    record = getattr(hook, "record", None)
    if record is None:
        return None
    try:
        result = await record(ctx, ics, req.answer, req.instance_id)
    except Exception as e:
        log.warn("calendar backend did not record the meeting response: {e}", e=e)
        raise _Failed(SERVER_ERROR) from e
    return str(result) if result is not None else None


async def _calendar_item(ctx: CommandContext, req: MeetingRequest) -> str | None:
    hook: Any = ctx.runtime.services.get("meeting_responses")
    record = getattr(hook, "record_calendar_item", None)
    if record is None:
        raise _Failed(INVALID_REQUEST)
    # Read before recording: a declined event leaves the calendar.
    reply = await _reply_from_calendar(ctx, hook, req) if req.send_response else None
    try:
        result = await record(
            ctx, req.collection_id, req.request_id or req.long_id, req.answer, req.instance_id
        )
    except Exception as e:
        log.warn("calendar backend did not record the meeting response: {e}", e=e)
        raise _Failed(SERVER_ERROR) from e
    if reply is not None:
        try:
            await submit(ctx, prepare_outgoing(reply.mime, identity(ctx)))
        except (BackendError, EasStatusError) as e:
            log.warn("iMIP reply to {org} not sent: {e}", org=reply.organizer, e=e)
            raise _Failed(SERVER_ERROR) from e
    if req.answer is MeetingAnswer.DECLINED or result is None:
        return None
    return str(result)


async def _reply_from_calendar(
    ctx: CommandContext, hook: Any, req: MeetingRequest
) -> MeetingReply | None:
    """The organizer's mail for an answer given from the calendar item (no invitation mail
    at hand), built from the event the calendar holds, when the backend does not notify the
    organizer itself (``invitation_of``: the CalDAV profile; obm-sync sends its own)."""
    invitation_of = getattr(hook, "invitation_of", None)
    if invitation_of is None or req.answer is None:
        return None
    try:
        ics = await invitation_of(ctx, req.request_id or req.long_id)
    except Exception as e:
        log.warn("the answered event could not be read back: {e}", e=e)
        return None
    if not ics:
        return None
    who = identity(ctx)
    try:
        reply = meeting_reply(
            ics,
            who,
            req.answer,
            instance_id=req.instance_id,
            comment=req.comment,
            proposed=req.proposed,
        )
    except NotAnInvitation:
        return None  # an event without an organizer to tell
    if reply.organizer.lower() == who.address.lower():
        return None  # the user's own meeting
    return reply


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q("MeetingResponse"):
        raise EasStatusError(INVALID_REQUEST, message="MeetingResponse without its root element")
    root = E(MR, "MeetingResponse")
    for el in request.iterchildren(_q("Request")):
        req = parse(el, ctx.version)
        calendar_id: str | None = None
        try:
            calendar_id = await _respond(ctx, req)
            status = SUCCESS
        except _Failed as f:
            status = f.status
        result = E(MR, "Result")
        if req.request_id is not None:
            result.append(E(MR, "RequestId", text=req.request_id))
        elif req.long_id is not None:
            result.append(E(ns.SEARCH, "LongId", text=req.long_id))
        result.append(E(MR, "Status", text=status))
        if calendar_id is not None and status == SUCCESS:
            result.append(E(MR, "CalendarId", text=calendar_id))
        root.append(result)
    return CommandResult.wbxml(root)
