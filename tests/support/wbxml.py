"""Helpers for the WBXML tests: the corpus, tree comparison, and libwbxml2 as an independent codec.

libwbxml2 names some tags differently from MS-ASWBXML and writes the GAL page's namespace as
"Gal:"; ``canon(..., libwbxml=True)`` maps its names to ours (``codepages.LIBWBXML_NAMES``), and
``to_libwbxml_xml`` maps ours to its names, so trees from both codecs compare directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from opush.wbxml import codepages
from opush.wbxml.tree import OPAQUE_ATTR

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"

WBXML2XML = shutil.which("wbxml2xml")
XML2WBXML = shutil.which("xml2wbxml")
HAVE_LIBWBXML = WBXML2XML is not None and XML2WBXML is not None
DOCTYPE = (
    '<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">'
)

_LIB_NS_TO_PAGE = {
    codepages.LIBWBXML_NAMESPACES.get(p.number, p.namespace): p.number
    for p in codepages.PAGES.values()
}
_OUR_TO_LIB_NAME = {(page, ours): lib for (page, lib), ours in codepages.LIBWBXML_NAMES.items()}

#: Tags libwbxml2 0.11.8 knows, as (page, token): the pages 0-24 tokens it decodes to a name.
#: Filled lazily by ``libwbxml_tokens``.
_LIB_TOKENS: dict[tuple[int, int], str] | None = None

Canon = tuple[str, str, str | None, tuple["Canon", ...]]


def corpus_files(suffix: str = ".wbxml") -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.rglob(f"*{suffix}"))


def norm_text(text: str | None) -> str | None:
    """Text as libwbxml's ``-m 1`` XML keeps it: CRLF as LF, trimmed, blank dropped."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text or None


def split(tag: str) -> tuple[str, str]:
    uri, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    return uri, local


def canon(el: etree._Element, libwbxml: bool = False) -> Canon:
    """A comparable (namespace, name, text, children) form of a tree.

    With ``libwbxml=True`` the tree is libwbxml2's XML, whose names are mapped to ours.
    """
    uri, local = split(el.tag)
    if libwbxml:
        page = _LIB_NS_TO_PAGE[uri]
        uri = codepages.PAGES[page].namespace
        local = codepages.LIBWBXML_NAMES.get((page, local), local)
    children = tuple(canon(c, libwbxml) for c in el if isinstance(c.tag, str))
    return (uri, local, norm_text(el.text), children)


def parse_xml(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    return etree.fromstring(data, parser)


def libwbxml_decode(data: bytes) -> etree._Element:
    """Decode with libwbxml2's ``wbxml2xml`` and parse its XML."""
    assert WBXML2XML is not None
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.wbxml")
        with open(src, "wb") as f:
            f.write(data)
        out = subprocess.run(
            [WBXML2XML, "-l", "ACTIVESYNC", "-m", "0", "-o", "-", src],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    return parse_xml(out)


def to_libwbxml_xml(root: etree._Element) -> bytes:
    """Our tree as XML libwbxml2's ``xml2wbxml`` reads: its tag names, its namespaces, DOCTYPE."""
    copy = _renamed(root)
    body = etree.tostring(copy, encoding="UTF-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + DOCTYPE.encode() + body


def _renamed(el: etree._Element) -> etree._Element:
    uri, local = split(el.tag)
    page = codepages.BY_NAMESPACE[uri].number
    lib_uri = codepages.LIBWBXML_NAMESPACES.get(page, uri)
    lib_local = _OUR_TO_LIB_NAME.get((page, local), local)
    out = etree.Element(f"{{{lib_uri}}}{lib_local}", nsmap={None: lib_uri})
    out.text = el.text
    for child in el:
        if isinstance(child.tag, str):
            out.append(_renamed(child))
    return out


def libwbxml_encode(root: etree._Element) -> bytes:
    """Encode our tree with libwbxml2's ``xml2wbxml -v 1.3 -n -a`` (Exchange's form)."""
    assert XML2WBXML is not None
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.xml")
        dst = os.path.join(d, "out.wbxml")
        with open(src, "wb") as f:
            f.write(to_libwbxml_xml(root))
        subprocess.run(
            [XML2WBXML, "-v", "1.3", "-n", "-a", "-o", dst, src],
            capture_output=True,
            check=True,
            timeout=30,
        )
        with open(dst, "rb") as f:
            return f.read()


def libwbxml_tokens() -> dict[tuple[int, int], str]:
    """(page, token) -> libwbxml2's tag name, for every token of pages 0 to 25 it knows.

    One document per page (an AirSync:Sync root holding every token 0x05..0x3F of the page as an
    empty element) is decoded once; libwbxml2 writes ``unknown`` for tokens it lacks.
    """
    global _LIB_TOKENS
    if _LIB_TOKENS is None:
        found: dict[tuple[int, int], str] = {}
        for page in range(26):
            body = bytes([0x03, 0x01, 0x6A, 0x00, 0x45, 0x00, page, *range(0x05, 0x40), 0x01])
            root = libwbxml_decode(body)
            children = [c for c in root if isinstance(c.tag, str)]
            assert len(children) == 0x40 - 0x05
            for token, child in zip(range(0x05, 0x40), children, strict=True):
                uri, local = split(child.tag)
                if local != "unknown" and _LIB_NS_TO_PAGE.get(uri) == page:
                    found[(page, token)] = local
        _LIB_TOKENS = found
    return _LIB_TOKENS


def iter_elements(root: etree._Element) -> Iterator[etree._Element]:
    for el in root.iter():
        if isinstance(el.tag, str):
            yield el


def strip_opaque_marker(root: etree._Element) -> None:
    for el in iter_elements(root):
        el.attrib.pop(OPAQUE_ATTR, None)
