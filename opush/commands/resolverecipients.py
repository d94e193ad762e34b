"""ResolveRecipients (MS-ASCMD 2.2.1.14): who is behind the names a user typed, from the GAL.

Each ``To`` (a name or an address) is looked up in the directory (``opush.backends.ldap``):

- an entry whose address is exactly the text, or a single match: Status 1 with it;
- several matches: Status 2 (ambiguous) with up to MaxAmbiguousRecipients suggestions
  (default 19, MS-ASCMD 2.2.3.96);
- none (or no directory configured): Status 4, RecipientCount 0.

Recipients are Type 1 (GAL, 2.2.3.185.1).  What the device may ask for each of them:

- Certificates (CertificateRetrieval 2, full X.509): the directory's userCertificate;binary
  and the certificates of userSMIMECertificate, at most MaxCertificates, Status 1; none:
  Status 7 (no valid certificate, 2.2.3.177.14).  Mini certificates (3) are not produced:
  Status 7.
- Picture (14.1+): the directory's jpegPhoto within MaxSize/MaxPictures (per To),
  ``opush.commands.pictures``.
- Availability (StartTime..EndTime): MergedFreeBusy from the calendar backend
  (``runtime.services["availability"]``: CalDAV free/busy in the standalone profile); none
  or unreadable: Status 163 (availability failure).
Response Status values (2.2.3.177.14): 1 success, 2 ambiguous (suggestions), 4 not resolved;
ResolveRecipients Status 5 protocol error (no To, more than 100), 6 server error (the
directory failed).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from lxml.etree import _Element

from opush.backends.ldap import DirectoryEntry, DirectoryUnavailable, directory_for
from opush.commands.context import CommandContext, CommandResult
from opush.commands.pictures import Pictures
from opush.content.calendar import CalendarItemError, parse_date
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.wbxml import E, ns

log = logger("opush.commands.resolverecipients")

R = ns.RESOLVERECIPIENTS

SUCCESS = 1
AMBIGUOUS = 2
NOT_RESOLVED = 4
PROTOCOL_ERROR = 5
SERVER_ERROR = 6

MAX_TO = 100
DEFAULT_MAX_AMBIGUOUS = 19
TYPE_GAL = 1
NO_VALID_CERTIFICATE = 7
AVAILABILITY_FAILURE = 163


def _q(tag: str) -> str:
    return f"{{{R}}}{tag}"


def _text(el: _Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    return el.text.strip()


def _int(el: _Element | None, default: int) -> int:
    text = _text(el)
    return int(text) if text is not None and text.isdigit() else default


def choose(typed: str, entries: list[DirectoryEntry]) -> tuple[int, list[DirectoryEntry]]:
    """The resolution status and the recipients to list for one ``To``."""
    usable = [e for e in entries if e.email]
    exact = [e for e in usable if (e.email or "").lower() == typed.strip().lower()]
    if exact:
        return SUCCESS, exact[:1]
    if len(usable) == 1:
        return SUCCESS, usable
    if usable:
        return AMBIGUOUS, usable
    return NOT_RESOLVED, []


def _recipient(
    entry: DirectoryEntry,
    certificates: int,
    max_certificates: int | None,
    availability: _Element | None,
    pictures: Pictures | None,
) -> _Element:
    out = E(
        R,
        "Recipient",
        E(R, "Type", text=TYPE_GAL),
        E(R, "DisplayName", text=entry.display_name or entry.email or ""),
        E(R, "EmailAddress", text=entry.email or ""),
    )
    if availability is not None:
        out.append(availability)
    if certificates in (2, 3):
        found = list(entry.certificates) if certificates == 2 else []
        if max_certificates is not None:
            found = found[:max_certificates]
        certs = E(R, "Certificates")
        certs.append(E(R, "Status", text=SUCCESS if found else NO_VALID_CERTIFICATE))
        certs.append(E(R, "CertificateCount", text=len(found)))
        for der in found:
            # MS-ASCMD 2.2.3.23.1 Certificate: the X.509 BLOB, base64 text
            certs.append(E(R, "Certificate", text=base64.b64encode(der).decode("ascii")))
        out.append(certs)
    if pictures is not None:
        out.append(pictures.element(R, entry.photo))
    return out


def _availability_window(el: _Element | None) -> tuple[datetime, datetime] | None:
    """Options/Availability StartTime and EndTime (MS-ASCMD 2.2.3.16); an unreadable window
    still asks for availability (answered 163)."""
    if el is None:
        return None
    try:
        return parse_date(_text(el.find(_q("StartTime")))), parse_date(
            _text(el.find(_q("EndTime")))
        )
    except CalendarItemError:
        return (datetime.min.replace(tzinfo=UTC), datetime.min.replace(tzinfo=UTC))


async def _availability(
    ctx: CommandContext, entry: DirectoryEntry, window: tuple[datetime, datetime]
) -> _Element:
    """``Availability``: Status 1 with MergedFreeBusy (2.2.3.99) from the calendar backend
    (``runtime.services["availability"]``), else Status 163."""
    source: Any = ctx.runtime.services.get("availability")
    merged = None
    start, end = window
    if source is not None and entry.email and end > start:
        merged = await source.merged(ctx.credentials, entry.email, start, end)
    if merged is None:
        return E(R, "Availability", E(R, "Status", text=AVAILABILITY_FAILURE))
    return E(R, "Availability", E(R, "Status", text=SUCCESS), E(R, "MergedFreeBusy", text=merged))


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _q("ResolveRecipients"):
        raise EasStatusError(PROTOCOL_ERROR, message="ResolveRecipients without its root")
    typed = [t for el in request.iterfind(_q("To")) if (t := _text(el))]
    if not typed or len(typed) > MAX_TO:
        raise EasStatusError(PROTOCOL_ERROR, message=f"{len(typed)} To elements")
    options = request.find(_q("Options"))
    certificates = _int(options.find(_q("CertificateRetrieval")), 1) if options is not None else 1
    max_ambiguous = (
        _int(options.find(_q("MaxAmbiguousRecipients")), DEFAULT_MAX_AMBIGUOUS)
        if options is not None
        else DEFAULT_MAX_AMBIGUOUS
    )
    window = _availability_window(options.find(_q("Availability")) if options is not None else None)
    picture_el = options.find(_q("Picture")) if options is not None else None
    wants_pictures = picture_el is not None and ctx.version >= (14, 1)
    max_certificates = _int(options.find(_q("MaxCertificates")), -1) if options is not None else -1
    directory = directory_for(ctx.runtime)
    root = E(R, "ResolveRecipients", E(R, "Status", text=SUCCESS))
    for text in typed:
        entries: list[DirectoryEntry] = []
        if directory is not None:
            try:
                entries = await directory.search(
                    ctx.user,
                    text,
                    photos=wants_pictures,
                    certificates=certificates == 2,
                )
            except DirectoryUnavailable as e:
                log.warn("ResolveRecipients lookup failed: {error}", error=e)
                raise EasStatusError(SERVER_ERROR, message=str(e), level="warn") from None
        status, found = choose(text, entries)
        if status == AMBIGUOUS:
            found = found[: max(0, max_ambiguous)]
        response = E(R, "Response", E(R, "To", text=text), E(R, "Status", text=status))
        response.append(E(R, "RecipientCount", text=len(found)))
        # MaxPictures counts per To (MS-ASCMD 2.2.3.104.2).
        pictures = Pictures.from_request(picture_el) if wants_pictures else None
        for entry in found:
            response.append(
                _recipient(
                    entry,
                    certificates,
                    max_certificates if max_certificates >= 0 else None,
                    await _availability(ctx, entry, window) if window is not None else None,
                    pictures,
                )
            )
        root.append(response)
    return CommandResult.wbxml(root)
