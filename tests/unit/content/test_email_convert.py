"""Mail -> EAS item: body preferences, charsets, headers, attachments, per-version shapes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from opush.content.email import (
    BodyPreference,
    EmailOptions,
    MailFlags,
    MessageRef,
    MimeSupport,
    PartialMessage,
    email_application_data,
    extract_attachment,
    fetch_plan,
    parse_file_reference,
    structure_from_bodystructure,
)
from opush.content.email.xml import get_opaque
from tests.support.mail import find, names, roundtrip, text

VERSIONS = ["2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"]
CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "corpus" / "linagora-opush"


def plain_mail(body: bytes = b"Hello Alice,\r\nsee you.\r\n", headers: bytes = b"") -> bytes:
    return (
        b"From: Bob Builder <bob@example.org>\r\n"
        b"To: Alice <alice@example.org>, carol@example.org\r\n"
        b"Subject: Re: Lunch\r\n"
        b"Date: Wed, 24 Sep 2014 09:36:54 +0200\r\n"
        b"Message-ID: <m1@example.org>\r\n" + headers + b"\r\n" + body
    )


ALTERNATIVE = (
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: Rich\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=AA\r\n\r\n"
    b"--AA\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nCaf\xc3\xa9 *bold*\r\n"
    b"--AA\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><body><p>Caf\xc3\xa9 <b>bold</b></p></body></html>\r\n--AA--\r\n"
)

HTML_ONLY = (
    b"From: bob@example.org\r\nSubject: html\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n"
    b"<html><head><style>p {color: red}</style></head><body><p>Ol\xe9</p><div>two</div>"
    b"<script>x()</script></body></html>"
)


def convert(msg: bytes, version: str = "14.1", **kw: object) -> list[etree._Element]:
    return email_application_data(msg, version=version, **kw)  # type: ignore[arg-type]


def prefs(*p: BodyPreference, mime: MimeSupport | None = None) -> EmailOptions:
    return EmailOptions(body_preferences=p, mime_support=mime)


# --- headers ---------------------------------------------------------------------------------


def test_envelope_elements_like_exchange() -> None:
    items = convert(plain_mail(), "12.1", flags=MailFlags(seen=True))
    assert text(items, "e:From") == '"Bob Builder" <bob@example.org>'
    assert text(items, "e:To") == '"Alice" <alice@example.org>, carol@example.org'
    assert text(items, "e:DisplayTo") == "Alice; carol@example.org"
    assert text(items, "e:Subject") == "Re: Lunch"
    assert text(items, "e:ThreadTopic") == "Lunch"
    assert text(items, "e:DateReceived") == "2014-09-24T07:36:54.000Z"
    assert text(items, "e:Read") == "1"
    assert text(items, "e:Importance") == "1"
    assert text(items, "e:MessageClass") == "IPM.Note"
    assert text(items, "e:ContentClass") == "urn:content-classes:message"


def test_internaldate_wins_over_date_header() -> None:
    when = datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    items = convert(plain_mail(), internaldate=when)
    assert text(items, "e:DateReceived") == "2020-01-02T03:04:05.678Z"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Importance: High\r\n", "2"),
        (b"X-Priority: 1 (Highest)\r\n", "2"),
        (b"X-Priority: 5\r\n", "0"),
        (b"Importance: low\r\n", "0"),
    ],
)
def test_importance(header: bytes, expected: str) -> None:
    assert text(convert(plain_mail(headers=header)), "e:Importance") == expected


def test_rfc2047_headers_decoded_including_broken_ones() -> None:
    # OP-136: glued words, a UTF-8 character split over two words, unknown charset, raw 8-bit.
    headers = (
        b"From: =?utf-8?q?J=C3=A9r=C3=B4me?= <j@example.org>\r\n"
        b"To: =?x-bogus?B?QWxpY2U=?= <alice@example.org>\r\n"
        b"Subject: =?UTF-8?B?w6k=?==?UTF-8?B?w6g=?=x =?utf-8?B?4oI=?= =?utf-8?B?rA==?=\r\n"
        b"Cc: Ren\xe9 <rene@example.org>\r\n\r\nbody"
    )
    items = convert(headers)
    assert text(items, "e:From") == '"J\u00e9r\u00f4me" <j@example.org>'
    assert text(items, "e:To") == '"Alice" <alice@example.org>'
    assert text(items, "e:Subject") == "\u00e9\u00e8x \u20ac"
    assert text(items, "e:Cc") == '"Ren\u00e9" <rene@example.org>'


def test_quotes_in_display_names_are_escaped() -> None:
    items = convert(b'From: "Smith, \\"Bob\\"" <b@example.org>\r\n\r\nx')
    assert text(items, "e:From") == '"Smith, \\"Bob\\"" <b@example.org>'


# --- bodies ----------------------------------------------------------------------------------


def test_plain_body_default_when_no_preference() -> None:
    items = convert(plain_mail(), "12.1")
    assert text(items, "b:Body/b:Type") == "1"
    assert text(items, "b:Body/b:Data") == "Hello Alice,\r\nsee you.\r\n"
    assert text(items, "b:Body/b:EstimatedDataSize") == str(len("Hello Alice,\r\nsee you.\r\n"))
    assert find(items, "b:Body/b:Truncated") is None
    assert text(items, "b:NativeBodyType") == "1"


def test_truncation_cuts_on_utf8_boundary_and_marks_truncated() -> None:
    body = "\u00e9" * 10  # 20 bytes
    items = convert(
        plain_mail(body.encode(), b"Content-Type: text/plain; charset=utf-8\r\n"),
        options=prefs(BodyPreference(type=1, truncation_size=5)),
    )
    assert text(items, "b:Body/b:Data") == "\u00e9\u00e9"
    assert text(items, "b:Body/b:Truncated") == "1"
    assert text(items, "b:Body/b:EstimatedDataSize") == "20"


def test_html_preferred_when_native_html() -> None:
    items = convert(ALTERNATIVE, options=prefs(BodyPreference(type=1), BodyPreference(type=2)))
    assert text(items, "b:Body/b:Type") == "2"
    assert "<b>bold</b>" in (text(items, "b:Body/b:Data") or "")
    assert text(items, "b:NativeBodyType") == "2"


def test_plain_asked_for_html_only_mail_is_converted() -> None:
    items = convert(HTML_ONLY, options=prefs(BodyPreference(type=1)))
    data = text(items, "b:Body/b:Data")
    assert data == "Ol\u00e9\n\ntwo"
    assert text(items, "e:InternetCPID") == "28591"


def test_html_asked_for_plain_only_mail_is_converted() -> None:
    items = convert(plain_mail(b"a < b\r\nhttp://x.org/"), options=prefs(BodyPreference(type=2)))
    data = text(items, "b:Body/b:Data") or ""
    assert "a &lt; b<br>" in data and '<a href="http://x.org/">' in data
    assert text(items, "b:NativeBodyType") == "1"


def test_all_or_none_falls_back_to_next_preference() -> None:
    # MS-ASAIRS 2.2.2.3.2: HTML too big for AllOrNone -> the next preference (plain, whole).
    options = prefs(
        BodyPreference(type=2, truncation_size=10, all_or_none=True), BodyPreference(type=1)
    )
    items = convert(ALTERNATIVE, options=options)
    assert text(items, "b:Body/b:Type") == "1"
    assert find(items, "b:Body/b:Truncated") is None


def test_all_or_none_alone_sends_no_data() -> None:
    items = convert(ALTERNATIVE, options=prefs(BodyPreference(2, 10, all_or_none=True)))
    assert text(items, "b:Body/b:Type") == "2"
    assert text(items, "b:Body/b:Truncated") == "1"
    assert find(items, "b:Body/b:Data") is None
    small = convert(ALTERNATIVE, options=prefs(BodyPreference(2, 10_000, all_or_none=True)))
    assert find(small, "b:Body/b:Data") is not None


def test_preview_only_from_14_0_and_never_html() -> None:
    options = prefs(BodyPreference(type=2, preview=8))
    assert (
        text(convert(ALTERNATIVE, "14.0", options=options), "b:Body/b:Preview") == "Caf\u00e9 *bo"
    )
    assert find(convert(ALTERNATIVE, "12.1", options=options), "b:Body/b:Preview") is None
    assert text(convert(HTML_ONLY, "14.1", options=options), "b:Body/b:Preview") == "Ol\u00e9 two"


def test_empty_body_like_exchange_has_no_data() -> None:
    items = convert(plain_mail(b""), "12.1")
    assert text(items, "b:Body/b:EstimatedDataSize") == "0"
    assert find(items, "b:Body/b:Data") is None


def test_mime_body_needs_mime_support() -> None:
    msg = plain_mail()
    asked = prefs(BodyPreference(type=4), BodyPreference(type=1), mime=MimeSupport.ALWAYS)
    items = convert(msg, "12.1", options=asked)
    assert text(items, "b:Body/b:Type") == "4"
    assert (text(items, "b:Body/b:Data") or "").startswith("From: Bob Builder")
    never = prefs(BodyPreference(type=4), BodyPreference(type=1), mime=MimeSupport.NEVER)
    assert text(convert(msg, "12.1", options=never), "b:Body/b:Type") == "1"
    smime_only = prefs(BodyPreference(type=4), BodyPreference(type=1), mime=MimeSupport.SMIME_ONLY)
    assert text(convert(msg, "12.1", options=smime_only), "b:Body/b:Type") == "1"


def test_mime_truncation_and_non_utf8_mime_goes_opaque() -> None:
    msg = plain_mail(b"caf\xe9 " * 50, b"Content-Type: text/plain; charset=iso-8859-1\r\n")
    items = convert(
        msg, options=prefs(BodyPreference(type=4, truncation_size=100), mime=MimeSupport.ALWAYS)
    )
    data_el = find(items, "b:Body/b:Data")
    assert data_el is not None
    assert get_opaque(data_el) == msg[:100]
    assert text(items, "b:Body/b:Truncated") == "1"
    assert text(items, "b:Body/b:EstimatedDataSize") == str(len(msg))
    roundtrip(items, "14.1")


def test_body_part_html_for_14_1() -> None:
    options = EmailOptions(
        body_preferences=(BodyPreference(type=1),), body_part_preferences=(BodyPreference(type=2),)
    )
    items = convert(ALTERNATIVE, "14.1", options=options)
    assert text(items, "b:BodyPart/b:Status") == "1"
    assert "<b>bold</b>" in (text(items, "b:BodyPart/b:Data") or "")
    assert find(convert(ALTERNATIVE, "14.0", options=options), "b:BodyPart") is None


# --- charsets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "raw", "expected"),
    [
        (b"iso-8859-15", "\u20ac uro".encode("iso-8859-15"), "\u20ac uro"),
        (b"windows-1251", "\u041f\u0440\u0438\u0432\u0435\u0442".encode("cp1251"), "Привет"),
        (b"gb2312", "\u4e2d\u6587".encode("gb2312"), "\u4e2d\u6587"),
        (b"iso-2022-jp", "\u65e5\u672c".encode("iso-2022-jp"), "\u65e5\u672c"),
        (b"x-unknown-thing", "caf\u00e9".encode(), "caf\u00e9"),
        (b"us-ascii", "caf\u00e9".encode("latin-1"), "caf\u00e9"),  # OP-132: lies
        (b"utf-8", "caf\u00e9".encode("latin-1"), "caf\u00e9"),
    ],
)
def test_legacy_and_broken_charsets(charset: bytes, raw: bytes, expected: str) -> None:
    msg = plain_mail(raw, b"Content-Type: text/plain; charset=" + charset + b"\r\n")
    assert text(convert(msg), "b:Body/b:Data") == expected


def test_no_charset_8bit_body_is_guessed() -> None:
    # OP-132: no charset at all on 8-bit text.
    assert text(convert(plain_mail("d\u00e9j\u00e0".encode())), "b:Body/b:Data") == "d\u00e9j\u00e0"
    assert text(convert(plain_mail(b"d\xe9j\xe0")), "b:Body/b:Data") == "d\u00e9j\u00e0"


def test_control_characters_never_break_the_item() -> None:
    items = convert(plain_mail(b"nul\x00 bell\x07 ok"))
    assert text(items, "b:Body/b:Data") == "nul bell ok"
    roundtrip(items, "14.1")


# --- attachments -----------------------------------------------------------------------------

WITH_ATTACHMENTS = (
    b"From: bob@example.org\r\nTo: alice@example.org\r\nSubject: Fwd: mail with attachment\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=MM\r\n\r\n"
    b"--MM\r\nContent-Type: multipart/related; boundary=RR\r\n\r\n"
    b"--RR\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<html><body>see <img src="cid:logo@x"></body></html>\r\n'
    b"--RR\r\nContent-Type: image/gif\r\nContent-ID: <logo@x>\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--RR--\r\n"
    b"--MM\r\nContent-Type: application/pdf; name*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    b"--MM\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: mail with attachment\r\nFrom: x@example.org\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=II\r\n\r\n--II\r\nContent-Type: text/plain\r\n\r\n"
    b"inner\r\n--II\r\nContent-Type: text/plain; name=a.txt\r\n"
    b"Content-Disposition: attachment; filename=a.txt\r\n\r\nAAA\r\n--II--\r\n"
    b"--MM--\r\n"
)


def test_attachments_inline_and_attached_mail() -> None:
    items = convert(WITH_ATTACHMENTS, "14.1", ref=MessageRef("5", 2))
    atts = find(items, "b:Attachments")
    assert atts is not None
    rows = [
        {etree.QName(c).localname: c.text for c in att}  # type: ignore[union-attr]
        for att in atts
    ]
    assert rows == [
        {
            "DisplayName": "ATT1_2.gif",
            "FileReference": "5%3A2%3A1.2",
            "Method": "1",
            "EstimatedDataSize": "14",
            "ContentId": "logo@x",
            "IsInline": "1",
        },
        {
            "DisplayName": "r\u00e9sum\u00e9.pdf",
            "FileReference": "5%3A2%3A2",
            "Method": "1",
            "EstimatedDataSize": "9",
        },
        {  # OP-82: the attached mail is one .eml attachment (its own attachment inside it)
            "DisplayName": "mail with attachment.eml",
            "FileReference": "5%3A2%3A3",
            "Method": "5",
            "EstimatedDataSize": rows[2]["EstimatedDataSize"],
        },
    ]
    assert text(items, "b:Body/b:Type") == "1"
    assert text(items, "b:Body/b:Data") == "see"
    roundtrip(items, "14.1")


def test_extract_attachment_by_file_reference() -> None:
    ref = parse_file_reference("5%3A2%3A2")
    assert (ref.collection_id, ref.uid, ref.part) == ("5", 2, "2")
    assert extract_attachment(WITH_ATTACHMENTS, ref.part) == (
        "application/pdf",
        "r\u00e9sum\u00e9.pdf",
        b"%PDF-1.4\n",
    )
    ctype, name, data = extract_attachment(WITH_ATTACHMENTS, "3")
    assert (ctype, name) == ("message/rfc822", "mail with attachment.eml")
    assert b"Subject: mail with attachment" in data and b"filename=a.txt" in data
    assert extract_attachment(WITH_ATTACHMENTS, "1.2")[2].startswith(b"GIF89a")


def test_attachments_in_2_5_use_email_namespace() -> None:
    items = convert(WITH_ATTACHMENTS, "2.5", ref=MessageRef("5", 2))
    assert text(items, "e:Attachments/e:Attachment[2]/e:AttName") == "5%3A2%3A2"
    assert text(items, "e:Attachments/e:Attachment[3]/e:AttMethod") == "5"
    roundtrip(items, "2.5")


# --- flags, conversation, per-version shape --------------------------------------------------


def test_flag_categories_and_verbs() -> None:
    flags = MailFlags(seen=True, flagged=True, forwarded=True)
    items = convert(plain_mail(), "14.1", flags=flags, categories=["Work", "Home"])
    assert text(items, "e:Flag/e:Status") == "2"
    assert [c.text for c in find(items, "e:Categories")] == ["Work", "Home"]  # type: ignore[union-attr]
    assert text(items, "e2:LastVerbExecuted") == "3"
    assert find(convert(plain_mail(), "12.1"), "e:Flag") is not None
    assert len(find(convert(plain_mail(), "12.1"), "e:Flag")) == 0  # type: ignore[arg-type]


def test_conversation_id_shared_by_a_thread() -> None:
    first = convert(plain_mail(headers=b""), "14.1")
    reply = convert(
        b"Message-ID: <r@x>\r\nIn-Reply-To: <m1@example.org>\r\n"
        b"References: <m1@example.org>\r\nSubject: Re: Lunch\r\n\r\nok",
        "14.1",
    )
    id1 = get_opaque(find(first, "e2:ConversationId"))  # type: ignore[arg-type]
    id2 = get_opaque(find(reply, "e2:ConversationId"))  # type: ignore[arg-type]
    assert id1 == id2 and len(id1) == 16
    assert len(get_opaque(find(first, "e2:ConversationIndex"))) == 5  # type: ignore[arg-type]


def test_received_as_bcc_and_sender() -> None:
    msg = plain_mail(headers=b"Bcc: me@example.org\r\nSender: list@example.org\r\n")
    items = convert(msg, "14.1", user_addresses=["ME@example.org"])
    assert text(items, "e2:ReceivedAsBcc") == "1"
    assert text(items, "e2:Sender") == "list@example.org"


@pytest.mark.parametrize("version", VERSIONS)
def test_shape_per_version_encodes(version: str) -> None:
    options = prefs(BodyPreference(type=2, truncation_size=50, preview=20))
    items = convert(WITH_ATTACHMENTS, version, options=options, ref=MessageRef("1", 1))
    tags = names(items)
    if version == "2.5":
        assert "Body" in tags and "Flag" not in tags and "NativeBodyType" not in tags
        assert find(items, "b:Body") is None
    else:
        assert find(items, "b:Body") is not None and "NativeBodyType" in tags
    has_14 = version >= "14.0" and version != "2.5"
    assert ("ConversationId" in tags) is has_14
    assert (find(items, "b:Body/b:Preview") is not None) is has_14
    assert ("IsDraft" in tags) is version.startswith("16")
    roundtrip(items, version)  # the codec refuses any tag the version lacks


# --- partial (fast path) ---------------------------------------------------------------------

BODYSTRUCTURE = [
    [
        ["text", "plain", ["charset", "utf-8"], None, None, "base64", "1400", "20", None, None],
        ["text", "html", ["charset", "utf-8"], None, None, "quoted-printable", "5000", "80"],
        "alternative",
        ["boundary", "x"],
        None,
        None,
    ],
    ["application", "pdf", ["name", "a.pdf"], None, None, "base64", "7800", None,
     ["attachment", ["filename", "=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="]], None, None],
    "mixed",
    ["boundary", "y"],
]  # fmt: skip


def test_partial_message_truncated_from_the_fetched_prefix() -> None:
    parts = structure_from_bodystructure(BODYSTRUCTURE)
    assert [(p.path, p.content_type) for p in parts] == [
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "application/pdf"),
    ]
    options = prefs(BodyPreference(type=1, truncation_size=500))
    plan = fetch_plan(parts, options, "12.1")
    assert list(plan) == ["1.1"] and plan["1.1"] is not None and plan["1.1"] >= 700
    body = ("h\u00e9llo world " * 100).encode()
    prefix = base64.encodebytes(body)[: plan["1.1"]]
    partial = PartialMessage(
        headers=b"From: a@example.org\r\nSubject: partial\r\n\r\n",
        parts=parts,
        size=20000,
        texts={"1.1": prefix},
    )
    items = email_application_data(partial, options=options, version="12.1", ref=MessageRef("3", 7))
    data = text(items, "b:Body/b:Data") or ""
    assert data.startswith("h\u00e9llo world") and len(data.encode()) <= 500
    assert text(items, "b:Body/b:Truncated") == "1"
    assert int(text(items, "b:Body/b:EstimatedDataSize") or 0) >= 1000
    assert text(items, "b:Attachments/b:Attachment/b:DisplayName") == "r\u00e9sum\u00e9.pdf"
    assert text(items, "b:NativeBodyType") == "2"
    roundtrip(items, "12.1")


def test_partial_message_complete_small_part_is_not_truncated() -> None:
    parts = structure_from_bodystructure(["text", "plain", None, None, None, "7bit", "5", "1"])
    partial = PartialMessage(
        headers=b"Subject: s\r\n\r\n", parts=parts, size=20, texts={"1": b"hello"}
    )
    items = email_application_data(partial, version="14.1")
    assert text(items, "b:Body/b:Data") == "hello"
    assert find(items, "b:Body/b:Truncated") is None


def test_bodystructure_garbage_never_raises() -> None:
    for garbage in ([None, 3, ["x"]], [], [[], [[]], "mixed"], [b"TEXT", b"PLAIN", b"NIL"]):
        for part in structure_from_bodystructure(garbage):
            assert "/" in part.content_type


# --- the corpus: what Exchange sends ---------------------------------------------------------


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
def test_same_elements_as_exchange_for_a_mail_with_attachment() -> None:
    tree = etree.parse(str(CORPUS / "ios7-exchange-fetch-deleted-emails" / "010-Sync-response.xml"))
    exchange = tree.find(".//{AirSync:}ApplicationData")
    assert exchange is not None
    mail = (
        b'From: "extc extc" <extc@example.org>\r\nTo: "extc extc" <extc@example.org>\r\n'
        b"Subject: mail with attachment\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: text/html; charset=iso-8859-1\r\n\r\n<html><body>content</body></html>\r\n"
        b"--B\r\nContent-Type: image/gif; name=GIF-example.gif\r\n"
        b"Content-Disposition: attachment; filename=GIF-example.gif\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n--B--\r\n"
    )
    items = convert(
        mail,
        "12.1",
        ref=MessageRef("5", 1),
        options=prefs(BodyPreference(type=2, truncation_size=200000)),
    )
    ours = [etree.QName(c).localname for c in items]
    theirs = [etree.QName(c).localname for c in exchange]
    assert ours == theirs
    assert [etree.QName(c).localname for c in find(items, "b:Attachments/b:Attachment")] == [  # type: ignore[union-attr]
        etree.QName(c).localname
        for c in exchange.find(".//{AirSyncBase:}Attachment")  # type: ignore[union-attr]
    ]
    assert text(items, "e:InternetCPID") == exchange.findtext("{Email:}InternetCPID")


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
def test_same_elements_as_exchange_for_a_truncated_plain_mail() -> None:
    tree = etree.parse(str(CORPUS / "ios7-exchange-fetch-deleted-emails" / "029-Sync-response.xml"))
    adds = tree.findall(".//{AirSync:}ApplicationData")
    exchange = adds[-1]  # no Subject, Type 1, Truncated
    request = etree.parse(
        str(CORPUS / "ios7-exchange-fetch-deleted-emails" / "029-Sync-request.xml")
    )
    from opush.content.email import parse_options

    options = parse_options(request.find(".//{AirSync:}Options"))
    mail = (
        b"From: root@localhost\r\nContent-Type: text/html\r\n\r\n" + b"<p>" + b"x" * 2000 + b"</p>"
    )
    items = convert(mail, "12.1", options=options)
    assert [etree.QName(c).localname for c in items] == [etree.QName(c).localname for c in exchange]
    assert [etree.QName(c).localname for c in find(items, "b:Body")] == [  # type: ignore[union-attr]
        etree.QName(c).localname
        for c in exchange.find("{AirSyncBase:}Body")  # type: ignore[union-attr]
    ]


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
def test_same_elements_as_exchange_for_an_ios_mime_fetch() -> None:
    folder = CORPUS / "ios6-exchange-receive200Emails"
    request = etree.parse(str(folder / "030-Sync-request.xml"))
    response = etree.parse(str(folder / "030-Sync-response.xml"))
    exchange = response.find(".//{AirSync:}ApplicationData")
    assert exchange is not None
    from opush.content.email import parse_options

    options = parse_options(request.find(".//{AirSync:}Options"))
    mime = (exchange.findtext(".//{AirSyncBase:}Data") or "").replace("\n", "\r\n").encode()
    items = convert(mime, "12.1", options=options, flags=MailFlags(seen=True))
    assert [etree.QName(c).localname for c in items] == [etree.QName(c).localname for c in exchange]
    assert text(items, "b:Body/b:Type") == "4"
    assert text(items, "b:Body/b:Data") == mime.decode()
    assert text(items, "e:Subject") == exchange.findtext("{Email:}Subject")
    assert text(items, "e:DisplayTo") == "exta@exchange.lyn.lng"  # no display name in To


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus absent")
def test_real_exchange_mail_converts_like_exchange_did() -> None:
    # The GetAttachment .eml of the capture is the very mail Exchange synced in 010 (5:2's
    # attachment): converting it must give Exchange's element list and values.
    folder = CORPUS / "ios7-exchange-fetch-deleted-emails"
    eml = next(folder.glob("*-GetAttachment-response.eml")).read_bytes()
    exchange = etree.parse(str(folder / "010-Sync-response.xml")).find(
        ".//{AirSync:}ApplicationData"
    )
    assert exchange is not None
    options = prefs(BodyPreference(type=2, truncation_size=200000))
    items = convert(eml, "12.1", ref=MessageRef("5", 1), options=options, flags=MailFlags(True))
    assert [etree.QName(c).localname for c in items] == [etree.QName(c).localname for c in exchange]
    for path in ("e:Subject", "e:DisplayTo", "e:ThreadTopic", "e:InternetCPID", "b:NativeBodyType"):
        ours = text(items, path)
        theirs = exchange.xpath(path + "/text()", namespaces={"e": "Email:", "b": "AirSyncBase:"})
        assert [ours] == theirs, path
    assert text(items, "b:Attachments/b:Attachment/b:DisplayName") == "GIF-example.gif"


def test_fetch_plan_mime_only_when_mime_is_the_choice() -> None:
    parts = structure_from_bodystructure(["text", "plain", None, None, None, "7bit", "900", "9"])
    mime_first = prefs(BodyPreference(type=4, truncation_size=2000), mime=MimeSupport.ALWAYS)
    assert fetch_plan(parts, mime_first, "14.1") == {"": 2000}
    # Plain is native and asked: the text part is fetched, not the whole message.
    both = prefs(BodyPreference(type=4), BodyPreference(type=1, truncation_size=100))
    assert fetch_plan(parts, both, "14.1") == {"1": 356}
    assert fetch_plan(parts, prefs(), "2.5") == {"1": None}
