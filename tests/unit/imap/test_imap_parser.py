"""IMAP response parsing: the tricky server answers opush relies on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.imap import parser as p
from opush.backends.imap.utf7 import decode_mailbox, encode_mailbox

# --------------------------------------------------------------------------- modified UTF-7


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 5.1.3
        ("Tom & Jerry", "Tom &- Jerry"),
        ("Éléments envoyés", "&AMk-l&AOk-ments envoy&AOk-s"),
        ("Корзина", "&BBoEPgRABDcEOAQ9BDA-"),
        ("emoji 📬", "emoji &2D3c7A-"),  # surrogate pair,
    ],
)
def test_modified_utf7_known_names(text: str, wire: str) -> None:
    assert encode_mailbox(text) == wire
    assert decode_mailbox(wire) == text


@settings(max_examples=200)
@given(st.text())
def test_modified_utf7_round_trips_and_is_printable_ascii(text: str) -> None:
    wire = encode_mailbox(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in wire)
    assert decode_mailbox(wire) == text


@settings(max_examples=100)
@given(st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs", "Cc"])))
def test_modified_utf7_agrees_with_twisted_codec(text: str) -> None:
    import twisted.mail.imap4  # noqa: F401  (registers the imap4-utf-7 codec)

    assert encode_mailbox(text).encode("ascii") == text.encode("imap4-utf-7")


@pytest.mark.parametrize("bad", ["&AMk", "&A-", "&!!-"])
def test_modified_utf7_rejects_malformed_shifts(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_mailbox(bad)


# --------------------------------------------------------------------------- tokens


def test_literal_inside_fetch_with_bracketed_key() -> None:
    r = p.parse_response(
        [b"* 12 FETCH (UID 5 BODY[HEADER.FIELDS (SUBJECT FROM)]<0> {7}", b" FLAGS (\\Seen))"],
        [b"Sub\r\n\r\n"],
    )
    assert (r.kind, r.number) == ("FETCH", 12)
    items = p.fetch_items(r.data)
    assert items["BODY[HEADER.FIELDS (SUBJECT FROM)]"] == b"Sub\r\n\r\n"
    assert p.flags(items["FLAGS"]) == {"\\Seen"}
    assert p.number(items["UID"]) == 5


def test_literal_with_crlf_and_parens_is_opaque() -> None:
    body = b'a (b) {3}\r\n"q" NIL'
    r = p.parse_response([b"* 1 FETCH (UID 9 BODY[] {%d}" % len(body), b")"], [body])
    assert p.fetch_items(r.data)["BODY[]"] == body


def test_quoted_escapes_and_nil() -> None:
    assert p.tokenize(b'"a \\"b\\" \\\\c" NIL nil "NIL" ()') == [
        b'a "b" \\c',
        None,
        None,
        b"NIL",
        [],
    ]


def test_status_response_codes() -> None:
    r = p.parse_response([b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted."])
    assert r.kind == "OK" and r.code == ["PERMANENTFLAGS", ["\\Seen", "\\*"]]
    assert r.text == "Flags permitted."
    t = p.parse_response([b"A0003 OK [APPENDUID 38505 3955] APPEND completed"])
    assert (t.tag, t.code_name, t.code) == ("A0003", "APPENDUID", ["APPENDUID", "38505", "3955"])
    n = p.parse_response([b"A1 NO [ALREADYEXISTS] Mailbox already exists"])
    assert (n.kind, n.code_name) == ("NO", "ALREADYEXISTS")
    plain = p.parse_response([b"A2 NO no such thing"])
    assert plain.code is None and plain.text == "no such thing"


def test_continuation() -> None:
    r = p.parse_response([b"+ idling"])
    assert (r.tag, r.text) == ("+", "idling")


def test_vanished_earlier() -> None:
    r = p.parse_response([b"* VANISHED (EARLIER) 41,43:116,118,120:211,214:540"])
    assert r.kind == "VANISHED"
    assert r.data[0] == ["EARLIER"]
    uids = p.parse_sequence_set(str(r.data[1]))
    assert uids[:3] == [41, 43, 44] and uids[-1] == 540 and 42 not in uids


def test_vanished_bounded_does_not_expand_huge_ranges() -> None:
    assert p.parse_sequence_set_bounded("1:4294967295", 6) == {1, 2, 3, 4, 5}
    assert p.parse_sequence_set_bounded("3,9:7", 9) == {3, 7, 8}


def test_list_with_literal_name_and_nil_delimiter() -> None:
    r = p.parse_response([b"* LIST (\\HasNoChildren \\Sent) NIL {8}", b""], [b"&AMk-t&-"])
    assert r.data == [["\\HasNoChildren", "\\Sent"], None, b"&AMk-t&-"]
    assert decode_mailbox(p.text(r.data[2]) or "") == "Ét&"


def test_unbalanced_input_is_a_parse_error() -> None:
    with pytest.raises(p.ParseError):
        p.parse_response([b"* 1 FETCH (UID 1"])
    with pytest.raises(p.ParseError):
        p.parse_response([b'* LIST () "/" "unterminated'])


# --------------------------------------------------------------------------- sequence sets


@settings(max_examples=200)
@given(st.sets(st.integers(min_value=1, max_value=5000), min_size=1, max_size=200))
def test_compact_set_round_trips(uids: set[int]) -> None:
    spec = p.compact_set(uids)
    assert sorted(p.parse_sequence_set(spec)) == sorted(uids)
    assert len(spec.split(",")) <= len(uids)


def test_sequence_set_keeps_order_for_copyuid_pairs() -> None:
    assert p.parse_sequence_set("304,319:320") == [304, 319, 320]
    assert p.parse_sequence_set("5:3") == [3, 4, 5]
    assert p.parse_sequence_set("2:*", star=4) == [2, 3, 4]
    with pytest.raises(p.ParseError):
        p.parse_sequence_set("0")


# ------------------------------------------------------------------- ENVELOPE / BODYSTRUCTURE

ENVELOPE = (
    b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    b'((NIL NIL "imap" "cac.washington.edu")) '
    b'((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
    b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
)


def test_envelope_rfc3501_example() -> None:
    env = p.parse_envelope(p.tokenize(ENVELOPE)[0])
    assert env.subject == "IMAP4rev1 WG mtg summary and minutes"
    assert env.from_[0].name == "Terry Gray"
    assert env.from_[0].email == "gray@cac.washington.edu"
    assert [a.email for a in env.cc] == ["minutes@CNRI.Reston.VA.US", "KLENSIN@MIT.EDU"]
    assert env.bcc == () and env.in_reply_to is None
    assert env.message_id == "<B27397-0100000@cac.washington.edu>"


NESTED = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 120 4 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "base64" 300 5 NIL NIL NIL NIL)'
    b' "alternative" ("boundary" "b2") NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL NIL "7bit" 900 ' + ENVELOPE + b" "
    b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL NIL)'
    b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 500 NIL '
    b'("attachment" ("filename" "a.pdf")) NIL NIL) "mixed" ("boundary" "b3") NIL NIL NIL)'
    b" 20 NIL NIL NIL NIL)"
    b'("image" "png" ("name" {9}'
)
NESTED_TAIL = b') "<img1>" NIL "base64" 2048 NIL ("inline" ("filename" "p.png")) ("fr" "en") NIL)'
NESTED_END = b' "mixed" ("boundary" "b1") ("attachment" NIL) NIL "http://x")'


def test_nested_bodystructure_sections_and_fields() -> None:
    r = p.parse_response(
        [b"* 3 FETCH (UID 7 BODYSTRUCTURE " + NESTED, NESTED_TAIL + NESTED_END + b")"],
        [b"\xc3\xa9t\xc3\xa9.png"],
    )
    body = p.parse_bodystructure(p.fetch_items(r.data)["BODYSTRUCTURE"])
    sections = [(part.section, f"{part.type}/{part.subtype}") for part in body.walk()]
    # The multipart body of the attached message has no number of its own (RFC 3501 6.4.5):
    # it shares "2" with its message/rfc822 part; its children are 2.1 and 2.2.
    assert sections == [
        ("", "multipart/mixed"),
        ("1", "multipart/alternative"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "message/rfc822"),
        ("2", "multipart/mixed"),
        ("2.1", "text/plain"),
        ("2.2", "application/pdf"),
        ("3", "image/png"),
    ]
    parts = {part.section: part for part in body.walk() if part.type != "multipart"}
    assert parts["1.1"].encoding == "quoted-printable" and parts["1.1"].lines == 4
    assert parts["2"].envelope is not None and parts["2"].envelope.subject is not None
    assert parts["2.2"].disposition == "attachment"
    assert parts["2.2"].disposition_params == {"filename": "a.pdf"}
    image = parts["3"]
    assert image.params == {"name": "été.png"}
    assert (image.id, image.size, image.disposition) == ("<img1>", 2048, "inline")
    assert image.language == ("fr", "en")
    assert body.params == {"boundary": "b1"} and body.location == "http://x"


def test_single_part_message_is_section_1() -> None:
    tok = p.tokenize(b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)')[0]
    body = p.parse_bodystructure(tok)
    assert (body.section, body.type, body.subtype, body.params) == (
        "1",
        "text",
        "plain",
        {"charset": "US-ASCII"},
    )
    assert (body.size, body.lines, body.children) == (3028, 92, ())


# --------------------------------------------------------------------------- dates


def test_internaldate_is_locale_independent_and_aware() -> None:
    d = p.parse_internaldate(b" 7-Jul-1996 02:44:25 -0700")
    assert d == datetime(1996, 7, 7, 9, 44, 25, tzinfo=UTC)
    with pytest.raises(p.ParseError):
        p.parse_internaldate(b"7-Foo-1996 02:44:25 -0700")


@settings(max_examples=100)
@given(
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
def test_internaldate_format_round_trips(value: datetime, offset_min: int) -> None:
    aware = value.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset_min)))
    assert p.parse_internaldate(p.format_internaldate(aware).encode()) == aware


def test_search_date() -> None:
    assert p.format_search_date(date(2026, 2, 1)) == "1-Feb-2026"


def test_flags_are_validated() -> None:
    assert p.check_flag("\\Seen") == "\\Seen"
    assert p.check_flag("$Forwarded") == "$Forwarded"
    for bad in ("two words", "a(b", "", "ü"):
        with pytest.raises(ValueError):
            p.check_flag(bad)


# --------------------------------------------------------------------------- fast tokenizer


def _reference(lines: list[bytes], literals: list[bytes]) -> object:
    """What the character scanner says: tokens, or the ParseError it raises."""
    try:
        return p._Scanner(lines, literals).tokens()
    except p.ParseError:
        return p.ParseError


def _fast_or_reference(lines: list[bytes], literals: list[bytes]) -> object:
    try:
        return p._tokens(lines, literals)
    except p.ParseError:
        return p.ParseError


_atoms = st.one_of(
    st.sampled_from(["NIL", "nil", "UID", "\\Seen", "$Forwarded", "BODY[HEADER]", "12345",
                     "BODY[HEADER.FIELDS (DATE FROM)]", "BODY[1]<0>", "RFC822.SIZE", "]x"]),
    st.text(alphabet="abcXYZ019.-\\$*%]", min_size=1, max_size=6),
)  # fmt: skip
_quoted = st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b)


def _wire(tree: object, out: list[bytes], literals: list[bytes]) -> None:
    if isinstance(tree, list):
        out.append(b"(")
        for i, child in enumerate(tree):
            if i:
                out.append(b" ")
            _wire(child, out, literals)
        out.append(b")")
    elif isinstance(tree, tuple):  # a literal
        out.append(b"{%d}" % len(tree[0]) + b"\n")
        literals.append(tree[0])
    elif isinstance(tree, bytes):
        out.append(b'"' + tree.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
    else:
        assert isinstance(tree, str)
        out.append(tree.encode())


_trees = st.recursive(
    st.one_of(_atoms, _quoted, st.tuples(st.binary(max_size=20))),
    lambda children: st.lists(children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400)
@given(st.lists(_trees, max_size=6))
def test_fast_tokenizer_agrees_with_the_scanner_on_responses(trees: list[object]) -> None:
    chunks: list[bytes] = []
    literals: list[bytes] = []
    for i, tree in enumerate(trees):
        if i:
            chunks.append(b" ")
        _wire(tree, chunks, literals)
    # A literal marker ends its line: the text after it is the next line.
    lines = b"".join(chunks).split(b"\n")
    assert p._fast_tokens(lines, literals) is not None
    assert _fast_or_reference(lines, literals) == _reference(lines, literals)


@settings(max_examples=1000)
@given(
    st.lists(st.binary(max_size=30).filter(lambda b: b"\n" not in b), min_size=1, max_size=3),
    st.data(),
)
def test_fast_tokenizer_never_disagrees_on_arbitrary_bytes(
    lines: list[bytes], data: st.DataObject
) -> None:
    count = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
    literals = [data.draw(st.binary(max_size=5)) for _ in range(count)]
    lines = lines[: count + 1]
    fast = p._fast_tokens(lines, literals)
    if fast is not None:
        assert fast == _reference(lines, literals)
    assert _fast_or_reference(lines, literals) == _reference(lines, literals)


def test_fetch_line_with_literals_takes_the_fast_path() -> None:
    lines = [b"(UID 7 FLAGS (\\Seen $Label1) BODY[HEADER] {5}", b" BODY[1]<0> {3}", b")"]
    literals = [b"Hi: x", b"abc"]
    assert p._fast_tokens(lines, literals) == [
        ["UID", "7", "FLAGS", ["\\Seen", "$Label1"], "BODY[HEADER]", b"Hi: x", "BODY[1]<0>", b"abc"]
    ]


@settings(max_examples=600)
@given(
    _trees,
    st.lists(
        st.tuples(st.integers(min_value=0), st.sampled_from(list(b' ()[]{}"\\<>+0N\x80'))),
        max_size=3,
    ),
)
def test_fast_tokenizer_agrees_on_damaged_responses(
    tree: object, edits: list[tuple[int, int]]
) -> None:
    chunks: list[bytes] = []
    literals: list[bytes] = []
    _wire(tree, chunks, literals)
    wire = bytearray(b"".join(chunks))
    for at, byte in edits:
        wire.insert(at % (len(wire) + 1), byte)
    lines = bytes(wire).split(b"\n")
    if len(lines) != len(literals) + 1:
        return
    fast = p._fast_tokens(lines, literals)
    if fast is not None:
        assert fast == _reference(lines, literals)
