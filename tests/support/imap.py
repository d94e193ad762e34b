"""Test helpers for the IMAP backend: a scripted in-memory IMAP server and a pump.

`ScriptedImapServer` plays a conversation: each client command (tag stripped, literals
shown as `{n}` and kept in `.literals`) must match the next script entry's regex; the entry's
lines are sent back with `{tag}` replaced.  Everything is synchronous: `Network.pump()`
moves bytes both ways until nothing is left, so tests need no reactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.testing import StringTransport
from twisted.protocols import portforward
from twisted.python.failure import Failure

from opush.backends.imap.protocol import ImapProtocol

Lines = Sequence[str | bytes]
Responder = Callable[[str, str], Lines]

DOVECOT_CAPS = (
    "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED CONDSTORE QRESYNC ESEARCH LIST-STATUS MOVE SPECIAL-USE NOTIFY"
)
PLAIN_CAPS = "IMAP4rev1 LITERAL+ IDLE"


def login_script(caps: str = DOVECOT_CAPS, enable: bool = True) -> list[tuple[str, Lines]]:
    """LOGIN (+ ENABLE QRESYNC when the caps have it)."""
    script: list[tuple[str, Lines]] = [
        (r'LOGIN "[^"]*" "[^"]*"', [f"{{tag}} OK [CAPABILITY {caps}] Logged in"])
    ]
    if enable and "QRESYNC" in caps:
        script.append(("ENABLE QRESYNC", ["* ENABLED QRESYNC", "{tag} OK Enabled"]))
    return script


class ScriptedImapServer:
    def __init__(
        self,
        script: Sequence[tuple[str, Lines | Responder]] = (),
        greeting: str = "* OK [CAPABILITY IMAP4rev1 LITERAL+ IDLE ENABLE] fake ready",
    ) -> None:
        self.script = list(script)
        self.greeting = greeting
        self.commands: list[str] = []
        self.literals: list[bytes] = []
        self.errors: list[str] = []
        self._buffer = b""
        self._pending: list[bytes] = []  # text parts of a command split by literals
        self._literal_left = 0
        self._literal = b""
        self._idle_tag: str | None = None

    def add(self, pattern: str, lines: Lines | Responder) -> None:
        self.script.append((pattern, lines))

    def feed(self, data: bytes) -> bytes:
        """Client bytes in, server bytes out."""
        self._buffer += data
        out = bytearray()
        while True:
            if self._literal_left:
                take = self._buffer[: self._literal_left]
                self._buffer = self._buffer[len(take) :]
                self._literal += take
                self._literal_left -= len(take)
                if self._literal_left:
                    break
                self.literals.append(self._literal)
                self._literal = b""
                continue
            if b"\r\n" not in self._buffer:
                break
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if m:
                self._pending.append(line)
                self._literal_left = int(m.group(1))
                if not m.group(2):
                    out += b"+ go ahead\r\n"
                continue
            full = b"".join(self._pending) + line
            self._pending = []
            out += self._answer(full.decode("utf-8", "replace"))
        return bytes(out)

    def _answer(self, line: str) -> bytes:
        if self._idle_tag is not None and line == "DONE":
            tag, self._idle_tag = self._idle_tag, None
            self.commands.append("DONE")
            return self._render(self._take("DONE", tag), tag)
        tag, _, command = line.partition(" ")
        self.commands.append(command)
        if command.upper() == "IDLE":
            self._idle_tag = tag
        return self._render(self._take(command, tag), tag)

    def _take(self, command: str, tag: str) -> Lines:
        if not self.script:
            self.errors.append(f"unexpected command {command!r}")
            return ["{tag} BAD unexpected"]
        pattern, lines = self.script[0]
        if not re.fullmatch(pattern, command, re.IGNORECASE | re.DOTALL):
            self.errors.append(f"expected {pattern!r}, got {command!r}")
            return ["{tag} BAD unexpected"]
        self.script.pop(0)
        return lines(command, tag) if callable(lines) else lines

    @staticmethod
    def _render(lines: Lines, tag: str) -> bytes:
        out = bytearray()
        for item in lines:
            if isinstance(item, bytes):
                out += item
            else:
                out += item.replace("{tag}", tag).encode("utf-8") + b"\r\n"
        return bytes(out)

    def push(self, *lines: str) -> bytes:
        """Unsolicited server lines (IDLE notifications)."""
        return self._render(lines, "*")


class Wire:
    """One client protocol connected to one scripted server."""

    def __init__(
        self,
        server: ScriptedImapServer,
        clock: Any,
        timeout: float | None,
        transport: StringTransport | None = None,
    ) -> None:
        self.server = server
        self.transport = transport or StringTransport()
        self.proto = ImapProtocol(clock, timeout)
        self.proto.makeConnection(self.transport)
        if server.greeting:
            self.proto.dataReceived(server.greeting.encode() + b"\r\n")

    def pump(self) -> bool:
        moved = False
        while self.proto.connected_:
            out = self.transport.value()
            if not out:
                break
            self.transport.clear()
            moved = True
            reply = self.server.feed(out)
            if reply:
                self.proto.dataReceived(reply)
        if self.transport.disconnecting and self.proto.connected_:
            self.proto.connectionLost(Failure(ConnectionError("closed by client")))
            moved = True
        return moved

    def push(self, *lines: str) -> None:
        self.proto.dataReceived(self.server.push(*lines))

    def drop(self) -> None:
        self.proto.connectionLost(Failure(ConnectionError("server went away")))


class Network:
    """Makes a `Connector` whose connections talk to scripted servers, in order."""

    def __init__(self, clock: Any, timeout: float | None = 5.0) -> None:
        self.clock = clock
        self.timeout = timeout
        self.servers: list[ScriptedImapServer] = []
        self.wires: list[Wire] = []
        self.refuse = False

    def expect(self, server: ScriptedImapServer) -> ScriptedImapServer:
        """The next connection will talk to `server`."""
        self.servers.append(server)
        return server

    async def connect(self) -> ImapProtocol:
        from opush.backends.interfaces import MailBackendUnavailable

        if self.refuse or not self.servers:
            raise MailBackendUnavailable("connection refused (fake)")
        wire = Wire(self.servers.pop(0), self.clock, self.timeout)
        self.wires.append(wire)
        return wire.proto

    def pump(self) -> None:
        while any([w.pump() for w in self.wires]):
            pass

    @property
    def errors(self) -> list[str]:
        return [e for w in self.wires for e in w.server.errors]


# --------------------------------------------------------------------------- real servers


class _HoldingClient(portforward.ProxyClient):
    """Upstream side of the proxy: can hold the server's bytes back (a stalled server)."""

    def dataReceived(self, data: bytes) -> None:
        factory = self.peer.factory
        if factory.hold or self.peer in factory.stalled:
            factory.held.append(data)
            return
        super().dataReceived(data)


class _HoldingClientFactory(portforward.ProxyClientFactory):
    protocol = _HoldingClient


class _TrackingServer(portforward.ProxyServer):
    clientProtocolFactory = _HoldingClientFactory

    def connectionMade(self) -> None:
        self.factory.live.append(self)
        super().connectionMade()


class CuttableProxy(portforward.ProxyFactory):
    """A TCP proxy to a real IMAP server whose connections a test can stall or cut."""

    protocol = _TrackingServer

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.live: list[Any] = []
        self.hold = False  # every connection, new ones too
        self.stalled: set[Any] = set()  # only these
        self.held: list[bytes] = []

    def stall(self) -> None:
        """The server stops answering on the connections open now (new ones work)."""
        self.stalled.update(self.live)

    def cut(self) -> None:
        """Drop every proxied connection at once (the server 'crashes')."""
        live, self.live = self.live, []
        for proto in live:
            proto.transport.abortConnection()
