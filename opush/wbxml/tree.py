"""Building ActiveSync element trees, and carrying OPAQUE data on lxml elements.

OPAQUE (WBXML ``C3``: MIME, ConversationId, attachment content, contact photos) is raw bytes,
which lxml text cannot hold (it refuses NUL and most control characters). An element that
carries OPAQUE data has its bytes as base64 text (standard alphabet, no line breaks) and the
attribute ``{urn:opush:wbxml}opaque="base64"``:

* ``decode`` sets both for every OPAQUE it reads, so ``encode`` writes the same bytes back;
* ``encode`` writes OPAQUE for every element with the attribute and inline strings otherwise;
* other code reads the bytes with ``opaque(el)`` and writes them with ``set_opaque(el, data)``.

The base64 text is also what libwbxml2's ``wbxml2xml`` shows for OPAQUE, so trees compare
equal to its XML once the marker attribute is ignored. No ActiveSync element has attributes,
so the marker cannot clash with protocol content.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from lxml import etree

from opush.wbxml import codepages

#: Attribute marking an element whose base64 text is OPAQUE data.
OPAQUE_ATTR = "{urn:opush:wbxml}opaque"
OPAQUE_BASE64 = "base64"

_NSMAPS: dict[str, Any] = {  # {None: uri}; lxml-stubs wrongly want str keys
    p.namespace: {None: p.namespace} for p in codepages.PAGES.values()
}


def is_opaque(el: etree._Element) -> bool:
    """True when ``el`` carries OPAQUE data."""
    return el.get(OPAQUE_ATTR) == OPAQUE_BASE64


def opaque(el: etree._Element) -> bytes:
    """The bytes ``el`` carries: its OPAQUE data, or else its text in UTF-8.

    Devices are free to send an inline string where the specification uses OPAQUE, so callers
    get bytes either way.
    """
    text = el.text or ""
    if el.get(OPAQUE_ATTR) == OPAQUE_BASE64:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error as e:
            raise ValueError(f"{el.tag}: opaque marker on text that is not base64: {e}") from e
    return text.encode("utf-8")


def set_opaque(el: etree._Element, data: bytes) -> None:
    """Make ``el`` carry ``data`` as OPAQUE (replacing its text)."""
    el.set(OPAQUE_ATTR, OPAQUE_BASE64)
    el.text = base64.b64encode(data).decode("ascii")


def E(
    ns: str,
    tag: str,
    *children: etree._Element | None,
    text: str | int | bytes | None = None,
) -> etree._Element:
    """Build ``<tag xmlns=ns>`` with ``children`` (``None`` entries are skipped).

    ``text`` may be a string, an int (written in decimal, handy for Status values) or bytes
    (carried as OPAQUE). The tag must exist in the code pages, so a typo fails here rather
    than at encoding time.
    """
    qname = f"{{{ns}}}{tag}"
    if qname not in codepages.BY_QNAME:
        raise ValueError(f"no ActiveSync code page has {ns}{tag}")
    el = etree.Element(qname, nsmap=_NSMAPS[ns])
    if text is not None:
        if isinstance(text, bytes):
            set_opaque(el, text)
        elif isinstance(text, int):
            el.text = str(text)
        else:
            el.text = text
    for child in children:
        if child is not None:
            el.append(child)
    return el
