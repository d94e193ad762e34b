"""MeetingResponse for the standalone profile (``runtime.services["meeting_responses"]``):
the invitation's event goes into the user's default CalDAV calendar with the user's answer
as their PARTSTAT (RFC 5545 3.2.12); a declined meeting leaves the calendar, as Exchange does.
The organizer's iMIP REPLY is the MeetingResponse command's own mail.  An answer to one
occurrence (InstanceId) is recorded on the whole event."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from opush.backends.dav.client import DavError
from opush.backends.dav.sources import ICS_TYPE, DavFolderSource
from opush.backends.interfaces import BackendUnavailable
from opush.log import logger
from opush.storage.interfaces import FolderKind
from opush.sync.ids import InvalidServerId, parse_server_id

log = logger("opush.backends.dav")

_LINE = re.compile(r"\r\n[ \t]|\n[ \t]")


def _unfold(text: str) -> list[str]:
    return [line for line in _LINE.sub("", text).replace("\r\n", "\n").split("\n") if line]


def _fold(line: str) -> str:
    out: list[str] = []
    current = ""
    for ch in line:
        if len((current + ch).encode("utf-8")) > (75 if not out else 74):
            out.append(current)
            current = ""
        current += ch
    out.append(current)
    return "\r\n ".join(out)


def with_partstat(ics_text: str, email: str, partstat: str) -> str:
    """The calendar object with ``email``'s PARTSTAT set (added as an attendee if absent),
    METHOD dropped (a CalDAV resource is not an iTIP message, RFC 4791 4.1)."""
    me = email.lower()
    out: list[str] = []
    in_event = found = False
    for line in _unfold(ics_text):
        upper = line.upper()
        if upper.startswith("METHOD:"):
            continue
        if upper == "BEGIN:VEVENT":
            in_event, found = True, False
        if in_event and upper.startswith("ATTENDEE") and line.lower().endswith(f"mailto:{me}"):
            head, _, value = line.partition(":")
            params = [
                p for p in head.split(";")[1:] if not p.upper().startswith(("PARTSTAT=", "RSVP="))
            ]
            line = ";".join(["ATTENDEE", *params, f"PARTSTAT={partstat}"]) + ":" + value
            found = True
        if upper == "END:VEVENT":
            if not found:
                out.append(f"ATTENDEE;PARTSTAT={partstat}:mailto:{email}")
            in_event = False
        out.append(line)
    return "\r\n".join(_fold(line) for line in out) + "\r\n"


def uid_of(ics_text: str) -> str | None:
    for line in _unfold(ics_text):
        if line.upper().startswith("UID:"):
            return line[4:].strip() or None
    return None


class DavMeetingResponses:
    def __init__(self, accounts: Any) -> None:
        self.accounts = accounts

    async def _calendar(self, ctx: Any) -> tuple[Any, str]:
        client = self.accounts.client(ctx.credentials)
        folders = await DavFolderSource(client, FolderKind.CALENDAR).list_folders()
        return client, folders[0].backend_id

    async def _store(
        self, client: Any, href: str, item_id: str, text: str, answer: Any, email: str
    ) -> bool:
        """Put ``text`` with the user's answer at href+item_id; False when declined."""
        member = href + item_id
        for _attempt in range(2):
            current = await client.get(member)
            if answer.partstat == "DECLINED":
                if current is not None:
                    await client.delete(member)
                return False
            base = current.data if current is not None and current.data else text
            try:
                await client.put(
                    member,
                    with_partstat(base, email, answer.partstat),
                    ICS_TYPE,
                    etag=(current.etag or "*") if current is not None else None,
                )
                return True
            except DavError as e:
                if e.status != 412:
                    raise
        return True

    async def _server_id(self, ctx: Any, href: str, item_id: str) -> str | None:
        collection = await ctx.runtime.state.find_collection(
            ctx.device.user, ctx.device.device_id, FolderKind.CALENDAR, href
        )
        return None if collection is None else f"{collection.collection_id}:{item_id}"

    async def record(
        self, ctx: Any, invitation_ics: str, answer: Any, instance_id: str | None
    ) -> str | None:
        uid = uid_of(invitation_ics)
        if uid is None:
            return None
        # The same name a device Add of this UID gets (DavCalendarSource.apply_add).
        item_id = f"{hashlib.sha1(uid.encode()).hexdigest()}.ics"
        try:
            client, href = await self._calendar(ctx)
            kept = await self._store(
                client, href, item_id, invitation_ics, answer, ctx.credentials.user.email
            )
        except (DavError, BackendUnavailable) as e:
            # The answer still goes to the organizer (the command's mail): only the calendar
            # copy is missing, e.g. a user without a CalDAV account.
            log.warn("the invitation {uid} could not be put in the calendar: {e}", uid=uid, e=e)
            return None
        return await self._server_id(ctx, href, item_id) if kept else None

    async def record_calendar_item(
        self,
        ctx: Any,
        collection_id: str | None,
        server_id: str | None,
        answer: Any,
        instance_id: str | None,
    ) -> str | None:
        try:
            cid, item_id = parse_server_id(server_id)
        except InvalidServerId:
            raise ValueError(f"not a calendar item: {server_id!r}") from None
        collection = await ctx.runtime.state.get_collection(
            ctx.device.user, ctx.device.device_id, cid
        )
        if collection is None or collection.ref.kind is not FolderKind.CALENDAR:
            raise ValueError(f"not a calendar item: {server_id!r}")
        client = self.accounts.client(ctx.credentials)
        href = collection.ref.backend_id
        current = await client.get(href + item_id)
        if current is None:
            raise ValueError(f"no such event: {server_id!r}")
        await self._store(
            client, href, item_id, current.data or "", answer, ctx.credentials.user.email
        )
        return server_id
