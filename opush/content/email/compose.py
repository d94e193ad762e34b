"""Outgoing mail for SendMail, SmartReply and SmartForward (MS-ASCMD 2.2.1.17, 2.2.1.19, 2.2.1.18).

The device sends a complete MIME message.  For SmartReply/SmartForward "the server [...] adds the
original message" unless ReplaceMime is present: we quote the original text (plain and HTML) under
the new text, and for a forward we also carry the original's attachments and inline parts.  Then
the message is made ready for SMTP: From gets the user's display name (OP-157), Date and
Message-ID are added when missing, Bcc is removed from what is transmitted (kept in the Sent copy),
and the size is checked against ``message.maxSize``.
"""

from __future__ import annotations

import html as html_lib
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.policy import compat32
from email.utils import format_datetime, formataddr, make_msgid

import attrs

from opush.content.email import htmltext
from opush.content.email.charsets import decode_bytes
from opush.content.email.headers import HeaderView, format_addresses, parse_addresses
from opush.content.email.structure import PartInfo, classify, parse_message, walk

_WIRE = compat32.clone(linesep="\r\n")


class MessageTooLarge(ValueError):
    """Bigger than mail_conf.ini ``message.maxSize`` (the Java server sent an error mail)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the {limit} bytes limit")
        self.size = size
        self.limit = limit


@attrs.frozen
class Identity:
    """The authenticated user sending the mail."""

    address: str
    display_name: str | None = None


@attrs.frozen
class OutgoingMail:
    """Ready for SMTP: envelope, transmitted bytes (no Bcc), and the Sent folder copy."""

    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    sent_copy: bytes

    @property
    def size(self) -> int:
        return len(self.data)


def to_bytes(msg: Message) -> bytes:
    """Serialize with CRLF and without re-folding headers."""
    buf = io.BytesIO()
    try:
        BytesGenerator(buf, mangle_from_=False, maxheaderlen=0, policy=_WIRE).flatten(msg)
    except Exception:  # broken input headers: fall back to the text form
        return msg.as_string().encode("utf-8", "surrogateescape").replace(b"\n", b"\r\n")
    return buf.getvalue()


def _set_header(msg: Message, name: str, value: str) -> None:
    del msg[name]
    msg[name] = value


def prepare_outgoing(
    message: bytes | Message, identity: Identity, *, max_size: int | None = None
) -> OutgoingMail:
    """Envelope and bytes for SMTP from a device's MIME message."""
    msg = parse_message(message) if isinstance(message, bytes | bytearray) else message
    headers = HeaderView(msg)
    from_pairs = headers.addresses("from")
    if (
        not from_pairs
        or len(from_pairs) > 1
        or from_pairs[0][1].lower() != identity.address.lower()
        or not from_pairs[0][0]
    ):
        # OP-157: the sender's display name on mail sent through opush.  The address is always
        # the authenticated user's: a device cannot send as someone else.
        _set_header(msg, "From", formataddr((identity.display_name or "", identity.address)))
    if msg.get("Date") is None:
        msg["Date"] = format_datetime_now()
    if msg.get("Message-ID") is None:
        domain = identity.address.rpartition("@")[2] or None
        msg["Message-ID"] = make_msgid(domain=domain)
    recipients: list[str] = []
    seen: set[str] = set()
    for name in ("to", "cc", "bcc"):
        for _, addr in parse_addresses(msg.get_all(name) or []):
            key = addr.lower()
            if key not in seen and "@" in addr:
                seen.add(key)
                recipients.append(addr)
    sent_copy = to_bytes(msg)
    if msg.get("Bcc") is not None:
        del msg["Bcc"]
        data = to_bytes(msg)
    else:
        data = sent_copy
    if max_size is not None and len(data) > max_size:
        raise MessageTooLarge(len(data), max_size)
    return OutgoingMail(
        mail_from=identity.address,
        recipients=tuple(recipients),
        data=data,
        sent_copy=sent_copy,
    )


def format_datetime_now() -> str:
    return format_datetime(datetime.now(UTC))


# --- Quoting the original ------------------------------------------------------------------------


@attrs.frozen
class _Texts:
    plain: str | None
    html: str | None


def _leaf_text(leaf: Message, info: PartInfo) -> str:
    try:
        payload = leaf.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = leaf.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    return decode_bytes(payload, info.charset)


def _texts(msg: Message) -> tuple[_Texts, dict[str, Message], list[tuple[PartInfo, Message]]]:
    pairs = walk(msg)
    layout = classify([p for p, _ in pairs])
    leaves = {p.path: m for p, m in pairs}
    plain = _leaf_text(leaves[layout.plain.path], layout.plain) if layout.plain else None
    html = _leaf_text(leaves[layout.html.path], layout.html) if layout.html else None
    attachments = [(p, leaves[p.path]) for p in layout.attachments]
    if layout.calendar is not None:
        attachments.append((layout.calendar, leaves[layout.calendar.path]))
    return _Texts(plain, html), leaves, attachments


def _header_block(orig: HeaderView, forward: bool) -> list[tuple[str, str]]:
    rows = [
        ("From", format_addresses(orig.addresses("from")) or (orig.text("from") or "")),
        ("Date", orig.text("date") or ""),
        ("Subject", orig.text("subject") or ""),
        ("To", format_addresses(orig.addresses("to"))),
    ]
    cc = format_addresses(orig.addresses("cc"))
    if cc:
        rows.append(("Cc", cc))
    return [(k, v) for k, v in rows if v] if forward else rows[:2]


def _quote_plain(text: str, orig: HeaderView, forward: bool) -> str:
    rows = _header_block(orig, forward)
    if forward:
        head = "-------- Forwarded Message --------\n" + "".join(f"{k}: {v}\n" for k, v in rows)
        return f"\n\n{head}\n{text}"
    who = dict(rows).get("From", "")
    when = dict(rows).get("Date", "")
    intro = f"On {when}, {who} wrote:" if when else f"{who} wrote:"
    quoted = "\n".join("> " + line if line else ">" for line in text.splitlines())
    return f"\n\n{intro}\n{quoted}\n"


def _quote_html(markup: str, orig: HeaderView, forward: bool) -> str:
    rows = _header_block(orig, forward)
    body = _html_body(markup)
    if forward:
        head = "".join(f"<b>{html_lib.escape(k)}:</b> {html_lib.escape(v)}<br>" for k, v in rows)
        return (
            '<br><div class="moz-forward-container">-------- Forwarded Message --------<br>'
            f"{head}<br>{body}</div>"
        )
    who = html_lib.escape(dict(rows).get("From", ""))
    when = html_lib.escape(dict(rows).get("Date", ""))
    intro = f"On {when}, {who} wrote:" if when else f"{who} wrote:"
    return (
        f'<br><div class="moz-cite-prefix">{intro}</div><blockquote type="cite">{body}</blockquote>'
    )


_BODY = re.compile(r"<body[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)


def _html_body(markup: str) -> str:
    m = _BODY.search(markup)
    return m.group(1) if m else markup


def _insert_html(markup: str, addition: str) -> str:
    idx = markup.lower().rfind("</body")
    if idx < 0:
        return markup + addition
    return markup[:idx] + addition + markup[idx:]


def _replace_text(leaf: Message, text: str) -> None:
    # One line ending throughout (the device's CRLF text plus our "\n" quoting otherwise mix).
    text = text.replace("\r\n", "\n")
    del leaf["Content-Transfer-Encoding"]
    subtype = leaf.get_content_subtype() or "plain"
    leaf.set_type(f"text/{subtype}")
    leaf.set_payload(text, "utf-8")


def _append_original(new: Message, original: Message, forward: bool) -> Message:
    orig_view = HeaderView(original)
    orig_texts, _, orig_atts = _texts(original)
    pairs = walk(new)
    layout = classify([p for p, _ in pairs])
    leaves = {p.path: m for p, m in pairs}
    orig_plain = orig_texts.plain
    if orig_plain is None and orig_texts.html is not None:
        orig_plain = htmltext.html_to_text(orig_texts.html)
    orig_html = orig_texts.html
    if orig_html is None and orig_texts.plain is not None:
        orig_html = html_lib.escape(orig_texts.plain).replace("\n", "<br>\n")
    if layout.plain is not None and orig_plain is not None:
        leaf = leaves[layout.plain.path]
        _replace_text(
            leaf, _leaf_text(leaf, layout.plain) + _quote_plain(orig_plain, orig_view, forward)
        )
    if layout.html is not None and orig_html is not None:
        leaf = leaves[layout.html.path]
        _replace_text(
            leaf,
            _insert_html(_leaf_text(leaf, layout.html), _quote_html(orig_html, orig_view, forward)),
        )
    if layout.plain is None and layout.html is None and orig_plain is not None:
        # Attachment-only new message: the quote becomes its first part.
        quote = Message()
        quote.set_payload(_quote_plain(orig_plain, orig_view, forward).lstrip("\n"), "utf-8")
        quote.set_type("text/plain")
        new = _with_parts(new, [quote], first=True)
    if forward and orig_atts:
        new = _with_parts(new, [m for _, m in orig_atts])
    return new


_CONTENT_HEADERS = (
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "mime-version",
)


def _with_parts(msg: Message, extra: Sequence[Message], first: bool = False) -> Message:
    """``msg`` as multipart/mixed with ``extra`` parts added (before or after its content)."""
    if msg.get_content_type() == "multipart/mixed" and isinstance(msg.get_payload(), list):
        payload = msg.get_payload()
        assert isinstance(payload, list)
        msg.set_payload(list(extra) + payload if first else payload + list(extra))
        return msg
    mixed = MIMEMultipart("mixed")
    del mixed["MIME-Version"]
    inner = Message()
    for name, value in msg.raw_items():
        if name.lower() in _CONTENT_HEADERS:
            if name.lower() != "mime-version":
                inner[name] = value
        else:
            mixed[name] = value
    inner.set_payload(msg.get_payload())
    if inner.get("Content-Type") is None:
        inner["Content-Type"] = "text/plain"
    mixed["MIME-Version"] = "1.0"
    parts = [*extra, inner] if first else [inner, *extra]
    for part in parts:
        mixed.attach(part)
    return mixed


def _threading(new: Message, original: Message, *, reply: bool = True) -> None:
    """In-Reply-To (replies only) and References (RFC 5322 3.6.4) when the device did not set
    them; a forward keeps the thread in References, as mail clients do."""
    orig_id = original.get("Message-ID")
    if not orig_id:
        return
    orig_id = str(orig_id).strip()
    if reply and new.get("In-Reply-To") is None:
        new["In-Reply-To"] = orig_id
    if new.get("References") is None:
        refs = str(original.get("References", "") or "").split()
        if not refs and original.get("In-Reply-To"):
            refs = str(original.get("In-Reply-To")).split()
        new["References"] = " ".join([*refs[-20:], orig_id])


def smart_reply(
    new_mime: bytes,
    original: bytes | Message | None,
    identity: Identity,
    *,
    replace_mime: bool = False,
    max_size: int | None = None,
) -> OutgoingMail:
    """SmartReply (MS-ASCMD 2.2.1.19): the reply with the original quoted below.

    ``original`` None (message gone) sends the reply as is, like the Java server's fallback.
    """
    new = parse_message(new_mime)
    if original is not None:
        orig = parse_message(original) if isinstance(original, bytes | bytearray) else original
        _threading(new, orig)
        if not replace_mime:
            new = _append_original(new, orig, forward=False)
    return prepare_outgoing(new, identity, max_size=max_size)


def smart_forward(
    new_mime: bytes,
    original: bytes | Message | None,
    identity: Identity,
    *,
    replace_mime: bool = False,
    max_size: int | None = None,
) -> OutgoingMail:
    """SmartForward (MS-ASCMD 2.2.1.18): the original's text and attachments come along."""
    new = parse_message(new_mime)
    if original is not None:
        orig = parse_message(original) if isinstance(original, bytes | bytearray) else original
        _threading(new, orig, reply=False)
        if not replace_mime:
            new = _append_original(new, orig, forward=True)
    return prepare_outgoing(new, identity, max_size=max_size)
