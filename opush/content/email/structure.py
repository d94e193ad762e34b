"""MIME structure with IMAP section numbers, from a parsed message or an IMAP BODYSTRUCTURE.

Both sources give the same :class:`PartInfo` list, so the choice of body parts and the list of
attachments are computed once for a whole message (ItemOperations, Fetch) and for the header-only
fast path of Sync (ENVELOPE/BODYSTRUCTURE plus the first bytes of the text part).  Section numbers
follow RFC 3501 6.4.5 (BODY[<section>]): a single-part message's body is "1"; a
``message/rfc822`` part is a leaf here (it is offered whole as an ``.eml`` attachment, OP-82).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import quopri
import re
from collections.abc import Mapping, Sequence
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value
from typing import Any

import attrs

from opush.content.email.headers import HeaderView, decode_words


@attrs.frozen
class PartInfo:
    """One leaf of the MIME tree."""

    path: str
    content_type: str  # lower-case "type/subtype"
    params: Mapping[str, str] = attrs.field(factory=dict)  # lower-case names
    encoding: str = "7bit"  # Content-Transfer-Encoding, lower-case
    size: int = 0  # encoded octets, as IMAP reports them
    disposition: str | None = None  # "inline" / "attachment"
    filename: str | None = None  # decoded
    content_id: str | None = None  # without <>
    content_location: str | None = None
    in_related: bool = False  # child of multipart/related
    in_alternative: bool = False
    embedded_subject: str | None = None  # message/rfc822: Subject of the attached mail
    exact_size: int | None = None  # decoded octets when known (whole message parsed)

    @property
    def charset(self) -> str | None:
        return self.params.get("charset")

    @property
    def maintype(self) -> str:
        return self.content_type.split("/", 1)[0]

    def decoded_size(self) -> int:
        """Estimate of the decoded size from the encoded one (exact enough for base64)."""
        if self.exact_size is not None:
            return self.exact_size
        if self.encoding == "base64":
            lines = self.size // 78  # 76 characters + CRLF per line
            return max(0, (self.size - 2 * lines) * 3 // 4)
        return self.size


def parse_message(data: bytes) -> Message:
    """Parse with the tolerant, fast compat32 policy; never raises."""
    try:
        return BytesParser(policy=compat32).parsebytes(data)
    except Exception:  # parser crash on hostile input: degrade to plain text
        msg = Message()
        msg.set_payload(data.decode("ascii", errors="surrogateescape"))
        return msg


def parse_headers(data: bytes) -> Message:
    """Headers only (the IMAP BODY[HEADER] of the fast path)."""
    try:
        return BytesParser(policy=compat32).parsebytes(data, headersonly=True)
    except Exception:
        return Message()


def _content_type(msg: Message) -> str:
    try:
        ctype = msg.get_content_type()
    except Exception:
        return "text/plain"
    return ctype if "/" in ctype else "text/plain"


def _params(msg: Message) -> dict[str, str]:
    result: dict[str, str] = {}
    try:
        params = msg.get_params() or []
    except Exception:
        return result
    for key, value in params[1:]:
        try:
            text = collapse_rfc2231_value(value) if isinstance(value, tuple) else value
        except Exception:
            text = ""
        result[str(key).lower()] = decode_words(str(text)).strip().strip('"')
    return result


def _filename(msg: Message) -> str | None:
    try:
        name = msg.get_filename() or msg.get_param("name")
    except Exception:
        return None
    if isinstance(name, tuple):
        try:
            name = collapse_rfc2231_value(name)
        except Exception:
            return None
    if not name:
        return None
    decoded = decode_words(str(name)).strip().strip('"')
    return decoded.replace("/", "_").replace("\\", "_") or None


def _disposition(msg: Message) -> str | None:
    try:
        value = msg.get_content_disposition()
    except Exception:
        return None
    return value.lower() if value else None


def _strip_cid(value: str | None) -> str | None:
    if not value:
        return None
    cid = value.strip().strip("<>").strip()
    return cid or None


def _encoded_size(part: Message) -> int:
    payload = part.get_payload()
    if isinstance(payload, str):
        return len(payload.encode("utf-8", errors="surrogateescape"))
    if isinstance(payload, bytes):
        return len(payload)
    if isinstance(payload, list):
        return len(message_bytes(part))
    return 0


def _decoded_size(part: Message, cte: str) -> int | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return len(message_bytes(part))
    if not isinstance(payload, str):
        return None
    if cte == "base64":
        chars = len(payload) - sum(payload.count(ch) for ch in "\r\n\t =")
        return chars * 3 // 4
    if cte == "quoted-printable":
        try:
            decoded = part.get_payload(decode=True)
        except Exception:
            return None
        return len(decoded) if isinstance(decoded, bytes) else None
    return len(payload.encode("utf-8", errors="surrogateescape"))


def message_bytes(msg: Message) -> bytes:
    """Serialized bytes of a (sub)message; an embedded message/rfc822 gives the inner mail."""
    target: Message = msg
    if msg.get_content_type() == "message/rfc822":
        payload = msg.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            target = payload[0]
    try:
        return target.as_bytes(policy=compat32)
    except Exception:
        return target.as_string().encode("utf-8", errors="surrogateescape")


def walk(msg: Message) -> list[tuple[PartInfo, Message]]:
    """Leaves of a parsed message with their IMAP section numbers."""
    out: list[tuple[PartInfo, Message]] = []
    _walk(msg, "", False, False, out)
    return out


def _walk(
    msg: Message, prefix: str, related: bool, alternative: bool, out: list[tuple[PartInfo, Message]]
) -> None:
    ctype = _content_type(msg)
    payload = msg.get_payload()
    if ctype.startswith("multipart/") and isinstance(payload, list):
        sub = ctype.split("/", 1)[1]
        for i, child in enumerate(payload, 1):
            if not isinstance(child, Message):
                continue
            path = f"{prefix}.{i}" if prefix else str(i)
            _walk(child, path, related or sub == "related", sub == "alternative", out)
        return
    if ctype.startswith("multipart/"):
        ctype = "text/plain"  # boundary lost: show what there is as text
    path = prefix or "1"
    embedded_subject = None
    if ctype == "message/rfc822" and isinstance(payload, list) and payload:
        inner = payload[0]
        if isinstance(inner, Message):
            embedded_subject = HeaderView(inner).text("subject")
    cte = str(msg.get("content-transfer-encoding", "7bit")).strip().lower() or "7bit"
    info = PartInfo(
        path=path,
        content_type=ctype,
        params=_params(msg),
        encoding=cte,
        size=_encoded_size(msg),
        disposition=_disposition(msg),
        filename=_filename(msg),
        content_id=_strip_cid(_header_str(msg, "content-id")),
        content_location=_header_str(msg, "content-location"),
        in_related=related,
        in_alternative=alternative,
        embedded_subject=embedded_subject,
        exact_size=_decoded_size(msg, cte),
    )
    out.append((info, msg))


def _header_str(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    return decode_words(str(value)).strip() or None


# --- BODYSTRUCTURE (RFC 3501 7.4.2) -------------------------------------------------------------


def _s(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return None if value.upper() == "NIL" else value
    return None


def _plist(value: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    if not isinstance(value, list | tuple):
        return result
    items = list(value)
    for i in range(0, len(items) - 1, 2):
        key, val = _s(items[i]), _s(items[i + 1])
        if key is not None and val is not None:
            result[key.lower()] = decode_words(val).strip()
    return result


def structure_from_bodystructure(bs: Sequence[Any]) -> list[PartInfo]:
    """Leaves of an IMAP BODYSTRUCTURE given as nested lists (strings/bytes, None for NIL).

    This is the shape Twisted's IMAP4Client (and most IMAP libraries) return; unknown or broken
    fields are skipped, never raised.
    """
    out: list[PartInfo] = []
    try:
        _bs_walk(list(bs), "", False, False, out)
    except Exception:  # garbage from a server must not stop a sync
        pass
    return out


def _bs_walk(
    node: list[Any], prefix: str, related: bool, alternative: bool, out: list[PartInfo]
) -> None:
    if node and isinstance(node[0], list | tuple):
        children = []
        rest: list[Any] = []
        for i, item in enumerate(node):
            if isinstance(item, list | tuple):
                children.append(list(item))
            else:
                rest = node[i:]
                break
        sub = (_s(rest[0]) or "mixed").lower() if rest else "mixed"
        for i, child in enumerate(children, 1):
            path = f"{prefix}.{i}" if prefix else str(i)
            _bs_walk(child, path, related or sub == "related", sub == "alternative", out)
        return
    maintype = (_s(node[0]) or "text").lower() if node else "text"
    subtype = (_s(node[1]) or "plain").lower() if len(node) > 1 else "plain"
    params = _plist(node[2]) if len(node) > 2 else {}
    content_id = _strip_cid(_s(node[3])) if len(node) > 3 else None
    encoding = (_s(node[5]) or "7bit").lower() if len(node) > 5 else "7bit"
    try:
        size = int(_s(node[6]) or 0) if len(node) > 6 else 0
    except ValueError:
        size = 0
    # Extension data position depends on the type (RFC 3501 7.4.2 body-type-1part).
    ext = 7
    embedded_subject = None
    if maintype == "text":
        ext = 8  # lines
    elif maintype == "message" and subtype == "rfc822":
        envelope = node[7] if len(node) > 7 else None
        if isinstance(envelope, list | tuple) and len(envelope) > 1:
            raw_subject = _s(envelope[1])
            embedded_subject = decode_words(raw_subject) if raw_subject else None
        ext = 10  # envelope, body, lines
    disposition = None
    disp_params: dict[str, str] = {}
    if len(node) > ext + 1:
        disp = node[ext + 1]  # after md5
        if isinstance(disp, list | tuple) and disp:
            disposition = (_s(disp[0]) or "").lower() or None
            if len(disp) > 1:
                disp_params = _plist(disp[1])
    location = _s(node[ext + 3]) if len(node) > ext + 3 else None
    filename = disp_params.get("filename") or params.get("name")
    out.append(
        PartInfo(
            path=prefix or "1",
            content_type=f"{maintype}/{subtype}",
            params=params,
            encoding=encoding,
            size=size,
            disposition=disposition,
            filename=filename.replace("/", "_").replace("\\", "_") if filename else None,
            content_id=content_id,
            content_location=location,
            in_related=related,
            in_alternative=alternative,
            embedded_subject=embedded_subject,
        )
    )


# --- Classification ------------------------------------------------------------------------------


@attrs.frozen
class Layout:
    """Which leaves are the text bodies, the invitation, and the attachments."""

    plain: PartInfo | None
    html: PartInfo | None
    calendar: PartInfo | None
    attachments: tuple[PartInfo, ...]


def _is_body_text(part: PartInfo, first: bool) -> bool:
    if part.content_type not in ("text/plain", "text/html"):
        return False
    if part.disposition == "attachment":
        return False
    return part.filename is None or first


def classify(parts: Sequence[PartInfo]) -> Layout:
    """Choose body parts and attachments the way mail clients show them."""
    plain = html = calendar = None
    attachments: list[PartInfo] = []
    for index, part in enumerate(parts):
        if plain is None and _is_body_text(part, index == 0) and part.content_type == "text/plain":
            if html is None or part.in_alternative:
                plain = part
                continue
        if html is None and _is_body_text(part, index == 0) and part.content_type == "text/html":
            html = part
            continue
        if part.content_type == "text/calendar" and calendar is None and not part.filename:
            calendar = part
            continue
        if part.content_type in ("application/pgp-signature",) and part.disposition != "attachment":
            continue
        if part.size == 0 and part.content_type.startswith("text/") and not part.filename:
            continue  # empty alternative stubs
        attachments.append(part)
    return Layout(plain=plain, html=html, calendar=calendar, attachments=tuple(attachments))


def find_leaf(
    parts: Sequence[tuple[PartInfo, Message]], path: str
) -> tuple[PartInfo, Message] | None:
    for info, msg in parts:
        if info.path == path:
            return info, msg
    return None


def display_name(part: PartInfo) -> str:
    """Attachment DisplayName: file name, attached mail's subject + .eml, or a made-up one."""
    if part.content_type == "message/rfc822":
        if part.filename:
            return part.filename
        subject = (part.embedded_subject or "").strip() or "message"
        return f"{subject.replace('/', '_')}.eml"
    if part.filename:
        return part.filename
    ext = mimetypes.guess_extension(part.content_type) or ".bin"
    return f"ATT{part.path.replace('.', '_')}{ext}"


class PartNotFound(LookupError):
    """No leaf at that section (ItemOperations Status 15 "attachment not found")."""


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """Undo a Content-Transfer-Encoding on a part fetched alone (IMAP ``BODY[<section>]``)."""
    enc = encoding.strip().lower()
    if enc == "base64":
        cleaned = bytes(b for b in data if b not in b" \t\r\n")
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4] if len(cleaned) % 4 == 1 else cleaned
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            alphabet = re.sub(rb"[^A-Za-z0-9+/]", b"", cleaned)
            alphabet = alphabet[: len(alphabet) - len(alphabet) % 4]
            return base64.b64decode(alphabet)
    if enc == "quoted-printable":
        return quopri.decodestring(data)
    return data


def extract_attachment(message: bytes | Message, part_path: str) -> tuple[str, str, bytes]:
    """(content type, file name, decoded bytes) of the leaf at ``part_path``.

    A ``message/rfc822`` part gives the attached mail whole (OP-82: its own attachments go
    with it).  Raises :class:`PartNotFound` when there is no such leaf.
    """
    msg = parse_message(message) if isinstance(message, bytes | bytearray) else message
    found = find_leaf(walk(msg), part_path)
    if found is None:
        raise PartNotFound(part_path)
    info, leaf = found
    if info.content_type == "message/rfc822":
        return info.content_type, display_name(info), message_bytes(leaf)
    try:
        payload = leaf.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = leaf.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return info.content_type, display_name(info), payload
