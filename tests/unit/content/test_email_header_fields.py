"""The Sync fast path fetches only ``SYNC_HEADER_FIELDS``: converting with those fields must
give exactly the item the whole header gives (else a field the converter reads is missing)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from opush.content.email import (
    BodyPreference,
    EmailOptions,
    MailFlags,
    PartialMessage,
    email_application_data,
    structure_from_bodystructure,
)
from opush.content.email.convert import SYNC_HEADER_FIELDS

_WANTED = {f.lower() for f in SYNC_HEADER_FIELDS}


def header_fields(header: bytes) -> bytes:
    """What an IMAP server answers for BODY[HEADER.FIELDS (...)] (RFC 3501 6.4.5): the listed
    fields with their continuation lines, then the blank line."""
    out: list[bytes] = []
    keep = False
    for line in re.split(rb"(?<=\r\n)", header):
        if not line or line == b"\r\n":
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        keep = name in _WANTED
        if keep:
            out.append(line)
    return b"".join(out) + b"\r\n"


_NAMES = st.sampled_from(
    [*SYNC_HEADER_FIELDS, "Received", "DKIM-Signature", "X-Mailer", "List-Id", "Return-Path",
     "Content-Transfer-Encoding", "X-Spam-Status", "Auto-Submitted", "Thread-Index",
     "Content-Class", "X-MS-Has-Attach", "Disposition-Notification-To", "Keywords"]
)  # fmt: skip
_VALUES = st.one_of(
    st.sampled_from(
        [
            "Alice <alice@example.org>",
            '"Doe, John" <john@example.com>, bob@example.org',
            "=?utf-8?q?J=C3=A9r=C3=B4me?= <j@example.org>",
            "Mon, 21 Sep 2026 12:00:00 +0200",
            "<abc@example.org> <def@example.org>",
            "high",
            "1 (Highest)",
            "text/plain; charset=utf-8",
            'multipart/alternative; boundary="b"',
            "multipart/report; report-type=delivery-status",
            "urn:content-classes:calendarmessage",
            "Re: lunch",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
)
_HEADERS = st.lists(st.tuples(_NAMES, _VALUES, st.booleans()), max_size=14)


def _header(fields: list[tuple[str, str, bool]]) -> bytes:
    lines = []
    for name, value, folded in fields:
        if folded and " " in value:
            head, _, tail = value.partition(" ")
            lines.append(f"{name}: {head}\r\n\t{tail}\r\n")
        else:
            lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode() + b"\r\n"


_PARTS = structure_from_bodystructure(
    [["text", "plain", ["charset", "utf-8"], None, None, "7bit", "20", "1"],
     ["text", "html", ["charset", "utf-8"], None, None, "7bit", "30", "1"],
     "alternative"]
)  # fmt: skip
_OPTIONS = EmailOptions(body_preferences=(BodyPreference(1, 200),))


def _item(header: bytes, flags: MailFlags, version: str) -> bytes:
    message = PartialMessage(
        headers=header,
        parts=_PARTS,
        size=300,
        texts={"1": b"plain text body here", "2": b"<p>html text body here</p>"},
    )
    items = email_application_data(
        message,
        flags=flags,
        options=_OPTIONS,
        version=version,
        user_addresses=("alice@example.org",),
    )
    return b"".join(etree.tostring(i) for i in items)


@settings(max_examples=200, deadline=None)
@given(_HEADERS, st.sampled_from(["12.1", "14.1", "16.1"]), st.booleans())
def test_the_listed_fields_are_all_the_converter_reads(
    fields: list[tuple[str, str, bool]], version: str, seen: bool
) -> None:
    header = _header(fields)
    flags = MailFlags(seen=seen)
    assert _item(header_fields(header), flags, version) == _item(header, flags, version)


def test_filter_keeps_listed_fields_and_their_continuations() -> None:
    header = b"Received: from x\r\n\tby y\r\nSubject: a\r\n b\r\nX-Foo: 1\r\n\r\n"
    assert header_fields(header) == b"Subject: a\r\n b\r\n\r\n"
