"""HTML <-> plain text for devices that ask for the body type the message lacks."""

from __future__ import annotations

import html
import re

from lxml import etree
from lxml import html as lxml_html

_BLOCK = {
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "table", "ul", "ol", "hr", "dd", "dt", "section", "article", "header", "footer", "title",
}  # fmt: skip
_SKIP = {"script", "style", "head", "noscript", "template"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: block elements become line breaks, scripts/styles vanish.

    Never raises: markup lxml cannot parse is stripped of tags by a regular expression.  This is
    also what OP-108 fixed for iOS previews (no HTML tags in the preview).
    """
    if not markup.strip():
        return ""
    try:
        root = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError, TypeError):
        return _regex_strip(markup)
    parts: list[str] = []
    _collect(root, parts)
    text = "".join(parts)
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


def _collect(el: etree._Element, out: list[str]) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    tag = tag.lower()
    if tag in _SKIP or not isinstance(el.tag, str):
        if el.tail:
            out.append(el.tail)
        return
    if tag in _BLOCK:
        out.append("\n")
    if tag == "img":
        alt = el.get("alt")
        if alt:
            out.append(f"[{alt}]")
    if el.text:
        out.append(el.text)
    for child in el:
        _collect(child, out)
    if tag == "a":
        href = el.get("href") or ""
        label = "".join(str(t) for t in el.itertext()).strip()
        if href.startswith(("http:", "https:")) and href != label:
            out.append(f" <{href}>")
    if tag in _BLOCK and tag != "br":
        out.append("\n")
    if el.tail:
        out.append(el.tail)


def _regex_strip(markup: str) -> str:
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
    text = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>", "\n", text)
    text = re.sub(r"<[^>]*>", "", text)
    return html.unescape(text).strip()


def text_to_html(text: str) -> str:
    """Plain text as a minimal HTML document, line breaks and URLs kept."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"(https?://[^\s<>\"']+)", r'<a href="\1">\1</a>', escaped)
    body = escaped.replace("\r\n", "\n").replace("\n", "<br>\n")
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"</head><body>{body}</body></html>"
    )


def preview_text(text: str, length: int) -> str:
    """MS-ASAIRS 2.2.2.35 Preview: the first characters of the plain text, whitespace folded."""
    if length <= 0:
        return ""
    return " ".join(text.split())[:length]
