"""vCard (RFC 2426 3.0 written; 2.1, 3.0 and RFC 6350 4.0 read) <-> ``ContactItem``.

The CardDAV side of the standalone profile.  What a ContactItem carries maps as:
N/FN (FN never holds the job title, OP-246; a FileAs that differs from the names is FN),
ORG (company;department), TITLE, NICKNAME, EMAIL x3 in order, TEL by TYPE (work, home, cell,
fax, pager, car + X- types for the EAS numbers vCard has no type for), ADR work/home/other,
URL, BDAY and ANNIVERSARY (dates), NOTE, IMPP, X-ASSISTANT/X-SPOUSE/X-MANAGER.  A device's
change is merged into the resource it replaces: properties opush does not model (PHOTO,
CATEGORIES, X-*, groups...) are kept.
"""

from __future__ import annotations

import quopri
import re
from datetime import UTC, datetime, timedelta

from opush.content.contacts import Address, ContactItem, display_name
from opush.log import logger

log = logger("opush.content.vcard")

#: EAS phone element -> vCard TYPE values written (read back by the same rule).
PHONE_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("MobilePhoneNumber", ("cell",)),
    ("BusinessFaxNumber", ("work", "fax")),
    ("HomeFaxNumber", ("home", "fax")),
    ("PagerNumber", ("pager",)),
    ("CarPhoneNumber", ("car",)),
    ("BusinessPhoneNumber", ("work", "voice")),
    ("Business2PhoneNumber", ("work", "voice", "x-business2")),
    ("HomePhoneNumber", ("home", "voice")),
    ("Home2PhoneNumber", ("home", "voice", "x-home2")),
    ("AssistantPhoneNumber", ("x-assistant",)),
    ("RadioPhoneNumber", ("x-radio",)),
    ("CompanyMainPhone", ("x-company-main",)),
    ("MMS", ("x-mms",)),
)
_ADDRESS_TYPES = (("Business", "work"), ("Home", "home"), ("Other", "other"))
_RELATED = (("AssistantName", "X-ASSISTANT"), ("Spouse", "X-SPOUSE"), ("ManagerName", "X-MANAGER"))
#: Properties opush writes: everything else of an existing card is kept on a Change.
_MODELLED = {
    "BEGIN", "END", "VERSION", "UID", "N", "FN", "ORG", "TITLE", "NICKNAME", "EMAIL", "TEL",
    "ADR", "URL", "BDAY", "ANNIVERSARY", "X-ANNIVERSARY", "NOTE", "IMPP", "X-ASSISTANT",
    "X-SPOUSE", "X-MANAGER", "PRODID", "REV",
}  # fmt: skip


# ------------------------------------------------------------------------------ reading


class _Prop:
    __slots__ = ("name", "params", "raw", "value")

    def __init__(self, name: str, params: dict[str, list[str]], value: str, raw: str) -> None:
        self.name = name
        self.params = params
        self.value = value
        self.raw = raw

    def types(self) -> set[str]:
        out: set[str] = set()
        for v in self.params.get("TYPE", []):
            out |= {t.strip().lower() for t in v.split(",") if t.strip()}
        out |= {t.lower() for t in self.params.get("", [])}  # 2.1: TEL;WORK;VOICE:
        return out


def _unfold(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += line[1:]
        elif line:
            lines.append(line)
    return lines


def _split_unquoted(text: str, sep: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out


def _props(text: str) -> list[_Prop]:
    out: list[_Prop] = []
    lines = _unfold(text)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        head, sep, value = line.partition(":")
        if not sep:
            continue
        # The colon may sit inside a quoted parameter value.
        while head.count('"') % 2 and sep:
            more, sep, value = value.partition(":")
            head += ":" + more
        parts = _split_unquoted(head, ";")
        name = parts[0].split(".")[-1].strip().upper()  # item1.EMAIL -> EMAIL
        params: dict[str, list[str]] = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            if eq:
                params.setdefault(k.strip().upper(), []).append(v.strip().strip('"'))
            else:
                params.setdefault("", []).append(k.strip())
        encoding = " ".join(params.get("ENCODING", [])).upper()
        if encoding == "QUOTED-PRINTABLE":
            # vCard 2.1: soft line breaks end in "="; the next lines continue the value.
            while value.endswith("=") and i < len(lines):
                value = value[:-1] + lines[i]
                i += 1
            charset = (params.get("CHARSET") or ["utf-8"])[0]
            try:
                value = quopri.decodestring(value.encode("latin-1", "replace")).decode(
                    charset, "replace"
                )
            except LookupError:
                value = quopri.decodestring(value.encode("latin-1", "replace")).decode(
                    "utf-8", "replace"
                )
        out.append(_Prop(name, params, value, line))
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def _components(value: str, sep: str = ";") -> list[str]:
    """Split on unescaped ``sep`` and unescape each part."""
    parts: list[str] = []
    cur: list[str] = []
    escaped = False
    for c in value:
        if escaped:
            cur.append("\\" + c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == sep:
            parts.append(_unescape("".join(cur)))
            cur = []
        else:
            cur.append(c)
    parts.append(_unescape("".join(cur)))
    return parts


def _date(value: str) -> datetime | None:
    v = value.strip()
    m = re.match(r"^(\d{4})-?(\d{2})-?(\d{2})", v)
    if not m:
        return None
    try:
        return datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)), tzinfo=UTC)
    except ValueError:
        return None


def parse_vcard(text: str) -> ContactItem | None:
    """The contact of one vCard; None when it is not a vCard at all (never raises)."""
    try:
        return _parse(text)
    except Exception as e:  # garbage from another client must not break a Sync
        log.warn("unreadable vCard ({error!r})", error=e)
        return None


def _parse(text: str) -> ContactItem | None:
    props = _props(text)
    if not any(p.name == "BEGIN" and p.value.strip().upper() == "VCARD" for p in props):
        return None
    fields: dict[str, str] = {}
    phones: dict[str, str] = {}
    emails: list[str] = []
    ims: list[str] = []
    addresses: dict[str, Address] = {}
    web: str | None = None
    birthday = anniversary = None
    body: str | None = None
    fn: str | None = None
    for p in props:
        value = p.value
        if p.name == "N":
            n = _components(value) + [""] * 5
            for key, v in (
                ("LastName", n[0]),
                ("FirstName", n[1]),
                ("MiddleName", n[2]),
                ("Suffix", n[4]),
            ):
                if v.strip():
                    fields[key] = v.strip()
        elif p.name == "FN":
            fn = _unescape(value).strip() or None
        elif p.name == "ORG":
            org = _components(value)
            if org and org[0].strip():
                fields["CompanyName"] = org[0].strip()
            if len(org) > 1 and org[1].strip():
                fields["Department"] = org[1].strip()
        elif p.name == "TITLE" and value.strip():
            fields["JobTitle"] = _unescape(value).strip()
        elif p.name == "NICKNAME" and value.strip():
            fields["NickName"] = _components(value, ",")[0].strip()
        elif p.name == "EMAIL" and value.strip() and len(emails) < 3:
            emails.append(_unescape(value).strip())
        elif p.name == "TEL" and value.strip():
            _place_phone(phones, p.types(), _unescape(value).strip())
        elif p.name == "ADR":
            a = _components(value) + [""] * 7
            address = Address(
                street="\n".join(x for x in (a[1].strip(), a[2].strip()) if x) or None,
                city=a[3].strip() or None,
                state=a[4].strip() or None,
                postal_code=a[5].strip() or None,
                country=a[6].strip() or None,
            )
            types = p.types()
            key = next((k for k, t in _ADDRESS_TYPES if t in types), "Other")
            if key in addresses:
                key = next((k for k, _ in _ADDRESS_TYPES if k not in addresses), key)
            if not address.empty:
                addresses.setdefault(key, address)
        elif p.name == "URL" and web is None and value.strip():
            web = _unescape(value).strip()
        elif p.name == "BDAY":
            birthday = _date(value)
        elif p.name in ("ANNIVERSARY", "X-ANNIVERSARY"):
            anniversary = _date(value)
        elif p.name == "NOTE" and value.strip():
            body = _unescape(value)
        elif p.name == "IMPP" and value.strip() and len(ims) < 3:
            ims.append(_unescape(value).strip().removeprefix("xmpp:"))
        else:
            for key, prop in _RELATED:
                if p.name == prop and value.strip():
                    fields[key] = _unescape(value).strip()
    item = ContactItem(
        fields=fields,
        phones=phones,
        emails=tuple(emails),
        ims=tuple(ims),
        addresses=addresses,
        web_page=web,
        birthday=birthday,
        anniversary=anniversary,
        body=body,
    )
    if fn and fn != display_name(item):
        item.fields["FileAs"] = fn
    return item


#: Most specific first, so that WORK,VOICE,X-BUSINESS2 is not taken for the first number.
_PHONE_MATCH = sorted(PHONE_TYPES, key=lambda entry: -len(entry[1]))


def _place_phone(phones: dict[str, str], types: set[str], number: str) -> None:
    """The first free EAS phone whose written TYPEs the number has (most specific first),
    else one of its kind (work, home, fax), else any free one."""
    if "mobile" in types or "iphone" in types:
        types = types | {"cell"}
    have = types | {"voice"}
    for name, wanted in _PHONE_MATCH:
        if name not in phones and set(wanted) <= have:
            phones[name] = number
            return
    fallbacks: list[str] = []
    if "fax" in types:
        fallbacks += ["BusinessFaxNumber", "HomeFaxNumber"]
    if "work" in types:
        fallbacks += ["BusinessPhoneNumber", "Business2PhoneNumber"]
    if "home" in types:
        fallbacks += ["HomePhoneNumber", "Home2PhoneNumber"]
    fallbacks += ["HomePhoneNumber", "Home2PhoneNumber", "BusinessPhoneNumber",
                  "Business2PhoneNumber", "RadioPhoneNumber", "CarPhoneNumber"]  # fmt: skip
    for name in fallbacks:
        if name not in phones:
            phones[name] = number
            return


# ------------------------------------------------------------------------------ writing


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\n")
        .replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """RFC 2425 5.8.1: lines of at most 75 octets, continued with a space."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    out: list[str] = []
    current = ""
    size = 0
    limit = 75
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > limit:
            out.append(current)
            current, size, limit = "", 0, 74
        current += ch
        size += n
    out.append(current)
    return "\r\n ".join(out)


def format_vcard(item: ContactItem, *, uid: str, existing: str | None = None) -> str:
    """A vCard 3.0 for ``item``; ``existing`` (the card a device Change replaces) gives the
    properties opush does not model, which are kept."""
    f = item.fields
    lines = ["BEGIN:VCARD", "VERSION:3.0", "PRODID:-//opush//EN", f"UID:{_escape(uid)}"]
    names = [f.get(k, "") for k in ("LastName", "FirstName", "MiddleName")]
    lines.append("N:" + ";".join(_escape(n) for n in [*names, "", f.get("Suffix", "")]))
    lines.append("FN:" + _escape(display_name(item)))
    if "CompanyName" in f or "Department" in f:
        lines.append(
            "ORG:" + _escape(f.get("CompanyName", "")) + ";" + _escape(f.get("Department", ""))
        )
    if "JobTitle" in f:
        lines.append("TITLE:" + _escape(f["JobTitle"]))
    if "NickName" in f:
        lines.append("NICKNAME:" + _escape(f["NickName"]))
    for i, email in enumerate(item.emails[:3]):
        lines.append(f"EMAIL;TYPE=INTERNET{',PREF' if i == 0 else ''}:{_escape(email)}")
    for name, types in PHONE_TYPES:
        if name in item.phones:
            lines.append(
                f"TEL;TYPE={','.join(t.upper() for t in types)}:{_escape(item.phones[name])}"
            )
    for key, t in _ADDRESS_TYPES:
        a = item.addresses.get(key)
        if a is None or a.empty:
            continue
        street = (a.street or "").split("\n", 1)
        parts = [
            "",
            street[0],
            street[1] if len(street) > 1 else "",
            a.city or "",
            a.state or "",
            a.postal_code or "",
            a.country or "",
        ]
        lines.append(f"ADR;TYPE={t.upper()}:" + ";".join(_escape(p) for p in parts))
    if item.web_page:
        lines.append("URL:" + item.web_page)
    if item.birthday is not None:
        lines.append("BDAY:" + _day(item.birthday))
    if item.anniversary is not None:
        lines.append("X-ANNIVERSARY:" + _day(item.anniversary))
    for im in item.ims[:3]:
        lines.append("IMPP:" + (im if ":" in im else "xmpp:" + im))
    for key, prop in _RELATED:
        if key in f:
            lines.append(f"{prop}:{_escape(f[key])}")
    if item.body:
        lines.append("NOTE:" + _escape(item.body))
    if existing:
        for p in _props(existing):
            if p.name not in _MODELLED:
                lines.append(p.raw)
    lines.append("END:VCARD")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def _day(when: datetime) -> str:
    """A birthday is a day: devices send local midnight in UTC (e.g. 22:00Z the day
    before), so the nearest midnight decides."""
    return (when.astimezone(UTC) + timedelta(hours=12)).strftime("%Y-%m-%d")
