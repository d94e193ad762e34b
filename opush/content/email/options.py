"""Body options a device sends in Sync, ItemOperations and Search ``Options``.

MS-ASAIRS 2.2.2.12 (BodyPreference), 2.2.2.11 (BodyPartPreference), MS-ASCMD 2.2.3.100
(MIMESupport), 2.2.3.101 (MIMETruncation) and 2.2.3.178 (Truncation, 2.5 only).  Children are
matched by local name: devices put MIMESupport in AirSync: inside ItemOperations Options, and
some old clients get namespaces wrong; a preference we cannot read is skipped, never an error.
"""

from __future__ import annotations

import enum

import attrs
from lxml import etree

from opush.content.email.xml import Element


class BodyType(enum.IntEnum):
    """MS-ASAIRS 2.2.2.41.1 Type values."""

    PLAIN = 1
    HTML = 2
    RTF = 3
    MIME = 4


class MimeSupport(enum.IntEnum):
    """MS-ASCMD 2.2.3.100.3 MIMESupport: when Type 4 (MIME) may be sent."""

    NEVER = 0
    SMIME_ONLY = 1
    ALWAYS = 2


@attrs.frozen
class BodyPreference:
    """One BodyPreference (or BodyPartPreference) element.

    ``truncation_size`` None means "whole content"; ``all_or_none`` is only meaningful with a
    truncation size (MS-ASAIRS 2.2.2.3.2: "MUST be ignored if the TruncationSize element is not
    included"); ``preview`` is the 14.0+ plain-text preview length in characters (0..255).
    """

    type: int
    truncation_size: int | None = None
    all_or_none: bool = False
    preview: int = 0


# MS-ASCMD 2.2.3.178 Truncation / 2.2.3.101 MIMETruncation codes (protocol 2.5 and Search/Sync
# MIME): code -> characters, None = do not truncate.
TRUNCATION_CODES: dict[int, int | None] = {
    0: 0,
    1: 4096,
    2: 5120,
    3: 7168,
    4: 10240,
    5: 20480,
    6: 51200,
    7: 102400,
    8: None,
}


@attrs.frozen
class EmailOptions:
    """What a device asked for about mail content; defaults = no Options element at all."""

    body_preferences: tuple[BodyPreference, ...] = ()
    body_part_preferences: tuple[BodyPreference, ...] = ()
    mime_support: MimeSupport | None = None
    mime_truncation: int | None = None  # code, see TRUNCATION_CODES
    truncation: int | None = None  # 2.5 body truncation code
    rights_management: bool = False

    def preference(self, body_type: int) -> BodyPreference | None:
        for pref in self.body_preferences:
            if pref.type == body_type:
                return pref
        return None


def _int(el: Element | None, default: int | None = None) -> int | None:
    if el is None or el.text is None:
        return default
    try:
        return int(el.text.strip())
    except ValueError:
        return default


def _local(el: Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    return etree.QName(tag).localname


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c) == name:
            return c
    return None


def parse_preference(el: Element) -> BodyPreference | None:
    """A BodyPreference/BodyPartPreference element, or None when it has no usable Type."""
    body_type = _int(_child(el, "Type"))
    if body_type is None or body_type < 1:
        return None
    size = _int(_child(el, "TruncationSize"))
    if size is not None and size < 0:
        size = None
    aon_el = _child(el, "AllOrNone")
    all_or_none = aon_el is not None and (aon_el.text or "").strip() in ("1", "true")
    preview = _int(_child(el, "Preview"), 0) or 0
    return BodyPreference(
        type=body_type,
        truncation_size=size,
        all_or_none=all_or_none and size is not None,
        preview=max(0, min(preview, 255)),
    )


def parse_options(el: Element | None) -> EmailOptions:
    """Parse a Sync/ItemOperations/Search ``Options`` element (None gives the defaults).

    Several Options elements can be present in one Sync collection (one per class, 14.0+); the
    caller picks the Email one and passes it here.
    """
    if el is None:
        return EmailOptions()
    body_prefs: list[BodyPreference] = []
    part_prefs: list[BodyPreference] = []
    seen_types: set[int] = set()
    mime_support: MimeSupport | None = None
    mime_truncation: int | None = None
    truncation: int | None = None
    rights = False
    for child in el:
        name = _local(child)
        if name == "BodyPreference":
            pref = parse_preference(child)
            # MS-ASAIRS 2.2.2.12: at most one BodyPreference per Type; keep the first.
            if pref is not None and pref.type not in seen_types:
                seen_types.add(pref.type)
                body_prefs.append(pref)
        elif name == "BodyPartPreference":
            pref = parse_preference(child)
            if pref is not None:
                part_prefs.append(pref)
        elif name == "MIMESupport":
            value = _int(child)
            if value in (0, 1, 2):
                mime_support = MimeSupport(value)
        elif name == "MIMETruncation":
            value = _int(child)
            if value in TRUNCATION_CODES:
                mime_truncation = value
        elif name == "Truncation":
            value = _int(child)
            if value in TRUNCATION_CODES:
                truncation = value
        elif name == "RightsManagementSupport":
            rights = (child.text or "").strip() == "1"
    return EmailOptions(
        body_preferences=tuple(body_prefs),
        body_part_preferences=tuple(part_prefs),
        mime_support=mime_support,
        mime_truncation=mime_truncation,
        truncation=truncation,
        rights_management=rights,
    )
