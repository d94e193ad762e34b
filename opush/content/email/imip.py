"""iMIP replies (RFC 6047 over RFC 5546 REPLY) to invitations received by mail, for
MeetingResponse (MS-ASCMD 2.2.1.11).

``meeting_reply(invitation_ics, identity, response)`` reads the invitation's VEVENT (the
tolerant reader of ``opush.content.email.ics``) and builds the mail that goes to the organizer:
``multipart/alternative`` with a short text and ``text/calendar; method=REPLY`` whose VEVENT
carries what RFC 5546 3.2.3 requires of a REPLY (ATTENDEE with the new PARTSTAT, DTSTAMP,
ORGANIZER, UID, SEQUENCE, RECURRENCE-ID for one instance).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid

import attrs

from opush.content.email.compose import Identity, _leaf_text, to_bytes
from opush.content.email.ics import Component, Prop, parse_ics, unescape
from opush.content.email.structure import classify, parse_message, walk


class MeetingAnswer(enum.IntEnum):
    """MS-ASCMD 2.2.3.194 UserResponse."""

    ACCEPTED = 1
    TENTATIVE = 2
    DECLINED = 3

    @property
    def partstat(self) -> str:
        return self.name  # RFC 5545 3.2.12: ACCEPTED, TENTATIVE, DECLINED

    @property
    def verb(self) -> str:
        return {1: "Accepted", 2: "Tentative", 3: "Declined"}[self.value]


class NotAnInvitation(ValueError):
    """No VEVENT with METHOD:REQUEST, UID and ORGANIZER: nothing to answer."""


@attrs.frozen
class MeetingReply:
    """The reply mail: whom it goes to and its bytes (for ``prepare_outgoing``)."""

    organizer: str
    uid: str
    mime: bytes
    ics: str


def _mailto(value: str) -> str:
    v = value.strip()
    return v[7:] if v.lower().startswith("mailto:") else v


def _param(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ':;,"') else value


def _line(name: str, value: str, params: dict[str, str] | None = None) -> str:
    head = name + "".join(
        f";{k}={_param(v.replace(chr(34), ''))}" for k, v in (params or {}).items()
    )
    return f"{head}:{value}"


def _fold(line: str) -> str:
    """RFC 5545 3.1: lines of at most 75 octets, continued with CRLF + space."""
    out: list[str] = []
    current = ""
    size = 0
    for ch in line:
        n = len(ch.encode("utf-8"))
        if size + n > 75:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += n
    out.append(current)
    return "\r\n".join(out)


def _prop_line(prop: Prop) -> str:
    return _line(prop.name, prop.value, prop.params)


def _ics_time(eas_instance: str) -> str:
    """MS-ASCMD InstanceId ``2010-03-20T22:40:00.000Z`` -> ``20100320T224000Z``."""
    text = eas_instance.strip().replace("-", "").replace(":", "")
    date, _, rest = text.partition("T")
    return f"{date}T{rest[:6]}Z" if rest else date


def _event(root: Component) -> tuple[str, Component]:
    method = ""
    for cal in root.find("VCALENDAR"):
        method = (cal.value("METHOD") or "").strip().upper()
        break
    for event in root.find("VEVENT"):
        if event.value("UID") and event.get("ORGANIZER") is not None:
            return method, event
    raise NotAnInvitation("no VEVENT with UID and ORGANIZER")


def meeting_reply(
    invitation_ics: str,
    identity: Identity,
    answer: MeetingAnswer,
    *,
    instance_id: str | None = None,
    now: datetime | None = None,
    comment: str | None = None,
    proposed: tuple[datetime, datetime] | None = None,
) -> MeetingReply:
    """The iMIP REPLY mail answering ``invitation_ics`` (METHOD:REQUEST) as ``identity``.

    ``comment``: the user's words (16.x SendResponse Body), in the mail and as the reply's
    COMMENT (RFC 5545 3.8.1.4).  ``proposed``: a new time the user suggests (16.1
    ProposedStartTime/EndTime): the mail is then an iTIP COUNTER (RFC 5546 3.2.7) carrying
    that time and the user's PARTSTAT, which calendar clients show as "new time proposed"."""
    root = parse_ics(invitation_ics)
    method, event = _event(root)
    if method and method != "REQUEST":
        raise NotAnInvitation(f"METHOD:{method} is not an invitation")
    organizer_prop = event.get("ORGANIZER")
    assert organizer_prop is not None
    organizer = _mailto(organizer_prop.value)
    if "@" not in organizer:
        raise NotAnInvitation(f"organizer {organizer_prop.value!r} has no mail address")
    uid = (event.value("UID") or "").strip()
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    me = identity.address.lower()
    attendee_params: dict[str, str] = {}
    for prop in event.all("ATTENDEE"):
        if _mailto(prop.value).lower() == me:
            attendee_params = {
                k: v
                for k, v in prop.params.items()
                if k not in ("PARTSTAT", "RSVP", "X-NUM-GUESTS")
            }
            break
    if identity.display_name and "CN" not in attendee_params:
        attendee_params["CN"] = identity.display_name
    attendee_params["PARTSTAT"] = answer.partstat

    lines: list[str] = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Linagora//opush//EN",
        "VERSION:2.0",
        "METHOD:COUNTER" if proposed else "METHOD:REPLY",
    ]
    # Keep the time zones the copied DTSTART/DTEND/RECURRENCE-ID refer to.
    copied = [event.get(n) for n in ("RECURRENCE-ID", "DTSTART", "DTEND", "DURATION")]
    tzids = {p.params["TZID"] for p in copied if p is not None and "TZID" in p.params}
    for tz in root.find("VTIMEZONE"):
        if (tz.value("TZID") or "") in tzids:
            lines.extend(_component_lines(tz))
    lines.append("BEGIN:VEVENT")
    lines.append(_line("UID", uid))
    lines.append(_line("DTSTAMP", stamp))
    sequence = (event.value("SEQUENCE") or "0").strip()
    lines.append(_line("SEQUENCE", sequence if sequence.isdigit() else "0"))
    if instance_id:
        lines.append(_line("RECURRENCE-ID", _ics_time(instance_id)))
    for kept in copied:
        if kept is None or (instance_id and kept.name == "RECURRENCE-ID"):
            continue
        if proposed and kept.name in ("DTSTART", "DTEND", "DURATION"):
            continue
        lines.append(_prop_line(kept))
    if proposed:
        lines.append(_line("DTSTART", proposed[0].astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")))
        lines.append(_line("DTEND", proposed[1].astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")))
    summary = event.get("SUMMARY")
    if summary is not None:
        lines.append(_prop_line(summary))
    if comment:
        lines.append(_line("COMMENT", _escape_text(comment)))
    lines.append(_prop_line(organizer_prop))
    lines.append(_line("ATTENDEE", f"mailto:{identity.address}", attendee_params))
    lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    ics = "\r\n".join(_fold(line) for line in lines) + "\r\n"

    title = unescape(summary.value) if summary is not None else ""
    verb = "New Time Proposed" if proposed else answer.verb
    subject = f"{verb}: {title}" if title else verb
    who = identity.display_name or identity.address
    done = {1: "accepted", 2: "tentatively accepted", 3: "declined"}[answer.value]
    text = f"{who} has {done} this invitation" + (f": {title}\n" if title else ".\n")
    if proposed:
        when = " - ".join(t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") for t in proposed)
        text += f"Proposed new time: {when}\n"
    if comment:
        text += "\n" + comment.strip() + "\n"

    msg = MIMEMultipart("alternative")
    msg["From"] = formataddr((identity.display_name or "", identity.address))
    organizer_name = organizer_prop.params.get("CN")
    msg["To"] = formataddr((organizer_name or "", organizer))
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=identity.address.rpartition("@")[2] or None)
    msg.attach(MIMEText(text, "plain", "utf-8"))
    cal = MIMEText(ics, "calendar", "utf-8")
    cal.set_param("method", "COUNTER" if proposed else "REPLY")
    msg.attach(cal)
    return MeetingReply(organizer=organizer, uid=uid, mime=to_bytes(msg), ics=ics)


def _escape_text(value: str) -> str:
    """RFC 5545 3.3.11 TEXT."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
    )


def _component_lines(comp: Component) -> Iterable[str]:
    yield f"BEGIN:{comp.name}"
    for prop in comp.props:
        yield _prop_line(prop)
    for child in comp.children:
        yield from _component_lines(child)
    yield f"END:{comp.name}"


def invitation_in(message: bytes) -> str | None:
    """The text of the first text/calendar part of a mail, None if it has none."""
    msg = parse_message(message)
    pairs = walk(msg)
    layout = classify([p for p, _ in pairs])
    leaves = {p.path: m for p, m in pairs}
    if layout.calendar is not None:
        return _leaf_text(leaves[layout.calendar.path], layout.calendar)
    for part in layout.attachments:  # an invitation sent as invite.ics
        if part.content_type == "text/calendar":
            return _leaf_text(leaves[part.path], part)
    return None
