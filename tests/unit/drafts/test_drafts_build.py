"""16.x drafts: MIME built from ApplicationData, merged into the draft a Change replaces,
attachments added (with their IMAP sections) and deleted by FileReference."""

from __future__ import annotations

import email
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml.etree import _Element

from opush.content.email.drafts import build_draft
from opush.content.email.filereference import FileReference
from opush.wbxml import E, ns, set_opaque

A, B, EM = ns.AIRSYNC, ns.AIRSYNCBASE, ns.EMAIL


def data(*children: _Element) -> _Element:
    return E(A, "ApplicationData", *children)


def body(text: str, kind: int = 1) -> _Element:
    return E(B, "Body", E(B, "Type", text=kind), E(B, "Data", text=text))


def add(client_id: str, name: str, content: bytes, **kw: str) -> _Element:
    c = E(B, "Content")
    set_opaque(c, content)
    el = E(B, "Add", E(B, "ClientId", text=client_id), E(B, "DisplayName", text=name),
           E(B, "Method", text=1), c)  # fmt: skip
    for tag, value in kw.items():
        el.append(E(B, tag, text=value))
    return el


def delete(section: str) -> _Element:
    ref = FileReference("5", 42, section).encode()
    return E(B, "Delete", E(B, "FileReference", text=ref))


def parsed(mime: bytes) -> Message:
    return email.message_from_bytes(mime, policy=default_policy)


def attachments(mime: bytes) -> dict[str, bytes]:
    msg: Any = parsed(mime)
    return {a.get_filename(): a.get_payload(decode=True) for a in msg.iter_attachments()}


def text_of(mime: bytes) -> str:
    msg: Any = parsed(mime)
    part = msg.get_body(preferencelist=("plain", "html"))
    return str(part.get_content()) if part is not None else ""


def test_add_with_attachments_gives_their_sections() -> None:
    d = build_draft(
        data(E(EM, "To", text="bob@example.org"), E(EM, "Subject", text="Report"),
             body("see attached"),
             E(B, "Attachments", add("c1", "a.txt", b"alpha"), add("c2", "b.pdf", b"%PDF-1"))),
        "alice@example.org",
    )  # fmt: skip
    msg = parsed(d.mime)
    assert msg["Subject"] == "Report" and msg["From"] == "alice@example.org"
    assert msg.get_content_type() == "multipart/mixed"
    assert d.added == (("c1", "2"), ("c2", "3"))
    assert attachments(d.mime) == {"a.txt": b"alpha", "b.pdf": b"%PDF-1"}
    assert parsed(d.mime).get_payload()[2].get_content_type() == "application/pdf"  # type: ignore[index]
    assert text_of(d.mime).strip() == "see attached"


def test_a_change_keeps_what_it_does_not_name() -> None:
    first = build_draft(
        data(E(EM, "To", text="bob@example.org"), E(EM, "Subject", text="v1"), body("one"),
             E(B, "Attachments", add("c1", "a.txt", b"alpha"))),
        "alice@example.org",
    )  # fmt: skip
    # Only the subject changes: body, recipient and attachment stay.
    second = build_draft(data(E(EM, "Subject", text="v2")), "alice@example.org", first.mime)
    msg = parsed(second.mime)
    assert (msg["Subject"], msg["To"]) == ("v2", "bob@example.org")
    assert text_of(second.mime).strip() == "one"
    assert attachments(second.mime) == {"a.txt": b"alpha"}
    assert msg["Message-ID"] == parsed(first.mime)["Message-ID"]
    # New body, one more attachment, the first one deleted.
    third = build_draft(
        data(body("<p>two</p>", 2), E(B, "Attachments", delete("2"), add("c2", "é.txt", b"beta"))),
        "alice@example.org",
        second.mime,
    )
    assert attachments(third.mime) == {"é.txt": b"beta"}
    assert third.added == (("c2", "2"),)
    assert "two" in text_of(third.mime)
    # Everything deleted: a single-part message again.
    fourth = build_draft(data(E(B, "Attachments", delete("2"))), None, third.mime)
    assert parsed(fourth.mime).get_content_type() == "text/html"
    assert attachments(fourth.mime) == {}


def test_inline_attachment_with_content_id() -> None:
    d = build_draft(
        data(body("<img src='cid:logo'>", 2),
             E(B, "Attachments", add("c1", "logo.png", b"\x89PNG", IsInline="1",
                                     ContentId="logo"))),
        None,
    )  # fmt: skip
    part = parsed(d.mime).get_payload()[1]  # type: ignore[index]
    assert part["Content-ID"] == "<logo>" and part.get_content_disposition() == "inline"
    assert part.get_content_type() == "image/png"


def test_a_draft_from_another_client_keeps_its_alternative_body() -> None:
    other = email.message.EmailMessage()
    other["Subject"] = "from Thunderbird"
    other.set_content("plain text")
    other.add_alternative("<p>html text</p>", subtype="html")
    other.add_attachment(b"data", maintype="application", subtype="octet-stream", filename="x.bin")
    d = build_draft(data(E(EM, "Subject", text="edited")), None, other.as_bytes())
    msg: Any = parsed(d.mime)
    assert msg["Subject"] == "edited"
    assert msg.get_payload()[0].get_content_type() == "multipart/alternative"
    assert attachments(d.mime) == {"x.bin": b"data"}


def test_mime_body_is_taken_as_is() -> None:
    raw = "Subject: raw\r\nTo: bob@example.org\r\n\r\nhello\r\n"
    d = build_draft(data(body(raw, 4)), "alice@example.org")
    assert d.mime == raw.encode() and d.added == ()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.text("abcdefgh", min_size=1, max_size=6)),
        st.tuples(st.just("delete"), st.integers(0, 5)),
        st.tuples(st.just("subject"), st.text("xyz ", min_size=1, max_size=8)),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_a_sequence_of_edits_keeps_exactly_the_expected_attachments(ops: list[Any]) -> None:
    """Model: an ordered list of attachment names; deletes name an index in it."""
    model: list[str] = []
    mime: bytes | None = None
    for n, (kind, value) in enumerate(ops):
        if kind == "add":
            name = f"{value}-{n}.txt"
            change = data(E(B, "Attachments", add(f"c{n}", name, name.encode())))
        elif kind == "delete":
            if value >= len(model):
                continue
            change = data(E(B, "Attachments", delete(str(value + 2))))
        else:
            change = data(E(EM, "Subject", text=value.strip() or "s"))
        d = build_draft(change, "alice@example.org", mime)
        mime = d.mime
        if kind == "add":
            model.append(name)
            assert d.added == ((f"c{n}", str(len(model) + 1)),)
        elif kind == "delete":
            del model[value]
        assert list(attachments(mime)) == model
        assert all(content == name.encode() for name, content in attachments(mime).items())


def test_a_new_body_keeps_the_inline_images_of_the_old_one() -> None:
    other = email.message.EmailMessage()
    other["Subject"] = "with logo"
    other.set_content("<p><img src='cid:logo'></p>", subtype="html")
    other.add_related(b"\x89PNG", maintype="image", subtype="png", cid="<logo>", filename="l.png")
    other.make_mixed()
    other.add_attachment(b"data", maintype="application", subtype="octet-stream", filename="x.bin")
    kept_body = build_draft(data(E(EM, "Subject", text="edited")), None, other.as_bytes())
    assert parsed(kept_body.mime).get_payload()[0].get_content_type() == "multipart/related"  # type: ignore[index]
    new_body = build_draft(data(body("<p>new</p>", 2)), None, other.as_bytes())
    names = sorted(attachments(new_body.mime))
    assert names == ["l.png", "x.bin"]
