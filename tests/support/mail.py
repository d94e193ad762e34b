"""Helpers for the email content tests: wrap items in ApplicationData, encode, find values."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from opush.content.email.xml import AIRSYNC, E
from opush.wbxml import decode, encode

NS = {"e": "Email:", "b": "AirSyncBase:", "e2": "Email2:", "c": "Calendar:"}


def app_data(children: Sequence[etree._Element]) -> etree._Element:
    return E(AIRSYNC, "ApplicationData", *children)


def roundtrip(children: Sequence[etree._Element], version: str) -> etree._Element:
    """Encode for ``version`` (refuses tags the version lacks) and decode back."""
    return decode(encode(app_data(children), version=version))


def names(children: Sequence[etree._Element]) -> list[str]:
    return [etree.QName(c).localname for c in children]


def find(children: Sequence[etree._Element], path: str) -> etree._Element | None:
    root = app_data(list(children))
    found = root.xpath(path, namespaces=NS)
    assert isinstance(found, list)
    return found[0] if found else None  # type: ignore[return-value]


def text(children: Sequence[etree._Element], path: str) -> str | None:
    el = find(children, path)
    return None if el is None else (el.text or "")
