"""Property tests: arbitrary or mutated input never raises and always gives an encodable item."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opush.content.email import (
    BodyPreference,
    EmailOptions,
    Identity,
    MailFlags,
    MessageRef,
    MimeSupport,
    PartialMessage,
    email_application_data,
    extract_attachment,
    prepare_outgoing,
    smart_forward,
    structure_from_bodystructure,
)
from opush.content.email.headers import decode_words
from opush.content.email.structure import parse_message, walk
from tests.support.mail import roundtrip

SEED = (
    b"From: =?utf-8?q?J=C3=A9r=C3=B4me?= <j@example.org>\r\nTo: a@example.org\r\n"
    b"Subject: =?iso-8859-1?b?Y2Fm6Q==?=\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\n"
    b"Content-Type: text/html; charset=windows-1252\r\nContent-Transfer-Encoding: quoted-printable"
    b"\r\n\r\n<p>caf=E9</p>\r\n--M\r\nContent-Type: text/calendar; method=REQUEST\r\n\r\n"
    b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:20150610T100000Z\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n--M\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: in\r\n\r\nx"
    b"\r\n--M\r\nContent-Type: image/gif; name=a.gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"R0lGODlhAQABAAAAACw=\r\n--M--\r\n"
)

OPTIONS = [
    EmailOptions(),
    EmailOptions(body_preferences=(BodyPreference(1, 30, preview=10), BodyPreference(2, 20, True))),
    EmailOptions(body_preferences=(BodyPreference(4, 64),), mime_support=MimeSupport.ALWAYS),
    EmailOptions(mime_support=MimeSupport.ALWAYS, mime_truncation=1, truncation=0),
]
VERSIONS = ["2.5", "12.1", "14.1", "16.1"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(SEED)
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 40))]
        else:
            data[pos:pos] = draw(st.binary(max_size=20))
    return bytes(data)


def _check(message: bytes) -> None:
    for i, version in enumerate(VERSIONS):
        items = email_application_data(
            message,
            ref=MessageRef("1", 1),
            flags=MailFlags(seen=True, flagged=True, answered=True),
            options=OPTIONS[i % len(OPTIONS)],
            version=version,
            categories=["c"],
        )
        roundtrip(items, version)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_convert_and_encode(message: bytes) -> None:
    _check(message)
    for info, _ in walk(parse_message(message)):
        extract_attachment(message, info.path)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_convert_and_encode(message: bytes) -> None:
    _check(message)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_header_decoding_never_raises(value: str) -> None:
    decoded = decode_words(value)
    assert isinstance(decoded, str)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_outgoing_never_raises(new: bytes, original: bytes) -> None:
    prepare_outgoing(new, Identity("alice@example.org", "Alice"))
    smart_forward(new, original, Identity("alice@example.org"))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 5000))
def test_partial_messages_never_raise(prefix: bytes, size: int) -> None:
    parts = structure_from_bodystructure(
        [["text", "plain", ["charset", "utf-8"], None, None, "base64", str(size), "1"],
         ["text", "html", ["charset", "gb2312"], None, None, "quoted-printable", "9", "1"],
         "alternative"]
    )  # fmt: skip
    partial = PartialMessage(
        headers=prefix[:100], parts=parts, size=size, texts={"1": prefix, "2": prefix[::-1]}
    )
    for version in ("12.1", "14.1"):
        roundtrip(email_application_data(partial, options=OPTIONS[1], version=version), version)
