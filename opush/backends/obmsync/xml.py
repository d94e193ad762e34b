"""obm-sync's XML documents as attrs records: parse what obm-sync answers, write what it reads.

The shapes are OBM's ``CalendarItemsWriter``/``CalendarItemsParser`` and
``BookItemsWriter``/``BookItemsParser`` (research obm-sync.md §1-§3).  Like the Java client we
find elements by local name, so namespaces never matter when reading; when writing we use the
``http://www.obm.org/xsd/sync/<x>.xsd`` default namespaces obm-sync itself uses.

Units are obm-sync's: dates in milliseconds since the epoch (UTC), durations and alerts in
seconds, ``days`` a 7-character Sunday-first string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Final

import attrs
from lxml import etree
from lxml.etree import _Element

NS_BASE: Final = "http://www.obm.org/xsd/sync/"

#: Participation states obm-sync accepts (``changeParticipationState``).
PARTICIPATION_STATES: Final = frozenset(
    {"NEEDS-ACTION", "ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED", "COMPLETED", "IN-PROGRESS"}
)
#: Attendee roles (``required`` attribute).
ROLES: Final = frozenset({"CHAIR", "REQ", "OPT", "NON"})
RECURRENCE_KINDS: Final = frozenset(
    {"none", "daily", "weekly", "monthlybydate", "monthlybyday", "yearly", "yearlybyday"}
)


class ObmXmlError(ValueError):
    """A document does not have the shape obm-sync's parser requires."""


def ns(name: str) -> str:
    return f"{NS_BASE}{name}.xsd"


def local(el: _Element) -> str:
    return etree.QName(el).localname


def children(el: _Element, name: str) -> Iterator[_Element]:
    for child in el:
        if isinstance(child.tag, str) and local(child) == name:
            yield child


def child(el: _Element, name: str) -> _Element | None:
    return next(children(el, name), None)


def descendants(el: _Element, name: str) -> Iterator[_Element]:
    """Elements by tag name anywhere below ``el`` (DOMUtils.getElementsByTagName)."""
    for sub in el.iter():
        if sub is not el and isinstance(sub.tag, str) and local(sub) == name:
            yield sub


def text_of(el: _Element, name: str) -> str | None:
    found = child(el, name)
    if found is None:
        return None
    return found.text or ""


def _opt_int(value: str | None) -> int | None:
    if value is None or value.strip() in ("", "null"):
        return None
    try:
        return int(value.strip())
    except ValueError as e:
        raise ObmXmlError(f"not a number: {value!r}") from e


def _int(value: str | None, default: int = 0) -> int:
    parsed = _opt_int(value)
    return default if parsed is None else parsed


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() == "true"


def _nonempty(value: str | None) -> str | None:
    return value if value else None


def _b(value: bool) -> str:
    return "true" if value else "false"


def parse_document(data: bytes) -> _Element:
    """Parse an obm-sync answer; ObmXmlError if it is not XML."""
    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise ObmXmlError(f"unreadable XML: {e}") from e


def serialize(root: _Element) -> bytes:
    """Compact XML with a declaration, as obm-sync writes it."""
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _root(doc: str, tag: str | None = None) -> _Element:
    nsmap: Any = {None: ns(doc)}
    return etree.Element(f"{{{ns(doc)}}}{tag or doc}", nsmap=nsmap)


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (a device may send them; obm-sync cannot)."""
    return _NOT_XML.sub("", text)


def _set(el: _Element, name: str, value: str) -> None:
    el.set(name, clean(value))


def _sub(parent: _Element, tag: str, text: str | None = None) -> _Element:
    namespace = etree.QName(parent).namespace
    el = etree.SubElement(parent, f"{{{namespace}}}{tag}" if namespace else tag)
    if text is not None:
        el.text = clean(text)
    return el


def _sub_if(parent: _Element, tag: str, value: object) -> None:
    """obm-sync leaves an element out when its value is empty."""
    if value is None or value == "":
        return
    _sub(parent, tag, str(value))


# ------------------------------------------------------------------------------ scalars / errors


def scalar_document(value: str) -> _Element:
    root = _root("string")
    _sub(root, "value", value)
    return root


def error_document(message: str, java_type: str | None = None) -> _Element:
    root = _root("error")
    _sub(root, "message", message)
    if java_type is not None:
        _sub(root, "type", java_type)
    return root


def parse_scalar(root: _Element) -> str:
    """``<string><value>v</value></string>`` (also used for booleans, ints and longs)."""
    found = next(descendants(root, "value"), None)
    if found is None:
        if local(root) == "value":
            return root.text or ""
        raise ObmXmlError(f"no <value> in <{local(root)}>")
    return found.text or ""


def parse_error(root: _Element) -> tuple[str, str | None] | None:
    """(message, type) when ``root`` is an ``<error>`` document, else None."""
    if local(root) != "error":
        return None
    message = text_of(root, "message") or ""
    java_type = _nonempty(text_of(root, "type"))
    return message, java_type


# ---------------------------------------------------------------------------------------- token


@attrs.frozen
class AccessToken:
    """A successful ``login/doLogin`` (``XmlResponder.prepareAccessTokenXML``)."""

    sid: str = attrs.field(repr=False)
    email: str
    domain: str
    domain_uuid: str
    display_name: str | None = None
    version: tuple[int, int, int] | None = None
    settings: tuple[tuple[str, str], ...] = ()
    capabilities: tuple[tuple[str, str], ...] = ()


def parse_token(root: _Element) -> AccessToken:
    if local(root) != "token":
        raise ObmXmlError(f"expected <token>, got <{local(root)}>")
    sid = text_of(root, "sid")
    domain = child(root, "domain")
    if not sid or domain is None or not domain.get("uuid"):
        # The Java client failed without domain@uuid too.
        raise ObmXmlError("token without sid or domain uuid")
    version_el = child(root, "version")
    version = None
    if version_el is not None:
        version = (
            _int(version_el.get("major")),
            _int(version_el.get("minor")),
            _int(version_el.get("release")),
        )
    settings_el = child(root, "settings")
    caps_el = child(root, "server-capabilities")
    return AccessToken(
        sid=sid,
        email=text_of(root, "email") or "",
        domain=(domain.text or "").strip(),
        domain_uuid=domain.get("uuid", ""),
        display_name=_nonempty(text_of(root, "displayname")),
        version=version,
        settings=tuple(
            (s.get("name", ""), s.text or "")
            for s in (children(settings_el, "setting") if settings_el is not None else ())
        ),
        capabilities=tuple(
            (c.get("name", ""), c.text or "")
            for c in (children(caps_el, "server-capability") if caps_el is not None else ())
        ),
    )


def token_document(token: AccessToken) -> _Element:
    root = _root("token")
    _sub(root, "sid", token.sid)
    if token.version is not None:
        v = _sub(root, "version")
        _set(v, "major", str(token.version[0]))
        _set(v, "minor", str(token.version[1]))
        _set(v, "release", str(token.version[2]))
    _sub(root, "email", token.email)
    _sub_if(root, "displayname", token.display_name)
    _sub(root, "domain", token.domain).set("uuid", token.domain_uuid)
    settings = _sub(root, "settings")
    for name, value in token.settings:
        _sub(settings, "setting", value).set("name", name)
    caps = _sub(root, "server-capabilities")
    for name, value in token.capabilities:
        _sub(caps, "server-capability", value).set("name", name)
    return root


# --------------------------------------------------------------------------------------- events


@attrs.frozen
class Attendee:
    email: str
    display_name: str | None = None
    state: str = "NEEDS-ACTION"
    required: str = "REQ"
    percent: int = 0
    is_organizer: bool = False


@attrs.frozen
class Recurrence:
    """``kind="none"`` is a single event; ``days`` is Sunday-first (``0100010`` = Mon, Fri)."""

    kind: str = "none"
    freq: int | None = None
    days: str | None = None
    end: int | None = None
    exceptions: tuple[int, ...] = ()
    event_exceptions: tuple[Event, ...] = ()

    @property
    def recurring(self) -> bool:
        return self.kind != "none"


@attrs.frozen
class Event:
    """One obm-sync event (or, with ``recurrence_id``, one modified occurrence)."""

    type: str = "VEVENT"
    all_day: bool = False
    id: int | None = None
    sequence: int = 0
    is_internal: bool = True
    anonymized: bool = False
    timeupdate: int | None = None
    timecreate: int | None = None
    recurrence_id: int | None = None
    ext_id: str | None = None
    opacity: str = "OPAQUE"
    title: str | None = None
    description: str | None = None
    owner: str | None = None
    owner_email: str | None = None
    tz: str | None = None
    date: int | None = None
    duration: int = 0
    category: str | None = None
    location: str | None = None
    alert: int | None = None
    priority: int = 0
    privacy: int = 0
    attendees: tuple[Attendee, ...] = ()
    recurrence: Recurrence = Recurrence()

    def attendee(self, email: str) -> Attendee | None:
        wanted = email.lower()
        return next((a for a in self.attendees if a.email.lower() == wanted), None)


def parse_event(el: _Element, parent: Event | None = None) -> Event:
    """``CalendarItemsParser.parseEvent``: ``type`` is required; an exception takes its
    parent's extId and sequence."""
    kind = el.get("type")
    if not kind:
        raise ObmXmlError("event without type")
    attendees = []
    attendees_el = child(el, "attendees")
    for a in children(attendees_el, "attendee") if attendees_el is not None else ():
        attendees.append(
            Attendee(
                email=a.get("email", ""),
                display_name=_nonempty(a.get("displayName")),
                state=a.get("state") or "NEEDS-ACTION",
                required=a.get("required") or "REQ",
                percent=_int(a.get("percent")),
                is_organizer=_bool(a.get("isOrganizer")),
            )
        )
    alert = _opt_int(text_of(el, "alert"))
    event = Event(
        type=kind,
        all_day=_bool(el.get("allDay")),
        id=_opt_int(el.get("id")),
        sequence=_int(el.get("sequence")),
        is_internal=_bool(el.get("isInternal"), default=True),
        anonymized=_bool(el.get("anonymized")),
        timeupdate=_opt_int(text_of(el, "timeupdate")),
        timecreate=_opt_int(text_of(el, "timecreate")),
        recurrence_id=_opt_int(text_of(el, "recurrenceId")),
        ext_id=_nonempty(text_of(el, "extId")),
        opacity=text_of(el, "opacity") or "OPAQUE",
        title=_nonempty(text_of(el, "title")),
        description=_nonempty(text_of(el, "description")),
        owner=_nonempty(text_of(el, "owner")),
        owner_email=_nonempty(text_of(el, "ownerEmail")),
        tz=_nonempty(text_of(el, "tz")),
        date=_opt_int(text_of(el, "date")),
        duration=_int(text_of(el, "duration")),
        category=_nonempty(text_of(el, "category")),
        location=_nonempty(text_of(el, "location")),
        alert=alert if alert is not None and alert >= 0 else None,
        priority=_int(text_of(el, "priority")),
        privacy=_int(text_of(el, "privacy")),
        attendees=tuple(attendees),
    )
    if parent is not None:
        event = attrs.evolve(event, ext_id=parent.ext_id, sequence=parent.sequence)
    rec = child(el, "recurrence")
    if rec is not None:
        days = _nonempty(rec.get("days"))
        kind_attr = rec.get("kind") or "none"
        if days:
            kind_attr = "weekly"  # the parser forces weekly for a non-empty days string
        exceptions_el = child(rec, "exceptions")
        ex_dates = tuple(
            _int(x.text)
            for x in (children(exceptions_el, "exception") if exceptions_el is not None else ())
        )
        ee_el = child(rec, "eventExceptions")
        event_exceptions = tuple(
            parse_event(x, parent=event)
            for x in (children(ee_el, "eventException") if ee_el is not None else ())
        )
        event = attrs.evolve(
            event,
            recurrence=Recurrence(
                kind=kind_attr,
                freq=_opt_int(rec.get("freq")),
                days=days,
                end=_opt_int(rec.get("end")),
                exceptions=ex_dates,
                event_exceptions=event_exceptions,
            ),
        )
    return event


def write_event(parent: _Element | None, event: Event, tag: str = "event") -> _Element:
    """``CalendarItemsWriter.appendEvent``: attributes, then children in obm-sync's order."""
    el = _root("event", tag) if parent is None else _sub(parent, tag)
    _set(el, "type", event.type)
    _set(el, "allDay", _b(event.all_day))
    if event.id is not None:
        _set(el, "id", str(event.id))
    _set(el, "sequence", str(event.sequence))
    _set(el, "isInternal", _b(event.is_internal))
    _set(el, "anonymized", _b(event.anonymized))
    _sub_if(el, "timeupdate", event.timeupdate)
    _sub_if(el, "timecreate", event.timecreate)
    _sub_if(el, "recurrenceId", event.recurrence_id)
    _sub_if(el, "extId", event.ext_id)
    _sub_if(el, "opacity", event.opacity)
    _sub_if(el, "title", event.title)
    _sub_if(el, "description", event.description)
    _sub_if(el, "owner", event.owner)
    _sub_if(el, "ownerEmail", event.owner_email)
    _sub_if(el, "tz", event.tz)
    _sub_if(el, "date", event.date)
    _sub(el, "duration", str(event.duration))
    _sub_if(el, "category", event.category)
    _sub_if(el, "location", event.location)
    if event.alert is not None and event.alert >= 0:
        _sub(el, "alert", str(event.alert))
    _sub(el, "priority", str(event.priority))
    _sub(el, "privacy", str(event.privacy))
    attendees = _sub(el, "attendees")  # always present
    for a in event.attendees:
        at = _sub(attendees, "attendee")
        if a.display_name is not None:
            _set(at, "displayName", a.display_name)
        _set(at, "isOrganizer", _b(a.is_organizer))
        _set(at, "email", a.email)
        _set(at, "state", a.state)
        _set(at, "required", a.required)
        _set(at, "percent", str(a.percent))
    rec = _sub(el, "recurrence")
    r = event.recurrence
    _set(rec, "kind", r.kind)
    if r.recurring:
        if r.end is not None:
            _set(rec, "end", str(r.end))
        if r.days:
            _set(rec, "days", r.days)
        if r.freq is not None:
            _set(rec, "freq", str(r.freq))
        if r.exceptions:
            exc = _sub(rec, "exceptions")
            for d in r.exceptions:
                _sub(exc, "exception", str(d))
        if r.event_exceptions:
            ee = _sub(rec, "eventExceptions")
            for x in r.event_exceptions:
                write_event(ee, x, "eventException")
    return el


def parse_single_event(root: _Element) -> Event:
    if local(root) != "event":
        raise ObmXmlError(f"expected <event>, got <{local(root)}>")
    return parse_event(root)


@attrs.frozen
class RemovedEvent:
    id: int
    ext_id: str


@attrs.frozen
class EventChanges:
    """A ``<calendar-changes>`` document (``getSync`` and its variants)."""

    last_sync: int
    updated: tuple[Event, ...] = ()
    removed: tuple[RemovedEvent, ...] = ()


def parse_event_changes(root: _Element) -> EventChanges:
    if local(root) != "calendar-changes":
        raise ObmXmlError(f"expected <calendar-changes>, got <{local(root)}>")
    last_sync = _opt_int(root.get("lastSync"))
    if last_sync is None:
        raise ObmXmlError("calendar-changes without lastSync")
    removed_el = child(root, "removed")
    updated_el = child(root, "updated")
    removed = []
    for r in children(removed_el, "event") if removed_el is not None else ():
        rid, ext = _opt_int(r.get("id")), r.get("extId")
        if rid is None or ext is None:
            raise ObmXmlError("removed event needs id and extId")
        removed.append(RemovedEvent(rid, ext))
    updated = tuple(
        parse_event(e) for e in (children(updated_el, "event") if updated_el is not None else ())
    )
    return EventChanges(last_sync=last_sync, updated=updated, removed=tuple(removed))


def event_changes_document(changes: EventChanges) -> _Element:
    root = _root("calendar-changes")
    _set(root, "lastSync", str(changes.last_sync))
    removed = _sub(root, "removed")
    for r in changes.removed:
        e = _sub(removed, "event")
        _set(e, "id", str(r.id))
        _set(e, "extId", r.ext_id)
    updated = _sub(root, "updated")
    for event in changes.updated:
        write_event(updated, event)
    _sub(root, "participationChanges")
    return root


# -------------------------------------------------------------------------------------- contacts


@attrs.frozen
class Phone:
    label: str
    number: str


@attrs.frozen
class PostalAddress:
    label: str
    street: str | None = None
    zip: str | None = None
    town: str | None = None
    country: str | None = None
    express_postal: str | None = None
    state: str | None = None


@attrs.frozen
class Website:
    label: str
    url: str


@attrs.frozen
class EmailAddress:
    label: str
    value: str


@attrs.frozen
class InstantMessaging:
    label: str
    protocol: str | None
    address: str


#: Scalar children of ``<contact>`` in BookItemsWriter's order (attribute name, element).
CONTACT_SCALARS: Final = (
    ("commonname", "commonname"),
    ("first", "first"),
    ("last", "last"),
    ("service", "service"),
    ("title", "title"),
    ("aka", "aka"),
    ("comment", "comment"),
    ("company", "company"),
    ("middlename", "middlename"),
    ("suffix", "suffix"),
    ("manager", "manager"),
    ("assistant", "assistant"),
    ("spouse", "spouse"),
)


@attrs.frozen
class Contact:
    uid: int | None = None
    collected: bool = False
    commonname: str | None = None
    first: str | None = None
    last: str | None = None
    service: str | None = None
    title: str | None = None
    aka: str | None = None
    comment: str | None = None
    company: str | None = None
    middlename: str | None = None
    suffix: str | None = None
    manager: str | None = None
    assistant: str | None = None
    spouse: str | None = None
    addressbook_id: int | None = None
    birthday: int | None = None
    anniversary: int | None = None
    caluri: str | None = None
    phones: tuple[Phone, ...] = ()
    addresses: tuple[PostalAddress, ...] = ()
    websites: tuple[Website, ...] = ()
    emails: tuple[EmailAddress, ...] = ()
    ims: tuple[InstantMessaging, ...] = ()


def _list(el: _Element, container: str, item: str) -> Iterable[_Element]:
    found = child(el, container)
    return children(found, item) if found is not None else ()


def parse_contact(el: _Element) -> Contact:
    scalars = {attr: _nonempty(text_of(el, tag)) for attr, tag in CONTACT_SCALARS}
    return Contact(
        uid=_opt_int(el.get("uid")),
        collected=_bool(el.get("collected")),
        addressbook_id=_opt_int(text_of(el, "addressbookid")),
        birthday=_opt_int(text_of(el, "birthday")),
        anniversary=_opt_int(text_of(el, "anniversary")),
        caluri=_nonempty(text_of(el, "caluri")),
        phones=tuple(
            Phone(p.get("label", ""), p.get("number", "")) for p in _list(el, "phones", "phone")
        ),
        addresses=tuple(
            PostalAddress(
                label=a.get("label", ""),
                street=_nonempty(a.text),
                zip=_nonempty(a.get("zip")),
                town=_nonempty(a.get("town")),
                country=_nonempty(a.get("country")),
                express_postal=_nonempty(a.get("expressPostal")),
                state=_nonempty(a.get("state")),
            )
            for a in _list(el, "addresses", "address")
        ),
        websites=tuple(
            Website(s.get("label", ""), s.get("url", "")) for s in _list(el, "websites", "site")
        ),
        # BookItemsParser skips mails with an empty label or value.
        emails=tuple(
            EmailAddress(m.get("label", ""), m.get("value", ""))
            for m in _list(el, "emails", "mail")
            if m.get("label") and m.get("value")
        ),
        ims=tuple(
            InstantMessaging(i.get("label", ""), _nonempty(i.get("protocol")), i.get("address", ""))
            for i in _list(el, "instantmessaging", "im")
        ),
        **scalars,
    )


def parse_single_contact(root: _Element) -> Contact:
    if local(root) != "contact":
        raise ObmXmlError(f"expected <contact>, got <{local(root)}>")
    return parse_contact(root)


def write_contact(parent: _Element | None, contact: Contact) -> _Element:
    el = _root("contact") if parent is None else _sub(parent, "contact")
    if contact.uid is not None:
        _set(el, "uid", str(contact.uid))
    _set(el, "collected", _b(contact.collected))
    for attr, tag in CONTACT_SCALARS:
        _sub_if(el, tag, getattr(contact, attr))
    _sub_if(el, "addressbookid", contact.addressbook_id)
    _sub_if(el, "birthday", contact.birthday)
    _sub_if(el, "anniversary", contact.anniversary)
    _sub_if(el, "caluri", contact.caluri)
    # The five list containers are always written.
    phones = _sub(el, "phones")
    for p in contact.phones:
        x = _sub(phones, "phone")
        _set(x, "label", p.label)
        _set(x, "number", p.number)
    addresses = _sub(el, "addresses")
    for a in contact.addresses:
        x = _sub(addresses, "address", a.street or "")
        _set(x, "label", a.label)
        _set(x, "zip", a.zip or "")
        _set(x, "town", a.town or "")
        _set(x, "country", a.country or "")
        _set(x, "expressPostal", a.express_postal or "")
        _set(x, "state", a.state or "")
    websites = _sub(el, "websites")
    for s in contact.websites:
        x = _sub(websites, "site")
        _set(x, "label", s.label)
        _set(x, "url", s.url)
    emails = _sub(el, "emails")
    for m in contact.emails:
        x = _sub(emails, "mail")
        _set(x, "label", m.label)
        _set(x, "value", m.value)
    ims = _sub(el, "instantmessaging")
    for i in contact.ims:
        x = _sub(ims, "im")
        _set(x, "label", i.label)
        _set(x, "protocol", i.protocol or "")
        _set(x, "address", i.address)
    return el


@attrs.frozen
class RemovedContact:
    uid: int
    addressbook_id: int | None = None


@attrs.frozen
class ContactChanges:
    """A ``<contact-changes>`` document (``listAllChanges``, ``firstListAllChanges``)."""

    last_sync: int
    updated: tuple[Contact, ...] = ()
    removed: tuple[RemovedContact, ...] = ()


def parse_contact_changes(root: _Element) -> ContactChanges:
    if local(root) != "contact-changes":
        raise ObmXmlError(f"expected <contact-changes>, got <{local(root)}>")
    last_sync = _opt_int(root.get("lastSync"))
    if last_sync is None:
        raise ObmXmlError("contact-changes without lastSync")
    removed = []
    for r in _list(root, "removed", "contact"):
        uid = _opt_int(r.get("uid"))
        if uid is None:
            raise ObmXmlError("removed contact without uid")
        removed.append(RemovedContact(uid, _opt_int(r.get("addressbookid"))))
    updated = tuple(parse_contact(c) for c in _list(root, "updated", "contact"))
    return ContactChanges(last_sync=last_sync, updated=updated, removed=tuple(removed))


def contact_changes_document(changes: ContactChanges) -> _Element:
    root = _root("contact-changes")
    _set(root, "lastSync", str(changes.last_sync))
    removed = _sub(root, "removed")
    for r in changes.removed:
        x = _sub(removed, "contact")
        _set(x, "uid", str(r.uid))
        if r.addressbook_id is not None:
            _set(x, "addressbookid", str(r.addressbook_id))
    updated = _sub(root, "updated")
    for c in changes.updated:
        write_contact(updated, c)
    return root


def parse_contacts(root: _Element) -> tuple[Contact, ...]:
    """``<contacts><contact>…</contacts>`` (search results)."""
    return tuple(parse_contact(c) for c in children(root, "contact"))


def contacts_document(contacts: Iterable[Contact]) -> _Element:
    root = _root("contacts")
    for c in contacts:
        write_contact(root, c)
    return root


@attrs.frozen
class AddressBookFolder:
    """One ``<folder>`` of ``listAddressBooksChanged``; uid -1 is the domain's users book."""

    uid: int
    name: str
    owner_display_name: str | None = None
    owner_login_at_domain: str | None = None


@attrs.frozen
class AddressBookChanges:
    last_sync: int
    updated: tuple[AddressBookFolder, ...] = ()
    removed: tuple[AddressBookFolder, ...] = ()


def _parse_folder(el: _Element) -> AddressBookFolder:
    uid = _opt_int(el.get("uid"))
    if uid is None:
        raise ObmXmlError("folder without uid")
    return AddressBookFolder(
        uid=uid,
        name=text_of(el, "name") or "",
        owner_display_name=_nonempty(text_of(el, "ownerDisplayName")),
        owner_login_at_domain=_nonempty(text_of(el, "ownerLoginAtDomain")),
    )


def parse_folder_changes(root: _Element) -> AddressBookChanges:
    if local(root) != "folder-changes":
        raise ObmXmlError(f"expected <folder-changes>, got <{local(root)}>")
    last_sync = _opt_int(root.get("lastSync"))
    if last_sync is None:
        raise ObmXmlError("folder-changes without lastSync")
    return AddressBookChanges(
        last_sync=last_sync,
        updated=tuple(_parse_folder(f) for f in _list(root, "updated", "folder")),
        removed=tuple(_parse_folder(f) for f in _list(root, "removed", "folder")),
    )


def folder_changes_document(changes: AddressBookChanges) -> _Element:
    root = _root("folder-changes")
    _set(root, "lastSync", str(changes.last_sync))
    for name, folders in (("removed", changes.removed), ("updated", changes.updated)):
        container = _sub(root, name)
        for f in folders:
            x = _sub(container, "folder")
            _set(x, "uid", str(f.uid))
            _sub(x, "name", f.name)
            _sub_if(x, "ownerDisplayName", f.owner_display_name)
            _sub_if(x, "ownerLoginAtDomain", f.owner_login_at_domain)
    return root


@attrs.frozen
class AddressBook:
    """One ``<book>`` of ``listAllBooks``."""

    uid: int
    name: str
    readonly: bool


def parse_books(root: _Element) -> tuple[AddressBook, ...]:
    out = []
    for b in children(root, "book"):
        uid = _opt_int(b.get("uid"))
        if uid is None:
            raise ObmXmlError("book without uid")
        out.append(AddressBook(uid, b.get("name", ""), _bool(b.get("readonly"))))
    return tuple(out)


def books_document(books: Iterable[AddressBook]) -> _Element:
    root = _root("books")
    for b in books:
        x = _sub(root, "book")
        _set(x, "uid", str(b.uid))
        _set(x, "name", b.name)
        _set(x, "readonly", _b(b.readonly))
    return root
