"""Element building for email items.

Namespaces are ``opush.wbxml.ns`` (code page X is ``"X:"``); tag names are the MS-ASWBXML ones
the codec uses; OPAQUE values use the codec's carrier (``opush.wbxml.set_opaque``).  Text is
cleaned of characters XML cannot hold, since mail content is arbitrary.
"""

from __future__ import annotations

import re

from lxml import etree

from opush.wbxml import ns, set_opaque
from opush.wbxml import opaque as get_opaque

AIRSYNC = ns.AIRSYNC
AIRSYNCBASE = ns.AIRSYNCBASE
EMAIL = ns.EMAIL
EMAIL2 = ns.EMAIL2
CALENDAR = ns.CALENDAR
COMPOSEMAIL = ns.COMPOSEMAIL

__all__ = ["E", "Element", "clean_text", "get_opaque", "set_opaque", "sub"]

Element = etree._Element


_NSMAPS: dict[str, dict[str | None, str]] = {}


def _nsmap(ns: str) -> dict[str | None, str]:
    """Default-namespace map, so logged XML reads like libwbxml2's (no ns0: prefixes)."""
    found = _NSMAPS.get(ns)
    if found is None:
        found = _NSMAPS[ns] = {None: ns}
    return found


def E(ns: str, tag: str, *children: Element, text: str | int | None = None) -> Element:
    """``<{ns}tag>`` with text or children (same shape as ``opush.wbxml.E``)."""
    el = etree.Element(f"{{{ns}}}{tag}", nsmap=_nsmap(ns))  # type: ignore[arg-type]
    if text is not None:
        el.text = clean_text(str(text))
    for child in children:
        el.append(child)
    return el


def sub(parent: Element, ns: str, tag: str, text: str | int | None = None) -> Element:
    nsmap = None if parent.nsmap.get(None) == ns else _nsmap(ns)
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", nsmap=nsmap)  # type: ignore[arg-type]
    if text is not None:
        el.text = clean_text(str(text))
    return el


def clean_text(text: str) -> str:
    """Drop what XML 1.0 (hence lxml) refuses: C0 controls but TAB/LF/CR, lone surrogates, FFFE/F.

    Mail text carries such characters often enough (broken charsets, NULs in legacy mail); an item
    must never fail to build because of one.
    """
    return _XML_BAD.sub("", text)


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
