"""The WBXML codec: spec example, header variants, tokens, OPAQUE, errors, limits, versions."""

from __future__ import annotations

import pytest
from lxml import etree

from opush.wbxml import (
    OPAQUE_ATTR,
    E,
    Limits,
    WbxmlError,
    codepages,
    decode,
    encode,
    is_opaque,
    ns,
    opaque,
    set_opaque,
)

HEADER = bytes.fromhex("03016a00")


def spec_contact_sync_response() -> etree._Element:
    """The XML of MS-ASWBXML section 4 (Sync response adding a contact)."""
    A, B, C = ns.AIRSYNC, ns.AIRSYNCBASE, ns.CONTACTS
    return E(
        A,
        "Sync",
        E(
            A,
            "Collections",
            E(
                A,
                "Collection",
                E(A, "Class", text="Contacts"),
                E(A, "SyncKey", text="2"),
                E(A, "CollectionId", text="2"),
                E(A, "Status", text=1),
                E(
                    A,
                    "Commands",
                    E(
                        A,
                        "Add",
                        E(A, "ServerId", text="2:1"),
                        E(
                            A,
                            "ApplicationData",
                            E(
                                B,
                                "Body",
                                E(B, "Type", text="1"),
                                E(B, "EstimatedDataSize", text="0"),
                                E(B, "Truncated", text="1"),
                            ),
                            E(C, "FileAs", text="Funk, Don"),
                            E(C, "FirstName", text="Don"),
                            E(C, "LastName", text="Funk"),
                            E(B, "NativeBodyType", text="1"),
                        ),
                    ),
                ),
            ),
        ),
    )


# MS-ASWBXML section 4 (as stored in our spec corpus) lists the encoding up to "5E 03 46 75 6E 6B"
# (the start of FileAs "Funk, Don"); the rest follows from the XML by the same rules (", Don",
# FirstName, LastName, a switch back to AirSyncBase for NativeBodyType, then the ENDs).
SPEC_PREFIX = bytes.fromhex(
    "03 01 6A 00 45 5C 4F 50 03 43 6F 6E 74 61 63 74 73 00 01 4B 03 32 00 01 52 03 32 00 01"
    " 4E 03 31 00 01 56 47 4D 03 32 3A 31 00 01 5D 00 11 4A 46 03 31 00 01 4C 03 30 00 01 4D"
    " 03 31 00 01 01 00 01 5E 03 46 75 6E 6B"
)
SPEC_REST = bytes.fromhex(
    "2C 20 44 6F 6E 00 01 5F 03 44 6F 6E 00 01 69 03 46 75 6E 6B 00 01 00 11 56 03 31 00 01"
    " 01 01 01 01 01 01"
)


def test_spec_example_encodes_byte_for_byte_and_round_trips() -> None:
    data = encode(spec_contact_sync_response())
    assert data.startswith(SPEC_PREFIX)
    assert data == SPEC_PREFIX + SPEC_REST
    root = decode(data)
    assert encode(root) == data
    assert root.tag == "{AirSync:}Sync"
    assert root.findtext("{AirSync:}Collections/{AirSync:}Collection/{AirSync:}Class") == "Contacts"
    body = root.find(".//{AirSyncBase:}Body")
    assert body is not None and body.findtext("{AirSyncBase:}Type") == "1"
    assert root.findtext(".//{Contacts:}FileAs") == "Funk, Don"


def test_foldersync_request_matches_libwbxml_and_pyactivesync_bytes() -> None:
    # research/harness.md: xml2wbxml -n -a and pyactivesync both give these bytes.
    root = E(ns.FOLDERHIERARCHY, "FolderSync", E(ns.FOLDERHIERARCHY, "SyncKey", text="0"))
    assert encode(root) == bytes.fromhex("03016a00000756520330000101")


def test_empty_elements_bare_tag_and_content_end_both_decode() -> None:
    bare = HEADER + bytes.fromhex("455c1e0101")  # Sync > Collections > bare DeletesAsMoves
    root = decode(bare)
    assert [c.tag for c in root[0]] == ["{AirSync:}DeletesAsMoves"]
    content_end = HEADER + bytes.fromhex("455c5e0101 01")
    root2 = decode(content_end)
    assert root2[0][0].tag == "{AirSync:}DeletesAsMoves"
    assert root2[0][0].text is None and len(root2[0][0]) == 0
    # Canonical re-encoding is the bare tag (what Exchange sends).
    assert encode(root2) == HEADER + bytes.fromhex("455c1e0101")


def test_bare_root_element_is_a_whole_document() -> None:
    root = decode(HEADER + b"\x0d")  # AirSync:ServerId, no content bit
    assert root.tag == "{AirSync:}ServerId" and root.text is None
    assert encode(root) == HEADER + b"\x0d"


def test_code_page_state_persists_across_end() -> None:
    # Switch to Email for Subject, back to AirSync only when needed (the page state is global).
    root = E(
        ns.AIRSYNC,
        "Sync",
        E(ns.EMAIL, "Subject", text="a"),
        E(ns.EMAIL, "Read", text="1"),
        E(ns.AIRSYNC, "Limit", text="3"),
    )
    assert encode(root) == HEADER + bytes.fromhex(
        "45 0002 5403610001 5503310001 0000 6503330001 01".replace(" ", "")
    )


def test_strings_keep_whitespace_crlf_and_utf8_exactly() -> None:
    text = "  Éléments envoyés\r\n\ttabs 漢字 😀 \r\n"
    root = E(ns.AIRSYNCBASE, "Data", text=text)
    data = encode(root)
    assert decode(data).text == text
    assert text.encode() in data


def test_empty_inline_string_round_trips() -> None:
    data = HEADER + bytes.fromhex("4b030001")
    root = decode(data)
    assert root.text == ""
    assert encode(root) == data


def test_mixed_content_tail_text_round_trips() -> None:
    data = HEADER + bytes.fromhex("45 0361 00 0d 0362 00 01".replace(" ", ""))
    root = decode(data)
    assert root.text == "a" and root[0].tail == "b"
    assert encode(root) == data


def test_many_string_chunks_are_joined() -> None:
    data = HEADER + b"\x4b" + b"\x03a\x00" * 5000 + b"\x02\x81\x00\x01"  # + ENTITY U+0080
    root = decode(data)
    assert root.text == "a" * 5000 + "\x80"


def test_header_variants_real_devices_may_send() -> None:
    body = bytes.fromhex("4b033100 01".replace(" ", ""))
    for header in (
        "03016a00",  # canonical
        "02016a00",  # WBXML 1.2
        "01016a00",  # WBXML 1.1
        "03010300",  # US-ASCII
        "03010000",  # charset unknown: taken as UTF-8
        "03016a0400616200",  # non-empty string table
    ):
        assert decode(bytes.fromhex(header) + body).text == "1"
    # Public id given as a string-table reference to the ActiveSync public id.
    public = b"-//MICROSOFT//DTD ActiveSync//EN\x00"
    doc = b"\x03\x00\x00\x6a" + bytes([len(public)]) + public + body
    assert decode(doc).text == "1"


def test_str_t_references_the_string_table() -> None:
    table = b"abc\x00de\x00"
    doc = b"\x03\x01\x6a" + bytes([len(table)]) + table + b"\x4b\x83\x04\x03!\x00\x83\x00\x01"
    assert decode(doc).text == "de!abc"


def test_opaque_round_trips_and_reads_as_bytes() -> None:
    payload = bytes(range(256)) * 3
    root = E(ns.COMPOSEMAIL, "SendMail", E(ns.COMPOSEMAIL, "Mime", text=payload))
    data = encode(root)
    # C3 + mb_u_int32 length (768 = 0x86 0x00) + raw bytes.
    assert b"\xc3\x86\x00" + payload in data
    back = decode(data)
    mime = back[0]
    assert is_opaque(mime) and opaque(mime) == payload
    assert mime.get(OPAQUE_ATTR) == "base64"
    assert encode(back) == data


def test_opaque_helpers_on_plain_text_and_set_opaque() -> None:
    el = E(ns.EMAIL2, "ConversationId", text="abc")
    assert opaque(el) == b"abc" and not is_opaque(el)
    set_opaque(el, b"\x00\xff")
    assert is_opaque(el) and opaque(el) == b"\x00\xff"
    assert encode(el) == HEADER + bytes.fromhex("0016 49 c3 02 00ff 01".replace(" ", ""))


def test_builder_refuses_unknown_tags_and_accepts_ints() -> None:
    with pytest.raises(ValueError, match="Subjct"):
        E(ns.EMAIL, "Subjct")
    assert E(ns.AIRSYNC, "Status", text=7).text == "7"
    assert E(ns.AIRSYNC, "Sync", None, E(ns.AIRSYNC, "Limit")).find("{AirSync:}Limit") is not None


def test_encode_refuses_tags_the_version_lacks() -> None:
    find = E(ns.FIND, "Find", E(ns.FIND, "SearchId", text="1"))
    assert encode(find, version="16.1").startswith(HEADER)
    with pytest.raises(
        WbxmlError, match=r"\{Find:\}Find is not in ActiveSync 14\.1 \(only in 16\.1\)"
    ):
        encode(find, version="14.1")
    sync = E(ns.AIRSYNC, "Sync", E(ns.AIRSYNC, "HeartbeatInterval", text="60"))
    encode(sync, version="14.0")
    with pytest.raises(WbxmlError, match=r"HeartbeatInterval is not in ActiveSync 12\.1"):
        encode(sync, version="12.1")
    with pytest.raises(WbxmlError, match="unknown ActiveSync protocol version"):
        encode(sync, version="13.0")
    # Legacy tokens kept for decoding are refused for every version.
    with pytest.raises(WbxmlError, match="only in no version"):
        encode(E(ns.FOLDERHIERARCHY, "Folders"), version="12.1")


def test_encode_refuses_foreign_elements_and_attributes() -> None:
    with pytest.raises(WbxmlError, match="no WBXML token"):
        encode(etree.Element("{urn:x}y"))
    el = E(ns.AIRSYNC, "Sync")
    el.set("a", "b")
    with pytest.raises(WbxmlError, match="attributes"):
        encode(el)
    bad = E(ns.AIRSYNC, "SyncKey")
    bad.set(OPAQUE_ATTR, "base64")
    bad.text = "not base64!"
    with pytest.raises(WbxmlError, match="not base64"):
        encode(bad)


def test_encode_skips_comments() -> None:
    root = E(ns.AIRSYNC, "Sync")
    root.append(etree.Comment("note"))
    assert encode(root) == HEADER + b"\x45\x01"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty document"),
        (b"\x00\x01\x6a\x00\x45\x01", "version byte"),
        (b"\x03\x04\x6a\x00\x45\x01", "public id 4"),
        (b"\x03\x01\x04\x00\x45\x01", "charset MIBenum 4"),
        (b"\x03\x01\x6a\x7f", "string table of 127 bytes"),
        (b"\x03\x01\xea", "truncated multi-byte integer"),
        (b"\x03\x01\xff\xff\xff\xff\xff\x00", "longer than 5 bytes"),
        (b"\x03\x01\x6a\x00", "no root element"),
        (b"\x03\x01\x6a\x00\x45", "still open"),
        (b"\x03\x01\x6a\x00\x45\x01\x01", "after the root element"),
        (b"\x03\x01\x6a\x00\x05\x05", "after the root element"),
        (b"\x03\x01\x6a\x00\x45\x01\x45\x01", "after the root element"),
        (b"\x03\x01\x6a\x00\x01", "END outside"),
        (b"\x03\x01\x6a\x00\x03a\x00", "string outside"),
        (b"\x03\x01\x6a\x00\x45\x03abc", "not terminated"),
        (b"\x03\x01\x6a\x00\x45\x03\xff\x00\x01", "invalid utf-8"),
        (b"\x03\x01\x6a\x00\x45\x03a\x01b\x00\x01", "character XML cannot represent"),
        (b"\x03\x01\x6a\x00\x3f", "unknown tag token 0x3f on code page 0"),
        (b"\x03\x01\x6a\x00\x00\x1a\x45\x01", "unknown code page 26"),
        (b"\x03\x01\x6a\x00\x00", "truncated SWITCH_PAGE"),
        (b"\x03\x01\x6a\x00\xc5\x01", "attributes"),
        (b"\x03\x01\x6a\x00\x45\x04\x00\x01", "LITERAL"),
        (b"\x03\x01\x6a\x00\x45\x43\x01", "PI"),
        (b"\x03\x01\x6a\x00\x45\xc0\x01", "EXT_0"),
        (b"\x03\x01\x6a\x00\x45\x40a\x00\x01", "EXT_I_0"),
        (b"\x03\x01\x6a\x00\x45\xc3\x05ab\x01", "runs past the end"),
        (b"\x03\x01\x6a\x00\x45\x03a\x00\xc3\x01a\x01", "only content"),
        (b"\x03\x01\x6a\x00\x45\xc3\x01a\x03b\x00\x01", "mixed with OPAQUE"),
        (b"\x03\x01\x6a\x00\x45\xc3\x01a\x0b\x01", "inside an element holding OPAQUE"),
        (b"\x03\x01\x6a\x00\x45\x02\x84\x80\x80\x80\x00\x01", "not a Unicode character"),
        (b"\x03\x01\x6a\x00\x45\x02\x9f\xff\xff\xff\x7f\x01", "larger than 32 bits"),
        (b"\x03\x01\x6a\x00\x45\x83\x05\x01", "beyond the table"),
        (b"\x03\x01\x6a\x02ab\x45\x83\x00\x01", "not terminated"),
        (b"\x03\x00\x00\x6a\x02a\x00\x45\x01", "is not ActiveSync's"),
    ],
)
def test_malformed_input_raises_wbxml_error_with_offset(data: bytes, reason: str) -> None:
    with pytest.raises(WbxmlError, match=reason) as info:
        decode(data)
    assert info.value.offset is not None and 0 <= info.value.offset <= len(data)
    assert info.value.reason in str(info.value)


def test_limits_are_enforced_while_decoding() -> None:
    deep = HEADER + b"\x45" * 100 + b"\x01" * 100
    with pytest.raises(WbxmlError, match="deeper than 64"):
        decode(deep)
    assert decode(deep, Limits(max_depth=100)).tag == "{AirSync:}Sync"
    exact = HEADER + b"\x45" * 9 + b"\x0d" + b"\x01" * 9  # 10 levels, the last a bare tag
    assert decode(exact, Limits(max_depth=10)) is not None
    with pytest.raises(WbxmlError, match="deeper than 9"):
        decode(exact, Limits(max_depth=9))
    many = HEADER + b"\x45" + b"\x0d" * 1000 + b"\x01"
    with pytest.raises(WbxmlError, match="more than 500 elements"):
        decode(many, Limits(max_elements=500))
    big = HEADER + b"\x4b\x03" + b"x" * 2000 + b"\x00\x01"
    with pytest.raises(WbxmlError, match="2000-byte limit"):
        decode(big, Limits(max_size=2000))
    # String-table references count each time they are used (no amplification).
    table = b"y" * 500 + b"\x00"
    amp = b"\x03\x01\x6a" + b"\x83\x75" + table + b"\x4b" + b"\x83\x00" * 100 + b"\x01"
    with pytest.raises(WbxmlError, match="content exceeds"):
        decode(amp, Limits(max_size=10_000))


def test_decode_accepts_bytearray_and_memoryview_but_not_str() -> None:
    data = encode(E(ns.PING, "Ping"))
    assert decode(bytearray(data)).tag == "{Ping:}Ping"
    assert decode(memoryview(data)).tag == "{Ping:}Ping"
    with pytest.raises(TypeError):
        decode("abc")  # type: ignore[arg-type]


def test_every_code_page_tag_round_trips() -> None:
    root = E(ns.AIRSYNC, "Sync")
    for page in codepages.PAGES.values():
        for tag in page.tags.values():
            child = etree.SubElement(root, tag.qname)
            if tag.opaque:
                set_opaque(child, b"\x00" + tag.name.encode())
            else:
                child.text = tag.name
    data = encode(root)
    back = decode(data)
    assert [(c.tag, c.text) for c in back] == [(c.tag, c.text) for c in root]
    assert encode(back) == data


def test_code_page_tables_are_consistent() -> None:
    assert sorted(codepages.PAGES) == list(range(26))
    for number, page in codepages.PAGES.items():
        assert page.namespace == page.name + ":"
        for token, tag in page.tags.items():
            assert 0x05 <= token <= 0x3F and tag.page == number and tag.namespace == page.namespace
            assert tag.versions <= set(codepages.VERSIONS)
    assert codepages.tag(ns.FIND, "Find").versions == {"16.1"}
    assert codepages.tag(ns.AIRSYNC, "Sync").versions == set(codepages.VERSIONS)
    assert codepages.tag(ns.AIRSYNC, "Wait").versions == {"12.1", "14.0", "14.1", "16.0", "16.1"}
    opaque_tags = {t.qname for t in codepages.BY_QNAME.values() if t.opaque}
    assert opaque_tags == {
        "{ComposeMail:}Mime",
        "{Email2:}ConversationId",
        "{Email2:}ConversationIndex",
        "{ItemOperations:}ConversationId",
        "{Search:}ConversationId",
        "{AirSyncBase:}Content",
        "{ResolveRecipients:}Data",
        "{GAL:}Data",
    }
    names = {getattr(ns, n) for n in dir(ns) if n.isupper()}
    assert names == {p.namespace for p in codepages.PAGES.values()}
