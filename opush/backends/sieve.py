"""Out-of-office (EAS Settings Oof, MS-ASCMD 2.2.3.119) as a Sieve vacation script, kept on
the mail server over ManageSieve (RFC 5804): the reply is sent by the server at delivery, so
it works while no device is connected.

opush owns one script, ``opush-oof``.  It carries the device's settings (a comment line with
their JSON, so that Get returns exactly what was Set), the vacation rules (RFC 5230), and,
when the user already had an active script, an ``include`` of it (RFC 6609) so that the
user's own filters keep running.  Turning the out-of-office off re-activates that script (or
none).  The time window of OofState 2 is a ``currentdate`` test (RFC 5260) in UTC.

Internal senders are those of the user's domain.  The device's ExternalUnknown message goes
to every other sender; ExternalKnown alone (known contacts only) cannot be told apart here,
so it is kept and returned but sends nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint

from opush.backends.interfaces import BackendUnavailable
from opush.log import logger

log = logger("opush.backends.sieve")

SCRIPT_NAME = "opush-oof"
_META = "# opush-oof-settings: "


class SieveError(Exception):
    """The ManageSieve server refused a command (NO/BYE) or sent something unreadable."""


# --------------------------------------------------------------------------- settings


@attrs.frozen
class OofMessage:
    """One OofMessage of MS-ASCMD 2.2.3.117: Enabled, ReplyMessage, BodyType (Text/HTML)."""

    enabled: bool = False
    reply: str = ""
    html: bool = False


@attrs.frozen
class OofSettings:
    """MS-ASCMD 2.2.3.118 OofState: 0 disabled, 1 global, 2 time-based (start..end, UTC)."""

    state: int = 0
    start: datetime | None = None
    end: datetime | None = None
    internal: OofMessage = OofMessage()
    external_known: OofMessage = OofMessage()
    external_unknown: OofMessage = OofMessage()


def _message_json(m: OofMessage) -> dict[str, Any]:
    return {"enabled": m.enabled, "reply": m.reply, "html": m.html}


def _message_from(data: Any) -> OofMessage:
    if not isinstance(data, dict):
        return OofMessage()
    return OofMessage(
        bool(data.get("enabled")), str(data.get("reply") or ""), bool(data.get("html"))
    )


def settings_json(s: OofSettings, previous: str | None) -> str:
    return json.dumps(
        {
            "state": s.state,
            "start": s.start.isoformat() if s.start else None,
            "end": s.end.isoformat() if s.end else None,
            "internal": _message_json(s.internal),
            "external_known": _message_json(s.external_known),
            "external_unknown": _message_json(s.external_unknown),
            "previous": previous,
        },
        separators=(",", ":"),
    )


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def parse_script(text: str) -> tuple[OofSettings, str | None] | None:
    """The settings opush stored in its script, and the user's previous active script."""
    for line in text.splitlines():
        if line.startswith(_META):
            try:
                data = json.loads(base64.b64decode(line[len(_META) :].strip()))
            except (binascii.Error, ValueError):
                return None
            if not isinstance(data, dict):
                return None
            state = data.get("state")
            settings = OofSettings(
                state=state if state in (0, 1, 2) else 0,
                start=_date(data.get("start")),
                end=_date(data.get("end")),
                internal=_message_from(data.get("internal")),
                external_known=_message_from(data.get("external_known")),
                external_unknown=_message_from(data.get("external_unknown")),
            )
            previous = data.get("previous")
            return settings, previous if isinstance(previous, str) and previous else None
    return None


def _sieve_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _multiline(text: str) -> str:
    """RFC 5228 2.4.2 multi-line string: ``text:`` ... ``.``, dot-stuffed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    stuffed = ["." + line if line.startswith(".") else line for line in lines]
    return "text:\r\n" + "\r\n".join(stuffed) + "\r\n.\r\n"


def _vacation(m: OofMessage, address: str) -> str:
    body = m.reply
    mime = ""
    if m.html:
        # RFC 5230 4.8 :mime: the reason is a MIME part.
        mime = ":mime "
        body = f"Content-Type: text/html; charset=utf-8\n\n{m.reply}"
    return (
        f"vacation :days 1 {mime}:addresses [{_sieve_string(address)}] "
        f":subject {_sieve_string('Automatic reply')} {_multiline(body)};"
    )


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def render_script(s: OofSettings, *, address: str, domain: str | None, previous: str | None) -> str:
    """The opush-oof script for ``s`` (the user's address and domain; ``previous``: the
    script that was active before, included so that its rules still run)."""
    requires = ["vacation"]
    conditions: list[str] = []
    if s.state == 2 and (s.start or s.end):
        requires += ["date", "relational"]
        # RFC 5260 currentdate in UTC; the bounds carry no zone suffix so that they compare
        # as strings with whatever suffix the server's iso8601 date-part has.
        if s.start:
            conditions.append(
                f'currentdate :zone "+0000" :value "ge" "iso8601" {_sieve_string(_utc(s.start))}'
            )
        if s.end:
            conditions.append(
                f'currentdate :zone "+0000" :value "lt" "iso8601" {_sieve_string(_utc(s.end))}'
            )
    if previous:
        requires.append("include")
    out = [
        "# Out of office, managed by opush (EAS Settings Oof): changes here are replaced.",
        _META + base64.b64encode(settings_json(s, previous).encode()).decode(),
        "require [" + ", ".join(_sieve_string(r) for r in requires) + "];",
    ]
    if s.state in (1, 2):
        internal = _vacation(s.internal, address) if s.internal.enabled else None
        external = _vacation(s.external_unknown, address) if s.external_unknown.enabled else None
        rules: list[str] = []
        if internal and external and domain:
            rules.append(
                f'if address :domain :is "from" {_sieve_string(domain)} '
                f"{{\r\n{internal}\r\n}} else {{\r\n{external}\r\n}}"
            )
        elif internal and domain:
            rules.append(
                f'if address :domain :is "from" {_sieve_string(domain)} {{\r\n{internal}\r\n}}'
            )
        elif external and domain:
            rules.append(
                f'if not address :domain :is "from" {_sieve_string(domain)} {{\r\n{external}\r\n}}'
            )
        elif internal or external:
            rules.append(internal or external or "")
        if rules:
            body = "\r\n".join(rules)
            if conditions:
                test = (
                    conditions[0]
                    if len(conditions) == 1
                    else "allof(" + ", ".join(conditions) + ")"
                )
                body = f"if {test} {{\r\n{body}\r\n}}"
            out.append(body)
    if previous:
        out.append(f"include :personal {_sieve_string(previous)};")
    return "\r\n".join(out) + "\r\n"


# --------------------------------------------------------------------------- ManageSieve


@attrs.frozen
class SieveResponse:
    """One response: the data lines (tokens: str atoms, bytes strings) and the status."""

    lines: tuple[tuple[str | bytes, ...], ...]
    status: str  # OK, NO, BYE
    text: str = ""


_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n")


def parse_response(buf: bytes) -> tuple[SieveResponse, int] | None:
    """One complete response at the start of ``buf`` and its length; None while incomplete."""
    lines: list[tuple[str | bytes, ...]] = []
    line: list[str | bytes] = []
    i, n = 0, len(buf)
    while i < n:
        c = buf[i]
        if c == 0x20:
            i += 1
        elif buf.startswith(b"\r\n", i):
            i += 2
            first = line[0] if line else None
            if isinstance(first, str) and first.upper() in ("OK", "NO", "BYE"):
                text = next((t for t in line[1:] if isinstance(t, bytes)), b"")
                return SieveResponse(
                    tuple(lines), first.upper(), text.decode("utf-8", "replace")
                ), i
            lines.append(tuple(line))
            line = []
        elif c == 0x0D and i + 1 == n:
            return None
        elif c == 0x22:  # quoted string
            j = i + 1
            value = bytearray()
            while j < n and buf[j] != 0x22:
                if buf[j] == 0x5C and j + 1 < n:
                    j += 1
                value.append(buf[j])
                j += 1
            if j >= n:
                return None
            line.append(bytes(value))
            i = j + 1
        elif c == 0x7B:  # literal
            m = _LITERAL.match(buf, i)
            if m is None:
                if b"\r\n" not in buf[i:]:
                    return None
                raise SieveError(f"bad literal in {buf[i : i + 40]!r}")
            size = int(m.group(1))
            start = m.end()
            if start + size > n:
                return None
            line.append(buf[start : start + size])
            i = start + size
        elif c == 0x28:  # response code: kept as one atom
            j = buf.find(b")", i)
            if j < 0:
                return None
            line.append(buf[i : j + 1].decode("utf-8", "replace"))
            i = j + 1
        else:
            j = i
            while j < n and buf[j] not in b" \r":
                j += 1
            if j >= n:
                return None
            line.append(buf[i:j].decode("utf-8", "replace"))
            i = j
    return None


class _SieveProtocol(protocol.Protocol):
    def __init__(self) -> None:
        self.buf = b""
        self.waiting: list[defer.Deferred[SieveResponse]] = []
        self.lost: Exception | None = None

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while self.waiting:
            try:
                parsed = parse_response(self.buf)
            except SieveError as e:
                self.waiting.pop(0).errback(e)
                _transport(self).loseConnection()
                return
            if parsed is None:
                return
            response, used = parsed
            self.buf = self.buf[used:]
            self.waiting.pop(0).callback(response)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = BackendUnavailable("ManageSieve connection lost")
        for d in self.waiting:
            d.errback(self.lost)
        self.waiting = []

    def next_response(self) -> defer.Deferred[SieveResponse]:
        d: defer.Deferred[SieveResponse] = defer.Deferred()
        if self.lost is not None:
            d.errback(self.lost)
            return d
        self.waiting.append(d)
        self.dataReceived(b"")
        return d


def _transport(proto: protocol.Protocol) -> Any:
    return proto.transport


def _quote(value: str) -> bytes:
    return _sieve_string(value).encode("utf-8")


def _literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


class SieveSession:
    """An authenticated ManageSieve session (one per Settings request)."""

    def __init__(self, proto: _SieveProtocol, reactor: Any, timeout: float) -> None:
        self.proto = proto
        self.reactor = reactor
        self.timeout = timeout

    async def command(self, line: bytes) -> SieveResponse:
        d = self.proto.next_response()
        _transport(self.proto).write(line + b"\r\n")
        d.addTimeout(self.timeout, self.reactor)
        try:
            response = await d
        except defer.TimeoutError as e:
            _transport(self.proto).loseConnection()
            raise BackendUnavailable("ManageSieve server timed out") from e
        if response.status == "BYE":
            raise BackendUnavailable(f"ManageSieve server closed: {response.text}")
        return response

    async def _ok(self, line: bytes, what: str) -> SieveResponse:
        response = await self.command(line)
        if response.status != "OK":
            raise SieveError(f"{what} refused: {response.text}")
        return response

    async def list_scripts(self) -> list[tuple[str, bool]]:
        response = await self._ok(b"LISTSCRIPTS", "LISTSCRIPTS")
        out: list[tuple[str, bool]] = []
        for line in response.lines:
            if line and isinstance(line[0], bytes):
                active = any(isinstance(t, str) and t.upper() == "ACTIVE" for t in line[1:])
                out.append((line[0].decode("utf-8", "replace"), active))
        return out

    async def get_script(self, name: str) -> str | None:
        response = await self.command(b"GETSCRIPT " + _quote(name))
        if response.status != "OK":
            return None
        for line in response.lines:
            for token in line:
                if isinstance(token, bytes):
                    return token.decode("utf-8", "replace")
        return ""

    async def put_script(self, name: str, text: str) -> None:
        await self._ok(
            b"PUTSCRIPT " + _quote(name) + b" " + _literal(text.encode("utf-8")), "PUTSCRIPT"
        )

    async def set_active(self, name: str) -> None:
        await self._ok(b"SETACTIVE " + _quote(name), "SETACTIVE")

    async def logout(self) -> None:
        try:
            await self.command(b"LOGOUT")
        except Exception:  # the server may close before answering
            pass
        _transport(self.proto).loseConnection()


class ManageSieve:
    """Connects and authenticates (SASL PLAIN with the user's own login and password)."""

    def __init__(self, reactor: Any, host: str, port: int, timeout: float = 10.0) -> None:
        self.reactor = reactor
        self.host = host
        self.port = port
        self.timeout = timeout

    async def open(self, login: str, password: str) -> SieveSession:
        endpoint = HostnameEndpoint(self.reactor, self.host, self.port, timeout=self.timeout)
        try:
            factory: Any = protocol.Factory.forProtocol(_SieveProtocol)
            proto = await endpoint.connect(factory)
        except Exception as e:
            raise BackendUnavailable(f"ManageSieve {self.host}:{self.port}: {e}") from e
        session = SieveSession(proto, self.reactor, self.timeout)
        greeting = proto.next_response()
        greeting.addTimeout(self.timeout, self.reactor)
        try:
            hello = await greeting
        except defer.TimeoutError as e:
            _transport(proto).loseConnection()
            raise BackendUnavailable("ManageSieve greeting timed out") from e
        if hello.status != "OK":
            raise BackendUnavailable(f"ManageSieve server not ready: {hello.text}")
        token = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
        response = await session.command(b'AUTHENTICATE "PLAIN" ' + _quote(token))
        if response.status != "OK":
            await session.logout()
            raise SieveError(f"ManageSieve login of {login} refused: {response.text}")
        return session


class SieveOof:
    """The Oof backend: get/set the user's out-of-office through ``ManageSieve``."""

    def __init__(self, sieve: ManageSieve) -> None:
        self.sieve = sieve

    async def get(self, login: str, password: str) -> OofSettings:
        session = await self.sieve.open(login, password)
        try:
            scripts = dict(await session.list_scripts())
            if SCRIPT_NAME not in scripts:
                return OofSettings()
            text = await session.get_script(SCRIPT_NAME)
            parsed = parse_script(text or "")
            if parsed is None:
                return OofSettings()
            settings, _ = parsed
            if not scripts[SCRIPT_NAME] and settings.state != 0:
                # Someone activated another script: the out-of-office is not running.
                settings = attrs.evolve(settings, state=0)
            return settings
        finally:
            await session.logout()

    async def set(
        self, login: str, password: str, settings: OofSettings, *, address: str, domain: str | None
    ) -> None:
        session = await self.sieve.open(login, password)
        try:
            scripts = await session.list_scripts()
            active = next((name for name, on in scripts if on), None)
            previous: str | None = None
            if SCRIPT_NAME in dict(scripts):
                parsed = parse_script(await session.get_script(SCRIPT_NAME) or "")
                previous = parsed[1] if parsed else None
            if active and active != SCRIPT_NAME:
                previous = active
            if previous and previous not in dict(scripts):
                previous = None
            text = render_script(settings, address=address, domain=domain, previous=previous)
            await session.put_script(SCRIPT_NAME, text)
            if settings.state in (1, 2):
                await session.set_active(SCRIPT_NAME)
            elif active == SCRIPT_NAME:
                await session.set_active(previous or "")
            log.info(
                "out-of-office of {login} set to state {state}", login=login, state=settings.state
            )
        finally:
            await session.logout()
