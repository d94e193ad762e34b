"""16.x drafts: the MIME of a draft from the device's ApplicationData (MS-ASCMD 2.2.3.7.2
Add / 2.2.3.24 Change in the Drafts folder).

A Change carries only what changed (MS-ASCMD 2.2.3.24), so it is merged into the draft it
replaces: headers it does not name, the body when it sends none, and the attachments it does
not delete stay.  Attachments come and go with ``airsyncbase:Attachments`` (MS-ASAIRS
2.2.2.7): ``Add`` (ClientId, DisplayName, Method, Content, ContentType, ContentId, IsInline)
and ``Delete`` (FileReference of an attachment the device was given).  The draft is written
as multipart/mixed (body first, then attachments in order) so the IMAP section of each added
attachment is known before the APPEND: the server answers with a FileReference per ClientId.
"""

from __future__ import annotations

import email.utils
import mimetypes
from email import encoders
from email.charset import QP, Charset
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32

import attrs
from lxml.etree import QName, _Element

from opush.content.email.filereference import FileReferenceError, parse_file_reference
from opush.content.email.structure import classify, parse_message, walk
from opush.log import logger
from opush.wbxml import ns, opaque

log = logger("opush.content.email.drafts")

BASE = ns.AIRSYNCBASE
#: Headers a device sets through ApplicationData (MS-ASEMAIL 2.2.2): replaced when sent.
_ADDRESS_HEADERS = (("To", "To"), ("Cc", "Cc"), ("Bcc", "Bcc"), ("Subject", "Subject"))


@attrs.frozen
class Draft:
    mime: bytes
    #: (attachment ClientId, IMAP section) of the attachments this request added.
    added: tuple[tuple[str, str], ...] = ()


def _local(el: _Element) -> str:
    return QName(el).localname if isinstance(el.tag, str) else ""


def _child(el: _Element | None, name: str) -> _Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c) == name), None)


def _text(el: _Element | None, name: str) -> str | None:
    c = _child(el, name)
    return None if c is None or c.text is None else c.text.strip()


def is_draft_content(data: _Element) -> bool:
    """ApplicationData that edits a draft (not only flags)."""
    return any(
        _local(c) in ("To", "Subject", "Body", "Cc", "Bcc", "Attachments", "Importance")
        for c in data
    )


def build_draft(data: _Element, from_address: str | None, existing: bytes | None = None) -> Draft:
    """The draft after this Add (``existing`` None) or Change (``existing``: the current
    draft's MIME)."""
    body = _child(data, "Body")
    if body is not None and _text(body, "Type") == "4" and (_text(body, "Data") or ""):
        # MIME (MS-ASAIRS 2.2.2.41.1 Type 4): the device sent the whole message.
        raw = (_child(body, "Data").text or "").encode("utf-8", "surrogateescape")  # type: ignore[union-attr]
        return Draft(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    old = parse_message(existing) if existing else None
    body_part = _new_body(body) if body is not None else None
    kept: list[Message] = []
    if old is not None:
        old_body, outside, inside = _split(old, _deleted_sections(data))
        if body_part is None:
            body_part, kept = old_body, outside  # inline parts stay inside the old body
        else:
            kept = outside + inside  # the body is new: its inline images become parts
    if body_part is None:
        body_part = MIMEText("", "plain", _UTF8_QP)  # type: ignore[arg-type]
    added: list[tuple[str, Message]] = []
    attachments = _child(data, "Attachments")
    for add in attachments.iterchildren(f"{{{BASE}}}Add") if attachments is not None else ():
        part = _attachment(add)
        if part is not None:
            added.append((_text(add, "ClientId") or "", part))
    parts = [body_part, *kept, *(p for _, p in added)]
    if len(parts) == 1:
        out = body_part
        sections: list[str] = []
    else:
        out = MIMEMultipart("mixed")
        for p in parts:
            out.attach(p)
        first_added = 2 + len(kept)
        sections = [str(first_added + i) for i in range(len(added))]
    _headers(out, data, old, from_address)
    mime = out.as_bytes(policy=compat32.clone(linesep="\r\n"))
    return Draft(mime, tuple((cid, s) for (cid, _), s in zip(added, sections, strict=True)))


def _new_body(body: _Element) -> Message:
    text = _text(body, "Data") or ""
    kind = _text(body, "Type") or "1"
    return MIMEText(text, "html" if kind == "2" else "plain", _UTF8_QP)  # type: ignore[arg-type]


#: Text bodies as quoted-printable UTF-8: readable in the IMAP source, safe over SMTP.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def _deleted_sections(data: _Element) -> set[str]:
    """IMAP sections of the attachments the device deletes (FileReferences we gave it)."""
    out: set[str] = set()
    attachments = _child(data, "Attachments")
    for d in attachments.iterchildren(f"{{{BASE}}}Delete") if attachments is not None else ():
        ref = _text(d, "FileReference")
        if not ref:
            continue
        try:
            out.add(parse_file_reference(ref).part)
        except FileReferenceError:
            log.info("draft attachment Delete of an unknown FileReference {r!r}", r=ref)
    return out


def _split(old: Message, deleted: set[str]) -> tuple[Message | None, list[Message], list[Message]]:
    """The old draft's body (a part to reuse), and its attachments minus ``deleted``: those
    beside the body, and those inside it (inline images of an HTML body)."""
    pairs = walk(old)
    leaves = {p.path: m for p, m in pairs}
    layout = classify([p for p, _ in pairs])
    attachment_paths = [a.path for a in layout.attachments]
    if old.is_multipart() and old.get_content_type() == "multipart/mixed":
        children = old.get_payload()
        assert isinstance(children, list)
        body: Message | None = None
        body_path = ""
        for i, child in enumerate(children):
            path = str(i + 1)
            if path not in attachment_paths:
                body, body_path = child, path
                break
        prefix = (body_path + ".") if body_path else None
        live = [p for p in attachment_paths if p not in deleted and p in leaves]
        beside = [leaves[p] for p in live if not (prefix and p.startswith(prefix))]
        within = [leaves[p] for p in live if prefix and p.startswith(prefix)]
        return body, beside, within
    # A single part, or an alternative/related body: the old message is the body and its
    # inline parts are inside it.
    part = Message()
    for key, value in old.items():
        if key.lower().startswith("content-"):
            part[key] = value
    part.set_payload(old.get_payload())
    return part, [], [leaves[p] for p in attachment_paths if p not in deleted and p in leaves]


def _attachment(add: _Element) -> Message | None:
    content_el = _child(add, "Content")
    if content_el is None:
        log.info("draft attachment Add without Content: skipped")
        return None
    content = opaque(content_el)
    name = _text(add, "DisplayName") or "attachment"
    method = _text(add, "Method") or "1"
    content_type = _text(add, "ContentType") or (
        "message/rfc822" if method == "5" else mimetypes.guess_type(name)[0]
    )
    if not content_type or "/" not in content_type:
        content_type = "application/octet-stream"
    maintype, subtype = content_type.lower().split("/", 1)
    part: Message
    if (maintype, subtype) == ("message", "rfc822"):
        part = MIMEMessage(parse_message(content))
    else:
        base = MIMEBase(maintype, subtype)
        base.set_payload(content)
        encoders.encode_base64(base)
        part = base
    inline = _text(add, "IsInline") == "1"
    try:
        name.encode("ascii")
        part.add_header("Content-Disposition", "inline" if inline else "attachment", filename=name)
    except UnicodeEncodeError:  # RFC 2231 for other names
        part.add_header(
            "Content-Disposition",
            "inline" if inline else "attachment",
            filename=("utf-8", "", name),
        )
    content_id = _text(add, "ContentId")
    if content_id:
        part["Content-ID"] = f"<{content_id.strip('<>')}>"
    location = _text(add, "ContentLocation")
    if location:
        part["Content-Location"] = location
    return part


def _headers(out: Message, data: _Element, old: Message | None, from_address: str | None) -> None:
    """The old draft's headers, with what ApplicationData names replaced."""
    if old is not None:
        for key, value in old.items():
            low = key.lower()
            if low.startswith("content-") or low == "mime-version" or key in out:
                continue
            out[key] = value
    for tag, header in _ADDRESS_HEADERS:
        el = _child(data, tag)
        if el is None:
            continue
        del out[header]
        if (el.text or "").strip():
            out[header] = (el.text or "").strip()
    importance = _text(data, "Importance")
    if importance is not None:
        del out["Importance"]
        if importance in ("0", "2"):
            out["Importance"] = "low" if importance == "0" else "high"
    if from_address and "From" not in out:
        out["From"] = from_address
    del out["Date"]
    out["Date"] = email.utils.formatdate(localtime=False)
    if "Message-ID" not in out:
        out["Message-ID"] = email.utils.make_msgid()
    if "MIME-Version" not in out:
        out["MIME-Version"] = "1.0"
