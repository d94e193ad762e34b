"""Outgoing mail: SendMail preparation, SmartReply and SmartForward (MS-ASCMD 2.2.1.17-19)."""

from __future__ import annotations

import pytest

from opush.content.email import (
    Identity,
    MessageTooLarge,
    extract_attachment,
    prepare_outgoing,
    smart_forward,
    smart_reply,
)
from opush.content.email.structure import classify, parse_message, walk

ALICE = Identity("alice@example.org", "Alice Liddell")

NEW = (
    b"From: alice@example.org\r\nTo: bob@example.org\r\nCc: carol@example.org\r\n"
    b"Bcc: secret@example.org\r\nSubject: Re: Lunch\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nYes, noon.\r\n"
)

ORIGINAL = (
    b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Lunch\r\n"
    b"Date: Wed, 24 Sep 2014 09:36:54 +0200\r\nMessage-ID: <orig@example.org>\r\n"
    b"References: <root@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=M\r\n\r\n"
    b"--M\r\nContent-Type: multipart/alternative; boundary=A\r\n\r\n"
    b"--A\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nD\xe9jeuner ?\r\n"
    b"--A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><body><p>D\xc3\xa9jeuner ?</p></body></html>\r\n--A--\r\n"
    b"--M\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=menu.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--M--\r\n"
)


def _texts(data: bytes) -> tuple[str | None, str | None]:
    msg = parse_message(data)
    pairs = walk(msg)
    layout = classify([p for p, _ in pairs])
    leaves = {p.path: m for p, m in pairs}

    def get(path: str | None) -> str | None:
        if path is None:
            return None
        payload = leaves[path].get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode("utf-8")

    return (
        get(layout.plain.path if layout.plain else None),
        get(layout.html.path if layout.html else None),
    )


def test_prepare_outgoing_envelope_bcc_and_display_name() -> None:
    out = prepare_outgoing(NEW, ALICE)
    assert out.mail_from == "alice@example.org"
    assert out.recipients == ("bob@example.org", "carol@example.org", "secret@example.org")
    assert b"Bcc:" not in out.data and b"secret@example.org" not in out.data
    assert b"Bcc: secret@example.org" in out.sent_copy
    # OP-157: the sender's display name is set.
    assert b"From: Alice Liddell <alice@example.org>\r\n" in out.data
    assert b"\r\nMessage-ID: <" in out.data and b"\r\nDate: " in out.data
    assert out.size == len(out.data)


def test_device_display_name_is_kept() -> None:
    out = prepare_outgoing(
        NEW.replace(b"From: alice@example.org", b"From: Al <alice@example.org>"), ALICE
    )
    assert b"From: Al <alice@example.org>" in out.data


def test_size_limit() -> None:
    with pytest.raises(MessageTooLarge) as err:
        prepare_outgoing(NEW, ALICE, max_size=50)
    assert err.value.limit == 50 and err.value.size > 50


def test_smart_reply_quotes_original_and_threads() -> None:
    out = smart_reply(NEW, ORIGINAL, ALICE)
    plain, html = _texts(out.data)
    assert plain is not None and plain.startswith("Yes, noon.")
    assert "> D\u00e9jeuner ?" in plain and "Bob" in plain
    assert html is None  # the device wrote plain text only
    assert b"In-Reply-To: <orig@example.org>" in out.data
    assert b"References: <root@example.org> <orig@example.org>" in out.data
    assert b"menu.pdf" not in out.data  # replies do not carry attachments


def test_smart_reply_html_reply_gets_blockquote() -> None:
    new = NEW.replace(b"text/plain", b"text/html").replace(
        b"Yes, noon.", b"<html><body><p>Yes</p></body></html>"
    )
    _, html = _texts(smart_reply(new, ORIGINAL, ALICE).data)
    assert html is not None
    assert '<p>Yes</p><br><div class="moz-cite-prefix">' in html
    assert "<blockquote" in html and "D\u00e9jeuner" in html and html.rstrip().endswith("</html>")


def test_replace_mime_sends_the_device_message_as_is() -> None:
    plain, _ = _texts(smart_reply(NEW, ORIGINAL, ALICE, replace_mime=True).data)
    assert plain == "Yes, noon.\r\n"


def test_smart_forward_carries_original_attachments() -> None:
    new = NEW.replace(b"Subject: Re: Lunch", b"Subject: Fwd: Lunch")
    out = smart_forward(new, ORIGINAL, ALICE)
    msg = parse_message(out.data)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["Subject"] == "Fwd: Lunch"
    plain, _ = _texts(out.data)
    assert plain is not None and "Forwarded Message" in plain and "D\u00e9jeuner" in plain
    layout = classify([p for p, _ in walk(msg)])
    assert [p.filename for p in layout.attachments] == ["menu.pdf"]
    assert extract_attachment(out.data, layout.attachments[0].path)[2] == b"%PDF-1.4\n"


def test_smart_forward_without_original_still_sends() -> None:
    out = smart_forward(NEW, None, ALICE)
    assert _texts(out.data)[0] == "Yes, noon.\r\n"


def test_attachment_only_reply_gets_the_quote_as_first_part() -> None:
    new = (
        b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: pic\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: image/png\r\nContent-Disposition: attachment; filename=p.png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    )
    out = smart_forward(new, ORIGINAL, ALICE)
    msg = parse_message(out.data)
    layout = classify([p for p, _ in walk(msg)])
    assert layout.plain is not None
    assert sorted(p.filename or "" for p in layout.attachments) == ["menu.pdf", "p.png"]
