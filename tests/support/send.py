"""Helpers for the sending tests (SendMail, SmartReply, SmartForward, MeetingResponse): request
bodies in both forms, a raw POST that keeps failures, and small mail builders."""

from __future__ import annotations

import email
import uuid
from collections.abc import Mapping
from email.message import EmailMessage, Message
from email.policy import default as default_policy
from typing import Any

import requests
from lxml import etree
from pyactivesync import Client

from opush.wbxml import E, encode, ns

CM = ns.COMPOSEMAIL
MR = ns.MEETINGRESPONSE


def compose_tree(
    command: str,
    mime: bytes,
    *,
    client_id: str | None = None,
    save_in_sent: bool = True,
    folder_id: str | None = None,
    item_id: str | None = None,
    long_id: str | None = None,
    replace_mime: bool = False,
    as_text: bool = False,
) -> etree._Element:
    """The 14.0+ ComposeMail request; ``as_text`` puts Mime as a string (what xml2wbxml
    writes from plain XML) instead of OPAQUE."""
    children: list[etree._Element | None] = [E(CM, "ClientId", text=client_id or uuid.uuid4().hex)]
    if save_in_sent:
        children.append(E(CM, "SaveInSentItems"))
    if replace_mime:
        children.append(E(CM, "ReplaceMime"))
    if folder_id or item_id or long_id:
        source = E(CM, "Source")
        if folder_id:
            source.append(E(CM, "FolderId", text=folder_id))
        if item_id:
            source.append(E(CM, "ItemId", text=item_id))
        if long_id:
            source.append(E(CM, "LongId", text=long_id))
        children.append(source)
    mime_el = E(CM, "Mime", text=mime.decode("utf-8") if as_text else mime)
    children.append(mime_el)
    return E(CM, command, *children)


def meeting_response_tree(
    requests_: list[tuple[int, str | None, str | None]], *, send_response: bool = False
) -> etree._Element:
    """MeetingResponse with (UserResponse, CollectionId, RequestId) per Request."""
    root = E(MR, "MeetingResponse")
    for answer, collection_id, request_id in requests_:
        req = E(MR, "Request", E(MR, "UserResponse", text=answer))
        if collection_id is not None:
            req.append(E(MR, "CollectionId", text=collection_id))
        if request_id is not None:
            req.append(E(MR, "RequestId", text=request_id))
        if send_response:
            req.append(E(MR, "SendResponse"))
        root.append(req)
    return root


def raw_post(
    c: Client,
    command: str,
    body: bytes,
    *,
    version: str = "16.1",
    content_type: str = "application/vnd.ms-sync.wbxml",
    params: Mapping[str, str] | None = None,
) -> requests.Response:
    """POST over pyactivesync's session (auth, device, policy key); the response is returned
    whatever its code."""
    t = c._transport
    query = {"Cmd": command, "User": c.user, "DeviceId": t.device_id, "DeviceType": t.device_type}
    query.update(params or {})
    headers: dict[str, Any] = {"Content-Type": content_type, "MS-ASProtocolVersion": version}
    if t.policy_key:
        headers["X-MS-PolicyKey"] = t.policy_key
    return t.session.post(t.base_url, params=query, data=body, headers=headers, timeout=30)


def post_tree(
    c: Client, command: str, tree: etree._Element, version: str = "16.1"
) -> requests.Response:
    return raw_post(c, command, encode(tree, version), version=version)


def text_mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    cc: str | None = None,
    bcc: str | None = None,
    message_id: bool = True,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    if bcc:
        msg["Bcc"] = bcc
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def invitation_mail(organizer: str, attendee: str, uid: str, summary: str) -> bytes:
    """A meeting request as calendar clients send it (text + text/calendar METHOD:REQUEST)."""
    ics = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "PRODID:-//Test//EN",
            "VERSION:2.0",
            "METHOD:REQUEST",
            "BEGIN:VEVENT",
            f"UID:{uid}",
            "DTSTAMP:20260101T090000Z",
            "DTSTART:20301001T100000Z",
            "DTEND:20301001T110000Z",
            "SEQUENCE:2",
            f"SUMMARY:{summary}",
            f"ORGANIZER;CN=Organizer:mailto:{organizer}",
            f"ATTENDEE;CN=Attendee;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{attendee}",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    msg = EmailMessage()
    msg["From"] = organizer
    msg["To"] = attendee
    msg["Subject"] = f"Invitation: {summary}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(f"You are invited: {summary}\n")
    msg.add_alternative(ics, subtype="calendar", params={"method": "REQUEST"})
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=default_policy)


def body_text(data: bytes) -> str:
    """Every text/plain and text/html part of a mail, decoded, joined."""
    texts = []
    for part in parse(data).walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(texts)


def fetch_all(services: Any, user: str, folder: str) -> list[tuple[int, set[str], bytes]]:
    """(uid, flags, bytes) of every message of ``folder`` (blocking IMAP)."""
    import imaplib

    out: list[tuple[int, set[str], bytes]] = []
    with services.imap(user) as imap:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        for uid in (data[0] or b"").split():
            _, parts = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            flags: set[str] = set()
            body = b""
            for part in parts:
                if isinstance(part, tuple):
                    flags = {f.decode() for f in imaplib.ParseFlags(part[0])}
                    body = part[1]
            out.append((int(uid), flags, body))
    return out
