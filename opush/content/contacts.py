"""Contacts: EAS (MS-ASCNTC, Contacts and Contacts2 pages) <-> OBM contacts (obm-sync XML).

`ContactItem` holds what a device sends or receives; `parse_item` / `render_item` read and
write ``ApplicationData``; `to_contact` / `from_contact` convert to and from
`opush.backends.obmsync.xml.Contact` with the labels the Java Opush used (``ContactLabel``,
research obm-sync.md §3).  The job title is OBM's ``title`` and goes to EAS JobTitle only: EAS
Title is the courtesy title devices put in front of the name (OP-246: the job title is not on
the display name any more).  ``content_hash`` is the OP-139 key that makes a device's
duplicate Adds harmless.

Not carried (OBM has no place for them): Categories, Children, Picture, Yomi names,
OfficeLocation, CustomerId, GovernmentId, AccountName, the courtesy Title.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

import attrs
from lxml.etree import _Element

from opush.backends.obmsync import xml as obm
from opush.content.email.htmltext import html_to_text
from opush.wbxml import E, ns
from opush.wbxml.codepages import PAGES

C1 = ns.CONTACTS
C2 = ns.CONTACTS2
BASE = ns.AIRSYNCBASE


_Labelled = TypeVar("_Labelled", obm.EmailAddress, obm.InstantMessaging)


class ContactItemError(ValueError):
    """The device's contact cannot be understood (Sync Status 6)."""


#: EAS phone elements <-> OBM phone labels, in rendering order.
PHONES: Final = (
    ("AssistantPhoneNumber", C1, "ASSISTANT;VOICE;X-OBM-Ref1"),
    ("BusinessPhoneNumber", C1, "WORK;VOICE;X-OBM-Ref1"),
    ("Business2PhoneNumber", C1, "WORK;VOICE;X-OBM-Ref2"),
    ("BusinessFaxNumber", C1, "WORK;FAX;X-OBM-Ref1"),
    ("CarPhoneNumber", C1, "CAR;VOICE;X-OBM-Ref1"),
    ("HomePhoneNumber", C1, "HOME;VOICE;X-OBM-Ref1"),
    ("Home2PhoneNumber", C1, "HOME;VOICE;X-OBM-Ref2"),
    ("HomeFaxNumber", C1, "HOME;FAX;X-OBM-Ref1"),
    ("MobilePhoneNumber", C1, "CELL;VOICE;X-OBM-Ref1"),
    ("PagerNumber", C1, "PAGER;X-OBM-Ref1"),
    ("RadioPhoneNumber", C1, "OTHER;X-OBM-Ref1"),
    ("CompanyMainPhone", C2, "COMPANY;VOICE;X-OBM-Ref1"),
    ("MMS", C2, "MMS;X-OBM-Ref1"),
)
EMAILS: Final = (
    ("Email1Address", "INTERNET;X-OBM-Ref1"),
    ("Email2Address", "INTERNET;X-OBM-Ref2"),
    ("Email3Address", "INTERNET;X-OBM-Ref3"),
)
IMS: Final = (
    ("IMAddress", "XMPP;X-OBM-Ref1"),
    ("IMAddress2", "XMPP;X-OBM-Ref2"),
    ("IMAddress3", "XMPP;X-OBM-Ref3"),
)
#: EAS address prefix <-> OBM address label.
ADDRESSES: Final = (
    ("Business", "WORK;X-OBM-Ref1"),
    ("Home", "HOME;X-OBM-Ref1"),
    ("Other", "OTHER;X-OBM-Ref1"),
)
WEBSITE_LABEL: Final = "URL;X-OBM-Ref1"
#: EAS scalar (page, element) <-> OBM Contact attribute.
SCALARS: Final = (
    (C1, "FileAs", "commonname"),
    (C1, "FirstName", "first"),
    (C1, "LastName", "last"),
    (C1, "MiddleName", "middlename"),
    (C1, "Suffix", "suffix"),
    (C1, "JobTitle", "title"),
    (C1, "Department", "service"),
    (C1, "CompanyName", "company"),
    (C1, "AssistantName", "assistant"),
    (C1, "Spouse", "spouse"),
    (C2, "NickName", "aka"),
    (C2, "ManagerName", "manager"),
)


@attrs.frozen
class Address:
    street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    state: str | None = None
    country: str | None = None

    @property
    def empty(self) -> bool:
        return not any(attrs.astuple(self))


@attrs.frozen
class ContactItem:
    """A contact as EAS carries it: element name -> value for scalars and numbers."""

    #: Scalar fields by EAS element name (FileAs, FirstName, ..., NickName, ManagerName).
    fields: dict[str, str] = attrs.field(factory=dict)
    #: Phone numbers by EAS element name.
    phones: dict[str, str] = attrs.field(factory=dict)
    emails: tuple[str, ...] = ()
    ims: tuple[str, ...] = ()
    #: "Business" | "Home" | "Other" -> address.
    addresses: dict[str, Address] = attrs.field(factory=dict)
    web_page: str | None = None
    birthday: datetime | None = None
    anniversary: datetime | None = None
    body: str | None = None


# ------------------------------------------------------------------------------ EAS side


def _text(parent: _Element, namespace: str, name: str) -> str | None:
    el = parent.find(f"{{{namespace}}}{name}")
    if el is None or el.text is None:
        return None
    value = el.text.strip()
    return value or None


def parse_date(text: str) -> datetime:
    value = text.strip()
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y%m%dT%H%M%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ContactItemError(f"not an EAS date: {text!r}")


def format_date(when: datetime) -> str:
    """MS-ASDTYPE 2.3 long form: ``1985-04-12T00:00:00.000Z``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


_ADDRESS_IN_BRACKETS = re.compile(r"<([^<>@\s]+@[^<>\s]+)>")


def bare_address(value: str) -> str:
    """Devices send ``"Ann" <ann@example.com>`` in EmailNAddress: keep the address."""
    found = _ADDRESS_IN_BRACKETS.search(value)
    return found.group(1) if found else value.strip().strip('"')


def _body(parent: _Element) -> str | None:
    body = parent.find(f"{{{BASE}}}Body")
    if body is not None:
        data = body.find(f"{{{BASE}}}Data")
        text = data.text if data is not None else None
        if text and (_text(body, BASE, "Type") or "1") == "2":
            text = html_to_text(text)
        return text or None
    legacy = parent.find(f"{{{C1}}}Body")
    return (legacy.text or None) if legacy is not None else None


def parse_item(data: _Element) -> ContactItem:
    """An ``ApplicationData`` of the Contacts class (Contacts and Contacts2 pages)."""
    fields = {
        name: value for page, name, _ in SCALARS if (value := _text(data, page, name)) is not None
    }
    phones = {
        name: value for name, page, _ in PHONES if (value := _text(data, page, name)) is not None
    }
    emails = tuple(
        bare_address(value) for name, _ in EMAILS if (value := _text(data, C1, name)) is not None
    )
    ims = tuple(value for name, _ in IMS if (value := _text(data, C2, name)) is not None)
    addresses: dict[str, Address] = {}
    for prefix, _ in ADDRESSES:
        address = Address(
            street=_text(data, C1, f"{prefix}AddressStreet"),
            city=_text(data, C1, f"{prefix}AddressCity"),
            postal_code=_text(data, C1, f"{prefix}AddressPostalCode"),
            state=_text(data, C1, f"{prefix}AddressState"),
            country=_text(data, C1, f"{prefix}AddressCountry"),
        )
        if not address.empty:
            addresses[prefix] = address
    birthday, anniversary = _text(data, C1, "Birthday"), _text(data, C1, "Anniversary")
    return ContactItem(
        fields=fields,
        phones=phones,
        emails=emails,
        ims=ims,
        addresses=addresses,
        web_page=_text(data, C1, "WebPage"),
        birthday=parse_date(birthday) if birthday else None,
        anniversary=parse_date(anniversary) if anniversary else None,
        body=_body(data),
    )


def _render_body(text: str | None, version: tuple[int, int], truncation: int | None) -> _Element:
    value = text or ""
    if version < (12, 0):
        return E(C1, "Body", text=value)
    raw = value.encode("utf-8")
    truncated = truncation is not None and len(raw) > truncation
    if truncated:
        value = raw[:truncation].decode("utf-8", "ignore")
    return E(
        BASE,
        "Body",
        E(BASE, "Type", text=1),
        E(BASE, "EstimatedDataSize", text=len(raw)),
        E(BASE, "Truncated", text=1) if truncated else None,
        E(BASE, "Data", text=value) if value else None,
    )


def _truncation(options: Iterable[_Element]) -> int | None:
    for option in options:
        for pref in option.iter(f"{{{BASE}}}BodyPreference"):
            size = _text(pref, BASE, "TruncationSize")
            if size and size.isdigit():
                return int(size)
    return None


def render_item(
    item: ContactItem, version: tuple[int, int], options: Iterable[_Element] = ()
) -> list[_Element]:
    """ApplicationData children: Contacts page in token order, then Contacts2."""
    c1: list[tuple[str, str]] = []
    for page, name, _ in SCALARS:
        if page == C1 and name in item.fields:
            c1.append((name, item.fields[name]))
    for name, page, _ in PHONES:
        if page == C1 and name in item.phones:
            c1.append((name, item.phones[name]))
    for (name, _), email in zip(EMAILS, item.emails, strict=False):
        c1.append((name, email))
    for prefix, address in item.addresses.items():
        for suffix, value in (
            ("City", address.city),
            ("Country", address.country),
            ("PostalCode", address.postal_code),
            ("State", address.state),
            ("Street", address.street),
        ):
            if value is not None:
                c1.append((f"{prefix}Address{suffix}", value))
    if item.web_page:
        c1.append(("WebPage", item.web_page))
    if item.birthday is not None:
        c1.append(("Birthday", format_date(item.birthday)))
    if item.anniversary is not None:
        c1.append(("Anniversary", format_date(item.anniversary)))
    order = {t.name: t.token for t in PAGES[1].tags.values()}
    out = [E(C1, name, text=value) for name, value in sorted(c1, key=lambda p: order[p[0]])]
    if item.body is not None or version >= (12, 0):
        out.append(_render_body(item.body, version, _truncation(options)))
    if version >= (12, 0):
        c2: list[tuple[str, str]] = [
            (name, item.fields[name])
            for page, name, _ in SCALARS
            if page == C2 and name in item.fields
        ]
        c2 += [
            (name, item.phones[name])
            for name, page, _ in PHONES
            if page == C2 and name in item.phones
        ]
        c2 += list(zip((n for n, _ in IMS), item.ims, strict=False))
        order2 = {t.name: t.token for t in PAGES[12].tags.values()}
        out += [E(C2, name, text=value) for name, value in sorted(c2, key=lambda p: order2[p[0]])]
    return out


# --------------------------------------------------------------------------- EAS <-> OBM


def _ms(when: datetime | None) -> int | None:
    return None if when is None else round(when.timestamp() * 1000)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def to_contact(
    item: ContactItem, *, uid: int | None = None, book_id: int | None = None
) -> obm.Contact:
    scalars: dict[str, Any] = {attr: item.fields.get(name) for _, name, attr in SCALARS}
    return obm.Contact(
        uid=uid,
        addressbook_id=book_id,
        birthday=_ms(item.birthday),
        anniversary=_ms(item.anniversary),
        comment=item.body,
        phones=tuple(
            obm.Phone(label, item.phones[name]) for name, _, label in PHONES if name in item.phones
        ),
        emails=tuple(
            obm.EmailAddress(label, value)
            for (_, label), value in zip(EMAILS, item.emails, strict=False)
        ),
        ims=tuple(
            obm.InstantMessaging(label, "XMPP", value)
            for (_, label), value in zip(IMS, item.ims, strict=False)
        ),
        addresses=tuple(
            obm.PostalAddress(
                label=label,
                street=a.street,
                zip=a.postal_code,
                town=a.city,
                country=a.country,
                state=a.state,
            )
            for prefix, label in ADDRESSES
            if (a := item.addresses.get(prefix)) is not None
        ),
        websites=(obm.Website(WEBSITE_LABEL, item.web_page),) if item.web_page else (),
        **scalars,
    )


def _label_key(label: str) -> str:
    """``PREF;CELL;VOICE;X-OBM-Ref1`` -> ``CELL;VOICE;X-OBM-Ref1`` (Java also accepts PREF)."""
    parts = [p for p in label.upper().split(";") if p and p != "PREF"]
    return ";".join(p if not p.startswith("X-OBM-REF") else "X-OBM-Ref" + p[9:] for p in parts)


def _kind(label: str) -> str:
    return _label_key(label).split(";X-OBM-Ref")[0]


def from_contact(contact: obm.Contact) -> ContactItem:
    """The EAS contact of an OBM one.  Labels opush does not know go to free slots of the same
    kind (a second mobile becomes the radio phone, say) rather than being lost."""
    fields = {
        name: value for _, name, attr in SCALARS if (value := getattr(contact, attr)) is not None
    }
    phones: dict[str, str] = {}
    by_label = {_label_key(label): name for name, _, label in PHONES}
    leftovers: list[obm.Phone] = []
    for p in contact.phones:
        name = by_label.get(_label_key(p.label))
        if name is not None and name not in phones and p.number:
            phones[name] = p.number
        elif p.number:
            leftovers.append(p)
    for p in leftovers:
        kind = _kind(p.label)
        same_kind = [n for n, _, label in PHONES if _kind(label) == kind and n not in phones]
        free = same_kind or [n for n in ("RadioPhoneNumber", "CarPhoneNumber") if n not in phones]
        if free:
            phones[free[0]] = p.number
    emails = tuple(e.value for e in _ordered(contact.emails, [label for _, label in EMAILS]))[:3]
    ims = tuple(i.address for i in _ordered(contact.ims, [label for _, label in IMS]) if i.address)[
        :3
    ]
    addresses: dict[str, Address] = {}
    for a in contact.addresses:
        kind = _kind(a.label)
        prefix = {"WORK": "Business", "HOME": "Home"}.get(kind, "Other")
        if prefix in addresses:
            prefix = next((p for p, _ in ADDRESSES if p not in addresses), "")
            if not prefix:
                continue
        address = Address(a.street, a.town, a.zip, a.state, a.country)
        if not address.empty:
            addresses[prefix] = address
    site = next((w.url for w in contact.websites if w.url), None)
    return ContactItem(
        fields=fields,
        phones=phones,
        emails=emails,
        ims=ims,
        addresses=addresses,
        web_page=site,
        birthday=_dt(contact.birthday),
        anniversary=_dt(contact.anniversary),
        body=contact.comment,
    )


def _ordered(entries: Iterable[_Labelled], labels: list[str]) -> list[_Labelled]:
    """Known labels in slot order first, then the others as they come."""
    items = list(entries)
    keys = [_label_key(label) for label in labels]
    known = sorted(
        (e for e in items if _label_key(e.label) in keys),
        key=lambda e: keys.index(_label_key(e.label)),
    )
    return known + [e for e in items if _label_key(e.label) not in keys]


def display_name(item: ContactItem) -> str:
    """What a device shows: FileAs, else the names, never the job title (OP-246)."""
    if "FileAs" in item.fields:
        return item.fields["FileAs"]
    names = [item.fields.get(n) for n in ("FirstName", "MiddleName", "LastName", "Suffix")]
    return " ".join(n for n in names if n) or item.fields.get("CompanyName", "")


def content_hash(item: ContactItem) -> str:
    """OP-139: SHA-1 of the contact's content (what the device sent, canonicalised), the key
    under which a device's Add is remembered so an identical Add is not created twice."""
    canonical = {
        "fields": sorted(item.fields.items()),
        "phones": sorted(item.phones.items()),
        "emails": list(item.emails),
        "ims": list(item.ims),
        "addresses": sorted((k, attrs.astuple(v)) for k, v in item.addresses.items()),
        "web": item.web_page,
        "birthday": _ms(item.birthday),
        "anniversary": _ms(item.anniversary),
        "body": item.body,
    }
    return hashlib.sha1(json.dumps(canonical, ensure_ascii=False).encode("utf-8")).hexdigest()
