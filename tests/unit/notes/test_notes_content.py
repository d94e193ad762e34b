"""Notes as IMAP messages (Apple's format) and as EAS Notes items (MS-ASNOTE)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from opush.content.notes import Note, note_from_mime, note_to_mime, parse_note, render_note
from opush.wbxml import E, decode, encode, ns

A, B, N = ns.AIRSYNC, ns.AIRSYNCBASE, ns.NOTES
TEXT = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="\r"), max_size=200
)


@settings(max_examples=100, deadline=None)
@given(subject=TEXT.filter(lambda s: s.strip() == s and s), body=TEXT, html=st.booleans())
def test_note_round_trips_through_its_imap_message(subject: str, body: str, html: bool) -> None:
    note = Note(subject=subject, body=body, html=html, uid="ABC-1")
    back = note_from_mime(note_to_mime(note, "alice@example.org"), ["work"])
    assert (back.subject, back.html, back.uid, back.categories) == (
        subject,
        html,
        "ABC-1",
        ("work",),
    )
    assert back.body.replace("\r\n", "\n").rstrip("\n") == body.replace("\r\n", "\n").rstrip("\n")


def test_apple_headers() -> None:
    mime = note_to_mime(Note(subject="Groceries", body="milk"), "alice@example.org")
    assert b"X-Uniform-Type-Identifier: com.apple.mail-note" in mime
    assert b"X-Universally-Unique-Identifier: " in mime


def test_a_change_keeps_what_it_does_not_name() -> None:
    stored = Note(subject="List", body="<p>eggs</p>", html=True, categories=("home",))
    changed = parse_note(E(A, "ApplicationData", E(N, "Subject", text="Shopping")), stored)
    assert (changed.subject, changed.body, changed.categories) == (
        "Shopping",
        "<p>eggs</p>",
        ("home",),
    )
    cleared = parse_note(E(A, "ApplicationData", E(N, "Categories")), changed)
    assert cleared.categories == ()


def _body(items: list, tag: str) -> str | None:  # type: ignore[type-arg]
    body = next(e for e in items if e.tag == f"{{{B}}}Body")
    return body.findtext(f"{{{B}}}{tag}")


def test_render_follows_body_preferences_and_versions() -> None:
    note = Note(subject="Plan", body="<p>a &amp; b</p>", html=True,
                modified=datetime(2026, 11, 22, 9, 30, tzinfo=UTC))  # fmt: skip
    plain = render_note(note, [E(A, "Options", E(B, "BodyPreference", E(B, "Type", text=1)))])
    assert (_body(plain, "Type"), _body(plain, "Data")) == ("1", "a & b")
    html = render_note(note, [E(A, "Options", E(B, "BodyPreference", E(B, "Type", text=2),
                                                E(B, "TruncationSize", text=5)))])  # fmt: skip
    assert (_body(html, "Type"), _body(html, "Truncated"), _body(html, "Data")) == (
        "2",
        "1",
        "<p>a ",
    )
    tags = [e.tag.split("}")[1] for e in plain]
    assert tags == ["Subject", "Body", "MessageClass", "LastModifiedDate"]
    assert plain[3].text == "2026-11-22T09:30:00.000Z"
    for version in ("14.1", "16.1"):
        tree = E(A, "ApplicationData", *render_note(note))
        assert decode(encode(tree, version)).findtext(f"{{{N}}}MessageClass") == "IPM.StickyNote"
