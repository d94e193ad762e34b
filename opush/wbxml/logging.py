"""Readable XML of decoded requests and responses, for the REQUEST.FULL and REQUEST.TRIMMED logs.

The rendering mirrors libwbxml2's (``wbxml2xml``) so logs read like the references admins know:
``xmlns="Page:"`` only where the code page changes, two-space indentation, OPAQUE as base64.
Passwords (Settings, ItemOperations and Search ``Password``) are always masked: a password never
reaches a log. The trimmed form also replaces the content of every ``AirSync:ApplicationData``
(item contents: mail bodies, contacts, events) and ``ComposeMail:Mime`` with
``[trimmed_output]``, as Java Opush's REQUEST.TRIMMED logger did.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from lxml import etree

from opush.wbxml import ns

TRIMMED = "[trimmed_output]"
MASKED = "******"

_MASKED_TAGS = frozenset(f"{{{n}}}Password" for n in (ns.SETTINGS, ns.ITEMOPERATIONS, ns.SEARCH))
_TRIMMED_TAGS = frozenset({f"{{{ns.AIRSYNC}}}ApplicationData", f"{{{ns.COMPOSEMAIL}}}Mime"})


def full_xml(root: etree._Element) -> str:
    """The whole document as indented XML (passwords masked), for REQUEST.FULL."""
    return _render(root, trimmed=False)


def trimmed_xml(root: etree._Element) -> str:
    """The document without item contents, for REQUEST.TRIMMED."""
    return _render(root, trimmed=True)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def _render(root: etree._Element, trimmed: bool) -> str:
    out: list[str] = []
    _render_element(root, "", None, out, trimmed)
    return "".join(out)


def _render_element(
    el: etree._Element, indent: str, parent_ns: str | None, out: list[str], trimmed: bool
) -> None:
    tag = el.tag
    if not isinstance(tag, str):  # comments, processing instructions
        return
    uri, local = _split(tag)
    start = local if uri == parent_ns else f'{local} xmlns="{escape(uri, {chr(34): "&quot;"})}"'
    children = [c for c in el if isinstance(c.tag, str)]
    if tag in _MASKED_TAGS:
        text: str | None = MASKED if el.text or children else None
        children = []
    elif trimmed and tag in _TRIMMED_TAGS:
        text, children = TRIMMED, []
    else:
        text = el.text
    if not children:
        if text is None:
            out.append(f"{indent}<{start}/>\n")
        else:
            out.append(f"{indent}<{start}>{escape(text)}</{local}>\n")
        return
    out.append(f"{indent}<{start}>")
    if text is not None and text.strip():
        out.append(escape(text))
    out.append("\n")
    inner = indent + "  "
    for child in children:
        _render_element(child, inner, uri, out, trimmed)
    out.append(f"{indent}</{local}>\n")
