"""Notes (MS-ASNOTE, EAS 14.0+) kept as IMAP messages, one per note, the way Apple Notes and
other IMAP clients store them (``X-Uniform-Type-Identifier: com.apple.mail-note``): the
Subject is the note's title, the body its text (HTML or plain), IMAP keywords its
categories, the Date its last change.
"""

from __future__ import annotations

import email.utils
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.message import Message
from email.mime.text import MIMEText

import attrs
from lxml.etree import QName, _Element

from opush.content.email.compose import _leaf_text
from opush.content.email.headers import HeaderView
from opush.content.email.htmltext import html_to_text
from opush.content.email.structure import classify, parse_message, walk
from opush.wbxml import E, ns

NOTES = ns.NOTES
BASE = ns.AIRSYNCBASE
#: MS-ASNOTE 2.2.2.5 MessageClass of a note.
MESSAGE_CLASS = "IPM.StickyNote"
APPLE_NOTE = "com.apple.mail-note"

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


@attrs.frozen
class Note:
    subject: str = ""
    #: The text as stored: HTML when ``html``, else plain.
    body: str = ""
    html: bool = False
    categories: tuple[str, ...] = ()
    modified: datetime | None = None
    uid: str | None = None  # X-Universally-Unique-Identifier

    @property
    def plain(self) -> str:
        return html_to_text(self.body) if self.html else self.body


# ---------------------------------------------------------------------------- IMAP side


def note_from_mime(data: bytes, categories: Iterable[str] = ()) -> Note:
    """A note from its IMAP message (never raises: a damaged one gives what can be read)."""
    msg = parse_message(data)
    headers = HeaderView(msg)
    pairs = walk(msg)
    layout = classify([p for p, _ in pairs])
    leaves = {p.path: m for p, m in pairs}
    body, html = "", False
    if layout.html is not None:
        body, html = _leaf_text(leaves[layout.html.path], layout.html), True
    elif layout.plain is not None:
        body = _leaf_text(leaves[layout.plain.path], layout.plain)
    modified = None
    date = headers.raw("date")
    if date:
        try:
            modified = email.utils.parsedate_to_datetime(date).astimezone(UTC)
        except (TypeError, ValueError, IndexError):
            modified = None
    return Note(
        subject=headers.text("subject") or "",
        body=body,
        html=html,
        categories=tuple(categories),
        modified=modified,
        uid=(headers.raw("x-universally-unique-identifier") or "").strip() or None,
    )


def note_to_mime(note: Note, from_address: str | None, now: datetime | None = None) -> bytes:
    """The IMAP message of a note (Apple's headers, so Apple Notes over IMAP shows it)."""
    msg: Message = MIMEText(note.body, "html" if note.html else "plain", _UTF8_QP)  # type: ignore[arg-type]
    if from_address:
        msg["From"] = from_address
    msg["Subject"] = note.subject or "(no subject)"
    msg["Date"] = email.utils.format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = email.utils.make_msgid()
    msg["X-Uniform-Type-Identifier"] = APPLE_NOTE
    msg["X-Universally-Unique-Identifier"] = note.uid or str(uuid.uuid4()).upper()
    msg["X-Mail-Created-Date"] = msg["Date"]
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


# ---------------------------------------------------------------------------- EAS side


def _local(el: _Element) -> str:
    return QName(el).localname if isinstance(el.tag, str) else ""


def _child(el: _Element, name: str) -> _Element | None:
    return next((c for c in el if _local(c) == name), None)


def parse_note(data: _Element, base: Note | None = None) -> Note:
    """A device's Add (``base`` None) or Change (``base``: the stored note): what the
    ApplicationData leaves out keeps the stored value (a Change names what changed)."""
    note = base or Note()
    subject = _child(data, "Subject")
    if subject is not None:
        note = attrs.evolve(note, subject=(subject.text or "").strip())
    body = _child(data, "Body")
    if body is not None:
        kind_el, data_el = _child(body, "Type"), _child(body, "Data")
        kind = (kind_el.text or "1").strip() if kind_el is not None else "1"
        text = (data_el.text or "") if data_el is not None else ""
        note = attrs.evolve(note, body=text, html=kind == "2")
    cats = _child(data, "Categories")
    if cats is not None:
        values = tuple((c.text or "").strip() for c in cats if _local(c) == "Category")
        note = attrs.evolve(note, categories=tuple(v for v in values if v))
    return note


def _body_preferences(options: Sequence[_Element]) -> list[tuple[int, int | None]]:
    prefs: list[tuple[int, int | None]] = []
    for option in options:
        for pref in option.iter(f"{{{BASE}}}BodyPreference"):
            kind_el = _child(pref, "Type")
            size_el = _child(pref, "TruncationSize")
            kind = (kind_el.text or "1").strip() if kind_el is not None else "1"
            size = (size_el.text or "").strip() if size_el is not None else ""
            if kind.isdigit():
                prefs.append((int(kind), int(size) if size.isdigit() else None))
    return prefs


def render_note(note: Note, options: Sequence[_Element] = ()) -> list[_Element]:
    """ApplicationData children (MS-ASNOTE 2.2.2): Subject, Body (the first BodyPreference
    the note can satisfy: HTML only when it is HTML or asked for, plain otherwise, cut at its
    TruncationSize), MessageClass, LastModifiedDate, Categories."""
    # MS-ASAIRS 2.2.2.9: the first preference the server offers; notes are offered as plain
    # text (1) or HTML (2), so a device asking only RTF or MIME gets plain text.
    kind, limit = next(((k, s) for k, s in _body_preferences(options) if k in (1, 2)), (1, None))
    if kind == 1:
        text = note.plain
    elif note.html:
        text = note.body
    else:
        text = "<html><body><pre>" + _escape(note.body) + "</pre></body></html>"
    data = text.encode("utf-8")
    truncated = limit is not None and len(data) > limit
    if truncated:
        text = data[:limit].decode("utf-8", "ignore")
    out = [
        E(NOTES, "Subject", text=note.subject),
        E(
            BASE,
            "Body",
            E(BASE, "Type", text=kind),
            E(BASE, "EstimatedDataSize", text=len(data)),
            E(BASE, "Truncated", text=1) if truncated else None,
            E(BASE, "Data", text=text) if text else None,
        ),
        E(NOTES, "MessageClass", text=MESSAGE_CLASS),
    ]
    when = note.modified or datetime(1970, 1, 1, tzinfo=UTC)
    out.append(E(NOTES, "LastModifiedDate", text=when.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
    if note.categories:
        out.append(E(NOTES, "Categories", *[E(NOTES, "Category", text=c) for c in note.categories]))
    return out


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
