"""WBXML 1.3 decoding to lxml trees and encoding back, for ActiveSync (MS-ASWBXML).

Decoding accepts what real devices send (WBXML 1.1 to 1.3, public id 1 or the ActiveSync
public id in the string table, UTF-8/US-ASCII, STR_T references, ENTITY, bare empty tags and
content tag + END) and refuses what ActiveSync never uses (attributes, LITERAL, EXT, PI). Every
failure, whatever the input bytes, is one ``WbxmlError`` with the offset and the reason.

Encoding writes the canonical form Exchange emits (MS-ASWBXML 2.1.2 and its section 4 example):
header ``03 01 6A 00``, inline strings (STR_I), OPAQUE for elements marked opaque (see ``tree``),
a SWITCH_PAGE only when the page changes, and a bare tag for an element with neither text nor
children.
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
from lxml import etree

from opush.wbxml import codepages
from opush.wbxml.tree import OPAQUE_ATTR, OPAQUE_BASE64

# Global tokens (WBXML 1.3 section 7.1).
SWITCH_PAGE = 0x00
END = 0x01
ENTITY = 0x02
STR_I = 0x03
LITERAL = 0x04
STR_T = 0x83
OPAQUE = 0xC3

HEADER = b"\x03\x01\x6a\x00"  # WBXML 1.3, public id 1 (unknown), UTF-8 (MIBenum 106), no strings

_ACTIVESYNC_PUBLIC_ID = b"-//MICROSOFT//DTD ActiveSync//EN"
_CHARSETS = {106: "utf-8", 3: "ascii", 0: "utf-8"}  # MIBenum; 0 = unknown, taken as UTF-8
_GLOBAL_NAMES = {
    0x04: "LITERAL",
    0x40: "EXT_I_0",
    0x41: "EXT_I_1",
    0x42: "EXT_I_2",
    0x43: "PI",
    0x44: "LITERAL_C",
    0x80: "EXT_T_0",
    0x81: "EXT_T_1",
    0x82: "EXT_T_2",
    0x84: "LITERAL_A",
    0xC0: "EXT_0",
    0xC1: "EXT_1",
    0xC2: "EXT_2",
    0xC4: "LITERAL_AC",
}


class WbxmlError(ValueError):
    """Bytes that are not an ActiveSync WBXML document, or a tree that cannot be encoded.

    ``offset`` is the byte offset of the problem in the input (``None`` when encoding);
    ``reason`` says what is wrong.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        super().__init__(reason if offset is None else f"at byte {offset}: {reason}")


@attrs.frozen
class Limits:
    """Bounds enforced while decoding, so that a small hostile body costs little.

    ``max_size`` bounds both the input length and the total length of the strings and opaque
    data the document expands to (string-table references are counted each time they are used).
    """

    max_depth: int = 64
    max_elements: int = 100_000
    max_size: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()

# Per page: 64 entries indexed by token, the lxml tag or None.
_QNAMES: dict[int, list[str | None]] = {}
for _page in codepages.PAGES.values():
    _row: list[str | None] = [None] * 64
    for _tag in _page.tags.values():
        _row[_tag.token] = _tag.qname
    _QNAMES[_page.number] = _row
_NSMAPS: dict[int, Any] = {  # {None: uri}; lxml-stubs wrongly want str keys
    p.number: {None: p.namespace} for p in codepages.PAGES.values()
}
# For encoding: lxml tag -> (page, token, versions).
_ENCODE: dict[str, tuple[int, int, frozenset[str]]] = {
    q: (t.page, t.token, t.versions) for q, t in codepages.BY_QNAME.items()
}


def _mb_u_int32(data: bytes, pos: int, n: int) -> tuple[int, int]:
    """Read a WBXML multi-byte integer at ``pos``; return (value, next position)."""
    value = 0
    for i in range(5):
        if pos >= n:
            raise WbxmlError("truncated multi-byte integer", pos)
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            if value > 0xFFFFFFFF:
                raise WbxmlError("multi-byte integer larger than 32 bits", pos - i - 1)
            return value, pos
    raise WbxmlError("multi-byte integer longer than 5 bytes", pos - 5)


def _table_string(table: bytes, index: int, offset: int) -> bytes:
    if index >= len(table):
        raise WbxmlError(f"string table reference {index} beyond the table", offset)
    end = table.find(b"\x00", index)
    if end < 0:
        raise WbxmlError(f"string table entry {index} is not terminated", offset)
    return table[index:end]


def decode(data: bytes, limits: Limits | None = None) -> etree._Element:
    """Decode an ActiveSync WBXML document to an lxml element tree.

    Elements carry their code page's namespace (``{AirSync:}Sync``); OPAQUE content becomes
    base64 text marked as opaque (read it with ``opaque(el)``). Raises ``WbxmlError`` for any
    input that is not a well-formed ActiveSync WBXML document or exceeds ``limits``.
    """
    if not isinstance(data, bytes):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise TypeError(f"decode() needs bytes, not {type(data).__name__}")
    lim = limits if limits is not None else DEFAULT_LIMITS
    n = len(data)
    if n > lim.max_size:
        raise WbxmlError(f"document of {n} bytes exceeds the {lim.max_size}-byte limit", 0)
    return _decode(data, n, lim)


def _decode(data: bytes, n: int, lim: Limits) -> etree._Element:
    # Header (WBXML 1.3 section 5.3): version, public id, charset, string table.
    if n == 0:
        raise WbxmlError("empty document", 0)
    version = data[0]
    if version not in (0x01, 0x02, 0x03):
        raise WbxmlError(f"WBXML version byte 0x{version:02x} is not 1.1 to 1.3", 0)
    publicid, pos = _mb_u_int32(data, 1, n)
    publicid_index = -1
    if publicid == 0:
        publicid_index, pos = _mb_u_int32(data, pos, n)
    elif publicid != 1:
        raise WbxmlError(f"public id {publicid} is not ActiveSync's (1, unknown)", 1)
    charset_at = pos
    charset, pos = _mb_u_int32(data, pos, n)
    encoding = _CHARSETS.get(charset)
    if encoding is None:
        raise WbxmlError(f"charset MIBenum {charset} is not UTF-8 (106)", charset_at)
    table_at = pos
    table_len, pos = _mb_u_int32(data, pos, n)
    if table_len > n - pos:
        raise WbxmlError(f"string table of {table_len} bytes runs past the end", table_at)
    table = data[pos : pos + table_len]
    pos += table_len
    if publicid_index >= 0:
        public = _table_string(table, publicid_index, 1)
        if public != _ACTIVESYNC_PUBLIC_ID:
            raise WbxmlError(f"public id {public!r} is not ActiveSync's", 1)

    max_depth = lim.max_depth
    max_elements = lim.max_elements
    size_left = lim.max_size
    qnames = _QNAMES[0]
    nsmaps = _NSMAPS
    sub = etree.SubElement
    find = data.find

    page = 0
    root: etree._Element | None = None
    cur: etree._Element | None = None  # element whose content is open
    cur_page = -1
    stack: list[tuple[etree._Element, int]] = []
    last: etree._Element | None = None  # last child of cur; text then goes to its tail
    texts: list[str] = []  # pending strings for cur.text or last.tail
    opaque_el: etree._Element | None = None
    count = 0

    while True:
        if pos >= n:
            if root is None:
                raise WbxmlError("no root element", pos)
            raise WbxmlError(f"document ends with {len(stack) + 1} element(s) still open", pos)
        b = data[pos]
        if b & 0x3F >= 5:
            # A tag: bit 7 = attributes follow, bit 6 = content follows.
            if b & 0x80:
                raise WbxmlError("attributes are not used by ActiveSync", pos)
            qname = qnames[b & 0x3F]
            if qname is None:
                raise WbxmlError(
                    f"unknown tag token 0x{b & 0x3F:02x} on code page {page} "
                    f"({codepages.PAGES[page].name})",
                    pos,
                )
            count += 1
            if count > max_elements:
                raise WbxmlError(f"more than {max_elements} elements", pos)
            if cur is None:
                if root is not None:
                    raise WbxmlError("more than one root element", pos)
                el = root = etree.Element(qname, nsmap=nsmaps[page])
            else:
                if texts:
                    _flush(cur, last, texts, pos)
                    texts = []
                if cur is opaque_el:
                    raise WbxmlError("element inside an element holding OPAQUE data", pos)
                if len(stack) + 2 > max_depth:  # stack holds cur's ancestors: depth of el
                    raise WbxmlError(f"elements nested deeper than {max_depth}", pos)
                if page == cur_page:
                    el = sub(cur, qname)
                else:
                    el = sub(cur, qname, nsmap=nsmaps[page])
            pos += 1
            if b & 0x40:
                if cur is not None:
                    stack.append((cur, cur_page))
                cur = el
                cur_page = page
                last = None
            elif cur is None:  # a bare root element is the whole document
                if pos != n:
                    raise WbxmlError(f"{n - pos} byte(s) after the root element", pos)
                return el
            else:
                last = el
            continue
        if b == STR_I:
            if cur is None:
                raise WbxmlError("string outside any element", pos)
            end = find(b"\x00", pos + 1)
            if end < 0:
                raise WbxmlError("inline string is not terminated", pos)
            size_left -= end - pos
            if size_left < 0:
                raise WbxmlError(f"content exceeds the {lim.max_size}-byte limit", pos)
            if cur is opaque_el and last is None:
                raise WbxmlError("string mixed with OPAQUE data", pos)
            try:
                texts.append(data[pos + 1 : end].decode(encoding))
            except UnicodeDecodeError as e:
                raise WbxmlError(
                    f"invalid {encoding} in string: {e.reason}", pos + 1 + e.start
                ) from None
            pos = end + 1
            continue
        if b == END:
            if cur is None:
                raise WbxmlError("END outside any element", pos)
            if texts:
                if last is None and len(texts) == 1:  # the usual case: one string, no children
                    try:
                        cur.text = texts[0]
                    except ValueError as e:
                        raise WbxmlError(
                            f"string holds a character XML cannot represent: {e}", pos
                        ) from e
                else:
                    _flush(cur, last, texts, pos)
                texts = []
            pos += 1
            last = cur
            if not stack:
                if pos != n:
                    raise WbxmlError(f"{n - pos} byte(s) after the root element", pos)
                assert root is not None
                return root
            cur, cur_page = stack.pop()
            continue
        if b == SWITCH_PAGE:
            if pos + 1 >= n:
                raise WbxmlError("truncated SWITCH_PAGE", pos)
            new_page = data[pos + 1]
            row = _QNAMES.get(new_page)
            if row is None:
                raise WbxmlError(f"unknown code page {new_page}", pos + 1)
            page = new_page
            qnames = row
            pos += 2
            continue
        if b == OPAQUE:
            if cur is None:
                raise WbxmlError("OPAQUE outside any element", pos)
            at = pos
            length, pos = _mb_u_int32(data, pos + 1, n)
            if length > n - pos:
                raise WbxmlError(f"OPAQUE of {length} bytes runs past the end", at)
            size_left -= length
            if size_left < 0:
                raise WbxmlError(f"content exceeds the {lim.max_size}-byte limit", at)
            if texts or last is not None or cur.text is not None:
                raise WbxmlError("OPAQUE must be the only content of its element", at)
            cur.set(OPAQUE_ATTR, OPAQUE_BASE64)
            cur.text = base64.b64encode(data[pos : pos + length]).decode("ascii")
            opaque_el = cur
            pos += length
            continue
        if b == ENTITY:
            if cur is None:
                raise WbxmlError("ENTITY outside any element", pos)
            at = pos
            code, pos = _mb_u_int32(data, pos + 1, n)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise WbxmlError(f"ENTITY {code} is not a Unicode character", at)
            if cur is opaque_el and last is None:
                raise WbxmlError("ENTITY mixed with OPAQUE data", at)
            size_left -= 1
            if size_left < 0:
                raise WbxmlError(f"content exceeds the {lim.max_size}-byte limit", at)
            texts.append(chr(code))
            continue
        if b == STR_T:
            if cur is None:
                raise WbxmlError("string outside any element", pos)
            at = pos
            index, pos = _mb_u_int32(data, pos + 1, n)
            raw = _table_string(table, index, at)
            size_left -= len(raw) + 1
            if size_left < 0:
                raise WbxmlError(f"content exceeds the {lim.max_size}-byte limit", at)
            if cur is opaque_el and last is None:
                raise WbxmlError("string mixed with OPAQUE data", at)
            try:
                texts.append(raw.decode(encoding))
            except UnicodeDecodeError as e:
                raise WbxmlError(f"invalid {encoding} in string table entry {index}", at) from e
            continue
        raise WbxmlError(
            f"{_GLOBAL_NAMES.get(b, f'token 0x{b:02x}')} is not used by ActiveSync", pos
        )


def _flush(cur: etree._Element, last: etree._Element | None, texts: list[str], pos: int) -> None:
    """Store pending strings as ``cur``'s text, or as the tail of its last child."""
    value = texts[0] if len(texts) == 1 else "".join(texts)
    try:
        if last is None:
            cur.text = value if cur.text is None else cur.text + value
        else:
            last.tail = value if last.tail is None else last.tail + value
    except ValueError as e:  # lxml refuses characters XML 1.0 cannot hold (NUL, most C0)
        raise WbxmlError(f"string holds a character XML cannot represent: {e}", pos) from e


def _mb_bytes(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def encode(root: etree._Element, version: str | None = None) -> bytes:
    """Encode an element tree as ActiveSync WBXML, in Exchange's canonical form.

    With ``version`` ("12.1", "14.1", "16.1", ...) a tag that this protocol version lacks is
    refused (``WbxmlError`` naming the tag and the versions that have it).
    """
    if version is not None and version not in codepages.VERSIONS:
        raise WbxmlError(f"unknown ActiveSync protocol version {version!r}")
    out = bytearray(HEADER)
    state = [0]  # current code page; WBXML starts on page 0
    _encode_element(root, out, state, version)
    return bytes(out)


def _encode_element(
    el: etree._Element, out: bytearray, state: list[int], version: str | None
) -> None:
    entry = _ENCODE.get(el.tag)
    if entry is None:
        raise WbxmlError(f"element {el.tag} has no WBXML token in the ActiveSync code pages")
    page, token, versions = entry
    if version is not None and version not in versions:
        have = ", ".join(v for v in codepages.VERSIONS if v in versions) or "no version"
        raise WbxmlError(f"{el.tag} is not in ActiveSync {version} (only in {have})")
    if page != state[0]:
        out += bytes((SWITCH_PAGE, page))
        state[0] = page
    text = el.text
    attrib = el.attrib
    if attrib:
        if attrib.get(OPAQUE_ATTR) != OPAQUE_BASE64 or len(attrib) != 1:
            raise WbxmlError(f"{el.tag} has attributes, which WBXML for ActiveSync cannot carry")
        if len(el):
            raise WbxmlError(f"{el.tag} holds OPAQUE data and child elements")
        try:
            data = base64.b64decode(text or "", validate=True)
        except ValueError as e:
            raise WbxmlError(f"{el.tag} is marked opaque but its text is not base64") from e
        out.append(token | 0x40)
        out.append(OPAQUE)
        out += _mb_bytes(len(data))
        out += data
        out.append(END)
        return
    children = len(el)
    if text is None and not children:
        out.append(token)
        return
    out.append(token | 0x40)
    if text is not None:
        out.append(STR_I)
        out += text.encode("utf-8")
        out.append(0)
    if children:
        for child in el:
            if isinstance(child.tag, str):
                _encode_element(child, out, state, version)
            tail = child.tail
            if tail is not None:
                out.append(STR_I)
                out += tail.encode("utf-8")
                out.append(0)
    out.append(END)
