"""RFC 5322/MIME message -> EAS email item (the children of AirSync:ApplicationData).

MS-ASEMAIL 2.2.2 (Email, Email2 elements), MS-ASAIRS 2.2.2 (Body, BodyPart, Attachments,
NativeBodyType), MS-ASCMD 2.2.3.125 (Options).  One entry point, :func:`email_application_data`,
takes a whole message (bytes or parsed) or a :class:`PartialMessage` (IMAP header + BODYSTRUCTURE
+ first bytes of the text part: the Sync fast path).  It never raises on message content: what
cannot be understood degrades to plain text and a log line.

Element order follows Exchange 2010 (the corpus' Sync responses): To, Cc, From, Subject, ReplyTo,
DateReceived, DisplayTo, ThreadTopic, Importance, Read, Attachments, Body, MessageClass,
MeetingRequest, InternetCPID, Flag, ContentClass, NativeBodyType, then the 14.0+ elements.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

import attrs

from opush.content.email import htmltext
from opush.content.email.charsets import codec_for, codepage, decode_bytes
from opush.content.email.conversations import conversation_id
from opush.content.email.filereference import MessageRef, file_reference
from opush.content.email.headers import (
    HeaderView,
    display_names,
    format_address,
    format_addresses,
    thread_topic,
)
from opush.content.email.ics import Invitation, eas_datetime, meeting_request
from opush.content.email.options import (
    TRUNCATION_CODES,
    BodyPreference,
    BodyType,
    EmailOptions,
    MimeSupport,
)
from opush.content.email.structure import (
    Layout,
    PartInfo,
    classify,
    display_name,
    parse_message,
    walk,
)
from opush.content.email.xml import (
    AIRSYNCBASE,
    EMAIL,
    EMAIL2,
    E,
    Element,
    clean_text,
    set_opaque,
    sub,
)
from opush.log import logger

log = logger("opush.content.email")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_OPTIONS = EmailOptions()


def parse_version(version: str | tuple[int, int]) -> tuple[int, int]:
    """ "14.1" -> (14, 1); junk -> (12, 1), the version the Java server fell back to."""
    if isinstance(version, tuple):
        return version
    try:
        major, _, minor = version.strip().partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return (12, 1)


@attrs.frozen
class MailFlags:
    """IMAP state of the message (RFC 3501 system flags, $Forwarded keyword)."""

    seen: bool = False
    flagged: bool = False
    answered: bool = False
    forwarded: bool = False
    draft: bool = False

    @classmethod
    def from_imap(cls, flags: Iterable[str]) -> MailFlags:
        names = {f.lower() for f in flags}
        return cls(
            seen="\\seen" in names,
            flagged="\\flagged" in names,
            answered="\\answered" in names,
            forwarded="$forwarded" in names,
            draft="\\draft" in names,
        )


@attrs.frozen
class PartialMessage:
    """What the Sync fast path fetched: header, structure and the start of the text part(s).

    ``texts`` maps an IMAP section to the first bytes of that part *as stored* (still
    transfer-encoded), i.e. ``BODY.PEEK[<section>]<0.N>``; ``mime`` is ``BODY.PEEK[]<0.N>`` when
    MIME was asked.  :func:`fetch_plan` says what to fetch.
    """

    headers: bytes
    parts: Sequence[PartInfo]
    size: int  # RFC822.SIZE
    texts: Mapping[str, bytes] = attrs.field(factory=dict)
    mime: bytes | None = None


@attrs.frozen
class FlagDetails:
    """What a device said about a flag beyond what IMAP keeps (\\Flagged only): MS-ASEMAIL
    2.2.2.35 Flag ``status`` (1 complete, 2 active) and its other children in the order the
    device sent them, as (namespace, tag, text): FlagType, dates (Tasks page), reminder..."""

    status: int
    children: tuple[tuple[str, str, str], ...] = ()


#: Every header field the converter reads from a PartialMessage.  The Sync fast path fetches
#: ``BODY.PEEK[HEADER.FIELDS (...)]`` of these only: real mail headers are mostly Received,
#: DKIM and list lines a device never sees (often several KB per message).  A test checks
#: that converting with only these fields gives the same item as with the whole header.
SYNC_HEADER_FIELDS = (
    "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID",
    "In-Reply-To", "References", "Thread-Topic", "Importance", "X-Priority", "Priority",
    "Content-Type", "MIME-Version",
)  # fmt: skip


# --- Reading content -----------------------------------------------------------------------------


class _Source:
    """Uniform access to a whole or partial message."""

    def __init__(self, message: bytes | Message | PartialMessage) -> None:
        self.partial: PartialMessage | None = None
        self.raw: bytes | None = None
        self.msg: Message | None = None
        self.leaves: dict[str, Message] = {}
        self.parts: list[PartInfo]
        if isinstance(message, PartialMessage):
            # Fast path: no email parser at all.
            self.partial = message
            self.parts = list(message.parts)
            self.size = message.size
            self.headers = HeaderView.from_bytes(message.headers)
            self.top_type = self.headers.content_type()
            return
        if isinstance(message, bytes | bytearray):
            self.raw = bytes(message)
            self.msg = parse_message(self.raw)
        else:
            self.msg = message
        pairs = walk(self.msg)
        self.parts = [p for p, _ in pairs]
        self.leaves = {p.path: m for p, m in pairs}
        self.size = len(self.raw) if self.raw is not None else 0
        self.headers = HeaderView(self.msg)
        try:
            self.top_type = self.msg.get_content_type()
        except Exception:
            self.top_type = "text/plain"

    def text(self, part: PartInfo) -> tuple[str, bool]:
        """Decoded text of a leaf and whether it is complete."""
        if self.partial is not None:
            data = self.partial.texts.get(part.path)
            if data is None:
                return "", part.size == 0
            complete = len(data) >= part.size
            return _decode_prefix(data, part, complete), complete
        leaf = self.leaves.get(part.path)
        if leaf is None:
            return "", True
        try:
            payload = leaf.get_payload(decode=True)
        except Exception:  # broken transfer encoding
            payload = None
        if not isinstance(payload, bytes):
            raw = leaf.get_payload()
            payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        return decode_bytes(payload, part.charset), True

    def mime(self) -> tuple[bytes, bool, int]:
        """Raw message bytes, whether complete, and the full size."""
        if self.partial is not None:
            data = self.partial.mime or b""
            return data, len(data) >= self.partial.size, max(self.partial.size, len(data))
        if self.raw is None and self.msg is not None:
            try:
                self.raw = self.msg.as_bytes()
            except Exception:
                self.raw = self.msg.as_string().encode("utf-8", "surrogateescape")
            self.size = len(self.raw)
        raw = self.raw or b""
        return raw, True, len(raw)


def _decode_prefix(data: bytes, part: PartInfo, complete: bool) -> str:
    """Decode the first bytes of a transfer-encoded part, cut anywhere."""
    if part.encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
        if not complete:
            cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            data = base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            data = b""
    elif part.encoding == "quoted-printable":
        if not complete:
            data = re.sub(rb"=[0-9A-Fa-f]?$", b"", data)
        data = quopri.decodestring(data)
    if complete:
        return decode_bytes(data, part.charset)
    codec = codec_for(part.charset) or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(codec)(errors="replace")
        return decoder.decode(data, final=False)
    except Exception:
        return decode_bytes(data, part.charset)


# --- Fetch plan for the fast path ----------------------------------------------------------------


def _needs_mime(
    options: EmailOptions, parts: Sequence[PartInfo], layout: Layout, version: tuple[int, int]
) -> bool:
    """Would the body be MIME (Type 4 first in the preference order, or 2.5 MIMEData)?"""
    if version < (12, 0):
        return options.mime_support is not None and _mime_allowed(options, parts, requested=True)
    prefs = options.body_preferences
    order = _body_order(prefs, _native_type(layout), *_mime_flags(options, parts))
    return bool(order) and order[0].type == BodyType.MIME


def fetch_plan(
    parts: Sequence[PartInfo], options: EmailOptions, version: str | tuple[int, int]
) -> dict[str, int | None]:
    """Sections to fetch (``""`` = the whole message) and how many bytes (None = all).

    For the Sync fast path: fetch ``BODY.PEEK[<section>]<0.N>`` for each entry, then build a
    :class:`PartialMessage`.  Sizes are transfer-encoded bytes, enough for the TruncationSize.
    """
    ver = parse_version(version)
    layout = classify(parts)
    plan: dict[str, int | None] = {}
    limit = _truncation_limit(options, ver)
    if _needs_mime(options, parts, layout, ver):
        pref = options.preference(BodyType.MIME)
        size = pref.truncation_size if pref is not None else _code_size(options.mime_truncation)
        plan[""] = size
        return plan
    wanted: list[PartInfo | None] = []
    prefs = options.body_preferences or (BodyPreference(type=BodyType.PLAIN),)
    if ver < (12, 0):
        prefs = (BodyPreference(type=BodyType.PLAIN),)
    for pref in prefs:
        if pref.type == BodyType.PLAIN or pref.preview:
            wanted.append(layout.plain or layout.html)
        if pref.type == BodyType.HTML:
            wanted.append(layout.html or layout.plain)
    if any(p.type == BodyType.HTML for p in options.body_part_preferences):
        wanted.append(layout.html or layout.plain)
    for part in wanted:
        if part is None or part.path in plan:
            continue
        if limit is None:
            plan[part.path] = None
        else:
            factor = {"base64": 1.4, "quoted-printable": 3.0}.get(part.encoding, 1.0)
            # HTML converted to plain text shrinks: fetch more of it.
            if part is layout.html and layout.plain is None:
                factor *= 4
            plan[part.path] = int(limit * factor) + 256
    if layout.calendar is not None:
        plan[layout.calendar.path] = None
    return plan


def _code_size(code: int | None) -> int | None:
    if code is None:
        return None
    return TRUNCATION_CODES.get(code)


def _truncation_limit(options: EmailOptions, version: tuple[int, int]) -> int | None:
    if version < (12, 0):
        return _code_size(options.truncation)
    prefs = tuple(p for p in options.body_preferences if p.type in (1, 2))
    prefs = prefs or (BodyPreference(type=BodyType.PLAIN),)
    sizes = [p.truncation_size for p in prefs]
    if any(s is None for s in sizes):
        return None
    preview = max((p.preview for p in prefs), default=0)
    return max([s for s in sizes if s is not None] + [preview * 4])


# --- Building ------------------------------------------------------------------------------------


def _is_smime(parts: Sequence[PartInfo]) -> bool:
    return any(
        p.content_type in ("application/pkcs7-mime", "application/x-pkcs7-mime",
                           "application/pkcs7-signature", "application/x-pkcs7-signature")
        for p in parts
    )  # fmt: skip


def _mime_allowed(options: EmailOptions, parts: Sequence[PartInfo], requested: bool) -> bool:
    """MS-ASCMD 2.2.3.100.3 MIMESupport.

    An absent MIMESupport with an explicit BodyPreference Type 4 is taken as a request for MIME
    (iOS' ItemOperations does this); an explicit 0 never sends MIME.
    """
    support = options.mime_support
    if support is None:
        return requested and bool(options.body_preferences)
    if support == MimeSupport.NEVER:
        return False
    if support == MimeSupport.SMIME_ONLY:
        return _is_smime(parts)
    return True


def _mime_flags(options: EmailOptions, parts: Sequence[PartInfo]) -> tuple[bool, bool]:
    """(MIME may be sent, MIME is preferred)."""
    ok = _mime_allowed(options, parts, requested=True)
    return ok, ok and options.mime_support in (MimeSupport.SMIME_ONLY, MimeSupport.ALWAYS)


@attrs.frozen
class _Candidate:
    type: int
    data: str | bytes
    complete: bool
    size: int  # estimated full size in bytes


def _utf8_cut(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


class _Bodies:
    """Plain, HTML and MIME renderings of one message, computed lazily."""

    def __init__(self, src: _Source, layout: Layout) -> None:
        self.src = src
        self.layout = layout
        self._plain: tuple[str, bool, int] | None = None
        self._html: tuple[str, bool, int] | None = None

    def _estimate(self, part: PartInfo | None, text: str, complete: bool) -> int:
        size = len(text.encode("utf-8"))
        if complete or part is None:
            return size
        return max(size, part.decoded_size())

    def plain(self) -> tuple[str, bool, int]:
        if self._plain is None:
            part = self.layout.plain
            if part is not None:
                text, complete = self.src.text(part)
                self._plain = (text, complete, self._estimate(part, text, complete))
            elif self.layout.html is not None:
                html, complete = self.src.text(self.layout.html)
                text = htmltext.html_to_text(html)
                est = len(text.encode("utf-8"))
                if not complete:
                    est = max(est, self.layout.html.decoded_size() // 3)
                self._plain = (text, complete, est)
            else:
                self._plain = ("", True, 0)
        return self._plain

    def html(self) -> tuple[str, bool, int]:
        if self._html is None:
            part = self.layout.html
            if part is not None:
                text, complete = self.src.text(part)
                self._html = (text, complete, self._estimate(part, text, complete))
            else:
                plain, complete, est = self.plain()
                html = htmltext.text_to_html(plain) if plain else ""
                self._html = (html, complete, max(est, len(html.encode("utf-8"))))
        return self._html

    def candidate(self, body_type: int) -> _Candidate | None:
        if body_type == BodyType.PLAIN:
            text, complete, size = self.plain()
            return _Candidate(BodyType.PLAIN, text, complete, size)
        if body_type == BodyType.HTML:
            text, complete, size = self.html()
            return _Candidate(BodyType.HTML, text, complete, size)
        if body_type == BodyType.MIME:
            data, complete, size = self.src.mime()
            return _Candidate(BodyType.MIME, data, complete, size)
        return None  # RTF (3) is not produced


def _native_type(layout: Layout) -> int:
    return BodyType.HTML if layout.html is not None else BodyType.PLAIN


def _body_order(
    prefs: Sequence[BodyPreference], native: int, mime_ok: bool, mime_first: bool = False
) -> list[BodyPreference]:
    """Candidates in order: the native type if asked (MS-ASAIRS 2.2.2.3.2), then richest first.

    MIME comes first when the device said MIMESupport 1/2 (MS-ASCMD 2.2.3.100.3: "send MIME
    data") and asked for Type 4.
    """
    usable = [p for p in prefs if p.type in (1, 2) or (p.type == 4 and mime_ok)]
    rank: dict[int, int] = {BodyType.HTML: 1, BodyType.MIME: 2, BodyType.PLAIN: 3}
    rank[native] = 0
    if mime_first:
        rank[BodyType.MIME] = -1
    return sorted(usable, key=lambda p: rank.get(p.type, 9))


def _set_data(el: Element, data: str | bytes) -> None:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or clean_text(text) != text:
            # 8-bit MIME that is not UTF-8 (or holds controls XML refuses): OPAQUE keeps the
            # bytes unchanged.
            set_opaque(el, data)
            return
        el.text = text
    else:
        el.text = clean_text(data)


def _fill_body(
    el: Element, cand: _Candidate, pref: BodyPreference, preview: str | None, tag_type: bool = True
) -> None:
    if tag_type:
        sub(el, AIRSYNCBASE, "Type", cand.type)
    data = cand.data
    limit = pref.truncation_size
    truncated = not cand.complete
    if limit is not None:
        if isinstance(data, bytes):
            if len(data) > limit:
                data, truncated = data[:limit], True
        else:
            cut = _utf8_cut(data, limit)
            if cut != data:
                data, truncated = cut, True
    size = max(cand.size, len(data) if isinstance(data, bytes) else len(data.encode("utf-8")))
    sub(el, AIRSYNCBASE, "EstimatedDataSize", size)
    if truncated:
        sub(el, AIRSYNCBASE, "Truncated", 1)
    if data:
        _set_data(sub(el, AIRSYNCBASE, "Data"), data)
    if preview:
        sub(el, AIRSYNCBASE, "Preview", preview)


def _body_element(
    bodies: _Bodies, options: EmailOptions, version: tuple[int, int], parts: Sequence[PartInfo]
) -> Element:
    prefs = options.body_preferences or (BodyPreference(type=BodyType.PLAIN),)
    native = _native_type(bodies.layout)
    order = _body_order(prefs, native, *_mime_flags(options, parts))
    if not order:
        order = [BodyPreference(type=BodyType.PLAIN)]
    body = E(AIRSYNCBASE, "Body")
    for pref in order:
        cand = bodies.candidate(pref.type)
        if cand is None:
            continue
        if pref.all_or_none and pref.truncation_size is not None:
            # MS-ASAIRS 2.2.2.3.2: no truncated content of this type; try the next preference.
            if cand.size > pref.truncation_size or not cand.complete:
                continue
        _fill_body(body, cand, pref, _preview(bodies, pref, version))
        return body
    # Every preference refused truncation: say what exists, send no data.
    first = order[0]
    cand = bodies.candidate(first.type) or _Candidate(BodyType.PLAIN, "", True, 0)
    sub(body, AIRSYNCBASE, "Type", cand.type)
    sub(body, AIRSYNCBASE, "EstimatedDataSize", cand.size)
    sub(body, AIRSYNCBASE, "Truncated", 1)
    return body


def _preview(bodies: _Bodies, pref: BodyPreference, version: tuple[int, int]) -> str | None:
    if version < (14, 0) or pref.preview <= 0:
        return None
    text, _, _ = bodies.plain()
    return htmltext.preview_text(text, pref.preview) or None


def _body_part_element(
    bodies: _Bodies, options: EmailOptions, version: tuple[int, int]
) -> Element | None:
    """MS-ASAIRS 2.2.2.10 BodyPart (14.1+, HTML only)."""
    if version < (14, 1):
        return None
    pref = next((p for p in options.body_part_preferences if p.type == BodyType.HTML), None)
    if pref is None:
        return None
    cand = bodies.candidate(BodyType.HTML)
    assert cand is not None
    part = E(AIRSYNCBASE, "BodyPart")
    if pref.all_or_none and pref.truncation_size is not None and cand.size > pref.truncation_size:
        sub(part, AIRSYNCBASE, "Status", 176)  # MS-ASAIRS 2.2.2.37: too large for AllOrNone
        sub(part, AIRSYNCBASE, "Type", BodyType.HTML)
        sub(part, AIRSYNCBASE, "EstimatedDataSize", cand.size)
        sub(part, AIRSYNCBASE, "Truncated", 1)
        return part
    sub(part, AIRSYNCBASE, "Status", 1)
    _fill_body(part, cand, pref, _preview(bodies, pref, version))
    return part


def _importance(headers: HeaderView) -> int:
    value = (headers.text("importance") or "").lower()
    if value.startswith("high"):
        return 2
    if value.startswith("low"):
        return 0
    prio = (headers.text("x-priority") or headers.text("priority") or "").strip().lower()
    if prio[:1] in ("1", "2") or prio.startswith("urgent"):
        return 2
    if prio[:1] in ("4", "5") or prio.startswith("non-urgent"):
        return 0
    return 1


def _date(headers: HeaderView, internaldate: datetime | None) -> datetime:
    if internaldate is not None:
        return internaldate if internaldate.tzinfo else internaldate.replace(tzinfo=UTC)
    raw = headers.text("date")
    if raw:
        try:
            parsed = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return EPOCH


def conversation_index(when: datetime) -> bytes:
    """MS-ASCON 2.2.2.4 ConversationIndex header: 5 bytes of the FILETIME of the send date."""
    filetime = int((when.timestamp() + 11644473600) * 10_000_000)
    return ((filetime >> 24) & 0xFFFFFFFFFF).to_bytes(5, "big")


def _message_class(parts: Sequence[PartInfo], ctype: str) -> str:
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        return "IPM.Note.SMIME"
    if ctype == "multipart/signed" and _is_smime(parts):
        return "IPM.Note.SMIME.MultipartSigned"
    return "IPM.Note"


def _invitation(src: _Source, layout: Layout, version: tuple[int, int]) -> Invitation | None:
    part = layout.calendar
    if part is None:
        return None
    try:
        text, _ = src.text(part)
        return meeting_request(text, version)
    except Exception as e:  # OP-223: an illegal ICS never blocks the sync
        log.warn("invitation ignored, ICS not understood: {error!r}", error=e)
        return None


def _attachments(
    layout: Layout, ref: MessageRef | None, version: tuple[int, int]
) -> Element | None:
    if not layout.attachments:
        return None
    if version < (12, 0):
        atts = E(EMAIL, "Attachments")
        for part in layout.attachments:
            att = sub(atts, EMAIL, "Attachment")
            sub(att, EMAIL, "AttMethod", 5 if part.content_type == "message/rfc822" else 1)
            sub(att, EMAIL, "AttSize", part.decoded_size())
            sub(att, EMAIL, "DisplayName", display_name(part))
            sub(att, EMAIL, "AttName", _ref(ref, part))
        return atts
    atts = E(AIRSYNCBASE, "Attachments")
    for part in layout.attachments:
        att = sub(atts, AIRSYNCBASE, "Attachment")
        sub(att, AIRSYNCBASE, "DisplayName", display_name(part))
        sub(att, AIRSYNCBASE, "FileReference", _ref(ref, part))
        # MS-ASAIRS 2.2.2.31 Method: 1 normal attachment, 5 embedded message (OP-82).
        sub(att, AIRSYNCBASE, "Method", 5 if part.content_type == "message/rfc822" else 1)
        sub(att, AIRSYNCBASE, "EstimatedDataSize", part.decoded_size())
        if part.content_id:
            sub(att, AIRSYNCBASE, "ContentId", part.content_id)
        if part.content_location:
            sub(att, AIRSYNCBASE, "ContentLocation", part.content_location)
        inline = part.content_id is not None and (
            part.in_related or (part.disposition == "inline" and part.maintype == "image")
        )
        if inline:
            sub(att, AIRSYNCBASE, "IsInline", 1)
    return atts


def _ref(ref: MessageRef | None, part: PartInfo) -> str:
    if ref is None:
        return part.path
    return file_reference(ref, part.path)


def _legacy_body(
    bodies: _Bodies, src: _Source, options: EmailOptions, parts: Sequence[PartInfo]
) -> list[Element]:
    """Protocol 2.5: Email:Body/BodyTruncated, or MIMEData (MS-ASEMAIL 2.2.2.9, 2.2.2.50)."""
    out: list[Element] = []
    if options.mime_support is not None and _mime_allowed(options, parts, requested=True):
        data, complete, size = src.mime()
        limit = _code_size(options.mime_truncation)
        truncated = not complete
        if limit is not None and len(data) > limit:
            data, truncated = data[:limit], True
        out.append(E(EMAIL, "MIMETruncated", text=1 if truncated else 0))
        out.append(E(EMAIL, "MIMESize", text=size))
        el = E(EMAIL, "MIMEData")
        _set_data(el, data)
        out.append(el)
        return out
    text, complete, size = bodies.plain()
    limit = _code_size(options.truncation)
    truncated = not complete
    if limit is not None:
        cut = text[:limit]
        if cut != text:
            text, truncated = cut, True
    body = E(EMAIL, "Body")
    _set_data(body, text)
    out.append(body)
    if truncated:
        out.append(E(EMAIL, "BodySize", text=size))
    out.append(E(EMAIL, "BodyTruncated", text=1 if truncated else 0))
    return out


def email_application_data(
    message: bytes | Message | PartialMessage,
    *,
    ref: MessageRef | None = None,
    flags: MailFlags = MailFlags(),
    categories: Sequence[str] = (),
    internaldate: datetime | None = None,
    options: EmailOptions = DEFAULT_OPTIONS,
    version: str | tuple[int, int] = "12.1",
    user_addresses: Sequence[str] = (),
    last_verb_time: datetime | None = None,
    flag_details: FlagDetails | None = None,
) -> list[Element]:
    """Children of ApplicationData for one mail; never raises on bad content.

    ``ref`` identifies the message for attachment FileReferences; ``internaldate`` (IMAP
    INTERNALDATE) is DateReceived, else the Date header; ``user_addresses`` lets ReceivedAsBcc
    be detected; ``categories`` are the IMAP keywords the caller maps to categories;
    ``flag_details`` (kept by the caller) are used when they agree with ``flags``.
    """
    ver = parse_version(version)
    try:
        return _build(
            message,
            ref,
            flags,
            categories,
            internaldate,
            options,
            ver,
            user_addresses,
            last_verb_time,
            flag_details,
        )
    except Exception as e:  # last resort: a minimal but valid item
        log.error("mail conversion failed ({error!r}), sending a minimal item", error=e)
        return _minimal(flags, internaldate, ver)


def _minimal(
    flags: MailFlags, internaldate: datetime | None, ver: tuple[int, int]
) -> list[Element]:
    out = [
        E(EMAIL, "DateReceived", text=eas_datetime(internaldate or EPOCH)),
        E(EMAIL, "Importance", text=1),
        E(EMAIL, "Read", text=1 if flags.seen else 0),
    ]
    if ver >= (12, 0):
        body = E(AIRSYNCBASE, "Body")
        sub(body, AIRSYNCBASE, "Type", BodyType.PLAIN)
        sub(body, AIRSYNCBASE, "EstimatedDataSize", 0)
        out.append(body)
    out.append(E(EMAIL, "MessageClass", text="IPM.Note"))
    return out


def _build(
    message: bytes | Message | PartialMessage,
    ref: MessageRef | None,
    flags: MailFlags,
    categories: Sequence[str],
    internaldate: datetime | None,
    options: EmailOptions,
    ver: tuple[int, int],
    user_addresses: Sequence[str],
    last_verb_time: datetime | None,
    flag_details: FlagDetails | None = None,
) -> list[Element]:
    src = _Source(message)
    h = src.headers
    layout = classify(src.parts)
    bodies = _Bodies(src, layout)
    out: list[Element] = []

    def add(ns: str, tag: str, text: str | int | None) -> None:
        if text is not None and text != "":
            out.append(E(ns, tag, text=text))

    to = h.addresses("to")
    cc = h.addresses("cc")
    sender_from = h.addresses("from")
    add(EMAIL, "To", format_addresses(to))
    add(EMAIL, "Cc", format_addresses(cc))
    add(EMAIL, "From", format_addresses(sender_from[:1]) or h.text("from"))
    subject = h.text("subject") or ""
    add(EMAIL, "Subject", subject)
    add(EMAIL, "ReplyTo", format_addresses(h.addresses("reply-to")))
    when = _date(h, internaldate)
    out.append(E(EMAIL, "DateReceived", text=eas_datetime(when)))
    add(EMAIL, "DisplayTo", display_names(to))
    add(EMAIL, "ThreadTopic", h.text("thread-topic") or thread_topic(subject))
    out.append(E(EMAIL, "Importance", text=_importance(h)))
    out.append(E(EMAIL, "Read", text=1 if flags.seen else 0))

    invitation = _invitation(src, layout, ver)
    atts = _attachments(layout, ref, ver)
    if ver < (12, 0):
        if atts is not None:
            out.append(atts)
        out.extend(_legacy_body(bodies, src, options, src.parts))
    else:
        if atts is not None:
            out.append(atts)
        out.append(_body_element(bodies, options, ver, src.parts))
        part_el = _body_part_element(bodies, options, ver)
        if part_el is not None:
            out.append(part_el)

    message_class = (
        invitation.message_class if invitation else _message_class(src.parts, src.top_type)
    )
    out.append(E(EMAIL, "MessageClass", text=message_class))
    if invitation is not None and len(invitation.element):
        out.append(invitation.element)
    body_part = layout.html if layout.html is not None else layout.plain
    out.append(E(EMAIL, "InternetCPID", text=codepage(body_part.charset) if body_part else 65001))
    if ver >= (12, 0):
        flag = E(EMAIL, "Flag")
        details = flag_details
        if details is not None and (details.status == 2) != flags.flagged:
            details = None  # IMAP changed since the device set it: IMAP wins
        if details is not None:
            sub(flag, EMAIL, "Status", details.status)
            for ns_, tag, value in details.children:
                sub(flag, ns_, tag, value)
        elif flags.flagged:
            # MS-ASEMAIL 2.2.2.35 Flag: Status 2 = active; FlagType as Outlook writes it.
            sub(flag, EMAIL, "Status", 2)
            sub(flag, EMAIL, "FlagType", "for Follow Up")
        out.append(flag)
        content_class = (
            "urn:content-classes:calendarmessage" if invitation else "urn:content-classes:message"
        )
        out.append(E(EMAIL, "ContentClass", text=content_class))
        out.append(E(AIRSYNCBASE, "NativeBodyType", text=_native_type(layout)))
    if ver >= (14, 0):
        cid = E(EMAIL2, "ConversationId")
        set_opaque(cid, conversation_id(h))
        out.append(cid)
        cidx = E(EMAIL2, "ConversationIndex")
        set_opaque(cidx, conversation_index(when))
        out.append(cidx)
        verb = 3 if flags.forwarded else (1 if flags.answered else 0)
        if verb:
            # MS-ASEMAIL 2.2.2.45 LastVerbExecuted: 1 reply to sender, 2 reply all, 3 forward.
            out.append(E(EMAIL2, "LastVerbExecuted", text=verb))
            if last_verb_time is not None:
                out.append(E(EMAIL2, "LastVerbExecutionTime", text=eas_datetime(last_verb_time)))
        if user_addresses:
            mine = {a.lower() for a in user_addresses}
            bcc = {a.lower() for _, a in h.addresses("bcc")}
            if mine & bcc:
                out.append(E(EMAIL2, "ReceivedAsBcc", text=1))
        sender = h.addresses("sender")
        if sender and (not sender_from or sender[0][1].lower() != sender_from[0][1].lower()):
            out.append(E(EMAIL2, "Sender", text=format_address(*sender[0])))
        cats = E(EMAIL, "Categories")
        for cat in categories:
            if cat:
                sub(cats, EMAIL, "Category", cat)
        out.append(cats)
    if ver >= (16, 0):
        out.append(E(EMAIL2, "IsDraft", text=1 if flags.draft else 0))
    return out
