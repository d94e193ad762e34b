"""A small IMAP4rev1 client protocol with literal support, per-command timeouts and IDLE.

Why not `twisted.mail.imap4.IMAP4Client`: it has no IDLE, ENABLE, VANISHED or MODSEQ
handling, routes untagged FETCH responses of other sessions' flag changes into callbacks
that lose MODSEQ, has only a connection-wide timeout, and logs nothing we can mask.  This
client keeps one command in flight (responses are attributed without guessing), hands every
untagged response of that command back to the caller, and fails every pending command with
`MailBackendUnavailable` when the connection drops or a command times out (the connection
is then aborted: its state is unknown and it must not be reused).
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import attrs
from twisted.internet import defer
from twisted.logger import LogLevel
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from opush.backends.imap.parser import ParseError, Response, Token, TooLarge, parse_response
from opush.backends.interfaces import (
    MailBackendUnavailable,
    MailboxAlreadyExists,
    MailboxNotFound,
    MailError,
)
from opush.log import is_enabled, logger

# IMAP.COMMAND is the guide's logger for IMAP conversations (DEBUG shows the wire).
log = logger("IMAP.COMMAND")


class DelayedCall(Protocol):
    def cancel(self) -> None: ...
    def active(self) -> bool: ...
    def reset(self, seconds: float) -> None: ...


class Clock(Protocol):
    """The part of IReactorTime we use (typed for mypy; zope interfaces are not)."""

    def callLater(self, delay: float, f: Callable[..., object], *a: Any) -> DelayedCall: ...
    def seconds(self) -> float: ...


_LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}$")
#: Literals above this are dropped (TooLarge) unless a command asks for more.
DEFAULT_LITERAL_LIMIT = 64 * 1024 * 1024


@attrs.frozen
class Literal:
    """A command argument sent as an IMAP literal ({n} + continuation)."""

    data: bytes


Arg = bytes | Literal


@attrs.frozen
class Result:
    tagged: Response
    untagged: list[Response]

    def of_kind(self, kind: str) -> list[Response]:
        return [r for r in self.untagged if r.kind == kind]

    def codes(self) -> list[list[Token]]:
        """Response codes of untagged status responses and of the tagged one."""
        out = [list(r.code) for r in self.untagged if r.code is not None]
        if self.tagged.code is not None:
            out.append(list(self.tagged.code))
        return out

    def code(self, name: str) -> list[Token] | None:
        for c in self.codes():
            if c and isinstance(c[0], str) and c[0].upper() == name:
                return c
        return None


class _Lazy:
    """Formats a wire line only if a DEBUG observer actually renders the event."""

    def __init__(self, data: bytes, limit: int = 400) -> None:
        self.data = data
        self.limit = limit

    def __format__(self, spec: str) -> str:
        shown = self.data[: self.limit].decode("utf-8", "replace")
        if len(self.data) > self.limit:
            shown += f"... ({len(self.data)} bytes)"
        return shown


@attrs.define(eq=False)
class _Command:
    tag: str
    segments: list[bytes]  # text before each literal, then the rest
    literals: list[bytes]
    log_line: bytes
    deferred: defer.Deferred[Result]
    timeout: float | None
    literal_limit: int
    on_continuation: Callable[[Response], None] | None = None
    #: Sees each untagged response first; returning True keeps it out of Result.untagged
    #: (big FETCH listings are converted as they arrive instead of piling up).
    on_untagged: Callable[[Response], bool] | None = None
    untagged: list[Response] = attrs.field(factory=list)
    sent_literals: int = 0
    timer: DelayedCall | None = None


class ImapProtocol(LineReceiver):
    delimiter = b"\r\n"
    MAX_LENGTH = 16 * 1024 * 1024  # a SEARCH result line for a big folder is long

    def __init__(self, clock: Clock, timeout: float | None) -> None:
        self.clock = clock
        self.timeout = timeout
        self.greeting: defer.Deferred[Response] = defer.Deferred()
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: frozenset[str] = frozenset()
        self.selected: str | None = None  # wire name of the selected mailbox
        self.selected_readonly = False
        self.connected_ = False
        self.literal_plus = False
        #: True when the pool handed out this session a second time (see ImapMailStore._with).
        self.reused = False
        #: Called with every untagged response (IDLE watchers).
        self.listener: Callable[[Response], None] | None = None
        self.lost_callbacks: list[Callable[[ImapProtocol], None]] = []
        self._tags = 0
        self._queue: collections.deque[_Command] = collections.deque()
        self._current: _Command | None = None
        self._lines: list[bytes] = []
        self._literals: list[bytes | TooLarge] = []
        self._literal_left = 0
        self._literal_chunks: list[bytes] | None = None
        self._literal_size = 0
        self._greeted = False
        self._lost_reason: str | None = None
        self._greeting_timer: DelayedCall | None = None

    # ------------------------------------------------------------------ connection

    def connectionMade(self) -> None:
        self.connected_ = True
        if self.timeout:
            self._greeting_timer = self.clock.callLater(self.timeout, self._greeting_timeout)

    def _greeting_timeout(self) -> None:
        self._greeting_timer = None
        self._abort("no IMAP greeting before the timeout")

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.connected_ = False
        detail = reason.getErrorMessage() if reason is not None else "closed"
        why = self._lost_reason or f"IMAP connection lost: {detail}"
        if self._greeting_timer is not None:
            self._greeting_timer.cancel()
            self._greeting_timer = None
        if not self.greeting.called:
            self.greeting.errback(MailBackendUnavailable(why))
        pending = [c for c in [self._current, *self._queue] if c is not None]
        self._current = None
        self._queue.clear()
        for cmd in pending:
            if cmd.timer is not None and cmd.timer.active():
                cmd.timer.cancel()
            if not cmd.deferred.called:
                cmd.deferred.errback(MailBackendUnavailable(why))
        for cb in self.lost_callbacks:
            cb(self)
        self.lost_callbacks = []

    def _abort(self, why: str) -> None:
        self._lost_reason = why
        log.warn("{why}", why=why)
        if self.transport is not None:
            cast(Any, self.transport).abortConnection()

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    # ------------------------------------------------------------------ sending

    def command(
        self,
        *args: Arg,
        timeout: float | None = -1.0,
        literal_limit: int = DEFAULT_LITERAL_LIMIT,
        log_line: bytes | None = None,
        on_continuation: Callable[[Response], None] | None = None,
        on_untagged: Callable[[Response], bool] | None = None,
    ) -> defer.Deferred[Result]:
        """Queue `args` (bytes joined by spaces, Literal as literals); fires with the Result
        whatever the tagged status (see `check`).  `timeout=-1` means the default."""
        d: defer.Deferred[Result] = defer.Deferred()
        if not self.connected_:
            d.errback(MailBackendUnavailable(self._lost_reason or "IMAP connection closed"))
            return d
        self._tags += 1
        tag = f"A{self._tags:04d}"
        segments: list[bytes] = [tag.encode()]
        literals: list[bytes] = []
        for arg in args:
            if isinstance(arg, Literal):
                marker = b"{%d+}" % len(arg.data) if self.literal_plus else b"{%d}" % len(arg.data)
                segments[-1] += b" " + marker
                literals.append(arg.data)
                segments.append(b"")
            else:
                segments[-1] += b" " + arg
        shown = (
            log_line
            if log_line is not None
            else b" ".join(a if isinstance(a, bytes) else b"{%d}" % len(a.data) for a in args)
        )
        cmd = _Command(
            tag=tag,
            segments=segments,
            literals=literals,
            log_line=tag.encode() + b" " + shown,
            deferred=d,
            timeout=self.timeout if timeout == -1.0 else timeout,
            literal_limit=literal_limit,
            on_continuation=on_continuation,
            on_untagged=on_untagged,
        )
        self._queue.append(cmd)
        self._next()
        return d

    def _next(self) -> None:
        if self._current is not None or not self._queue or not self._greeted:
            return
        cmd = self._current = self._queue.popleft()
        log.debug("C: {line}", line=_Lazy(cmd.log_line))
        if cmd.timeout:
            cmd.timer = self.clock.callLater(cmd.timeout, self._timed_out, cmd)
        if self.literal_plus:
            # Non-synchronizing literals (RFC 7888): everything goes out at once.
            out = bytearray()
            for i, seg in enumerate(cmd.segments):
                out += seg
                if i < len(cmd.literals):
                    out += b"\r\n" + cmd.literals[i]
            self._write(bytes(out) + b"\r\n")
            cmd.sent_literals = len(cmd.literals)
        else:
            self._write(cmd.segments[0] + b"\r\n")

    def _write(self, data: bytes) -> None:
        cast(Any, self.transport).write(data)

    def send_raw(self, line: bytes) -> None:
        """Send a line outside the command flow (IDLE's DONE)."""
        log.debug("C: {line}", line=_Lazy(line))
        self._write(line + b"\r\n")

    def arm_timeout(self) -> None:
        """Start the default timeout on the command in flight (IDLE after DONE is sent)."""
        cmd = self._current
        if cmd is not None and cmd.timer is None and self.timeout:
            cmd.timeout = self.timeout
            cmd.timer = self.clock.callLater(self.timeout, self._timed_out, cmd)

    def _timed_out(self, cmd: _Command) -> None:
        cmd.timer = None
        if self._current is cmd and not cmd.deferred.called:
            first = cmd.log_line.split(b" ", 2)[1:2]
            name = first[0].decode("ascii", "replace") if first else "?"
            self._abort(f"IMAP command {name} timed out after {cmd.timeout:g}s")

    # ------------------------------------------------------------------ receiving

    def dataReceived(self, data: bytes) -> None:
        # imap.timeoutInMs bounds silence, not transfer time: a 10 MB body that keeps
        # arriving must not time out, a server that stops answering must.
        cmd = self._current
        if cmd is not None and cmd.timer is not None and cmd.timer.active() and cmd.timeout:
            cmd.timer.reset(cmd.timeout)
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def lineReceived(self, line: bytes) -> None:
        m = _LITERAL_AT_END.search(line)
        self._lines.append(line)
        if m:
            size = int(m.group(1))
            limit = self._current.literal_limit if self._current else DEFAULT_LITERAL_LIMIT
            self._literal_left = size
            self._literal_size = size
            self._literal_chunks = [] if size <= limit else None
            if size == 0:
                self._end_literal(b"")
            else:
                self.setRawMode()  # type: ignore[no-untyped-call]
            return
        lines, literals = self._lines, self._literals
        self._lines, self._literals = [], []
        if is_enabled("IMAP.COMMAND", LogLevel.debug):
            shown = b" ".join(
                lines[i] + (b" <%d bytes>" % _size(literals[i]) if i < len(literals) else b"")
                for i in range(len(lines))
            )
            log.debug("S: {line}", line=_Lazy(shown))
        try:
            response = parse_response(lines, literals)
        except ParseError as exc:
            self._abort(f"unparseable IMAP response: {exc}")
            return
        self._dispatch(response)

    def rawDataReceived(self, data: bytes) -> None:
        take = data[: self._literal_left]
        rest = data[self._literal_left :]
        self._literal_left -= len(take)
        if self._literal_chunks is not None:
            self._literal_chunks.append(take)
        if self._literal_left == 0:
            chunks = self._literal_chunks
            self._end_literal(b"".join(chunks) if chunks is not None else None, rest)

    def _end_literal(self, data: bytes | None, rest: bytes = b"") -> None:
        self._literals.append(data if data is not None else TooLarge(self._literal_size))
        self._literal_chunks = None
        self.setLineMode(rest)  # type: ignore[no-untyped-call]

    def lineLengthExceeded(self, line: bytes) -> None:
        self._abort("IMAP response line too long")

    def _dispatch(self, response: Response) -> None:
        if not self._greeted:
            self._greeted = True
            if self._greeting_timer is not None:
                self._greeting_timer.cancel()
                self._greeting_timer = None
            if response.kind == "BYE" or response.tag != "*":
                self.greeting.errback(
                    MailBackendUnavailable(f"IMAP server refused: {response.text}")
                )
                self._abort("IMAP server greeted with BYE")
                return
            if response.code_name == "CAPABILITY" and response.code:
                self.set_capabilities(response.code[1:])
            self.greeting.callback(response)
            self._next()
            return
        cmd = self._current
        if response.tag == "+":
            if cmd is None:
                self._abort("unexpected IMAP continuation")
            elif cmd.sent_literals < len(cmd.literals):
                i = cmd.sent_literals
                cmd.sent_literals += 1
                self._write(cmd.literals[i] + cmd.segments[i + 1] + b"\r\n")
            elif cmd.on_continuation is not None:
                cmd.on_continuation(response)
            else:
                self._abort("unexpected IMAP continuation")
            return
        if response.tag == "*":
            if response.kind == "BYE":
                self._lost_reason = f"IMAP server closed the session: {response.text}"
            if response.kind == "CAPABILITY":
                self.set_capabilities(response.data)
            elif response.code_name == "CAPABILITY" and response.code:
                self.set_capabilities(response.code[1:])
            if cmd is not None and not (cmd.on_untagged and cmd.on_untagged(response)):
                cmd.untagged.append(response)
            if self.listener is not None:
                self.listener(response)
            return
        if cmd is None or response.tag != cmd.tag:
            self._abort(f"IMAP response for unknown tag {response.tag}")
            return
        if cmd.timer is not None and cmd.timer.active():
            cmd.timer.cancel()
        if response.code_name == "CAPABILITY" and response.code:
            self.set_capabilities(response.code[1:])
        self._current = None
        cmd.deferred.callback(Result(tagged=response, untagged=cmd.untagged))
        self._next()

    def set_capabilities(self, tokens: Sequence[object]) -> None:
        self.capabilities = frozenset(t.upper() for t in tokens if isinstance(t, str))
        self.literal_plus = "LITERAL+" in self.capabilities


def _size(literal: bytes | TooLarge) -> int:
    return literal.size if isinstance(literal, TooLarge) else len(literal)


def check(result: Result, what: str) -> Result:
    """Raise the typed MailError for a tagged NO/BAD; return the result otherwise."""
    tagged = result.tagged
    if tagged.kind == "OK":
        return result
    code = tagged.code_name
    message = f"{what}: {tagged.kind} {tagged.text}".strip()
    if code in ("NONEXISTENT", "TRYCREATE"):
        raise MailboxNotFound(message, response_code=code)
    if code == "ALREADYEXISTS":
        raise MailboxAlreadyExists(message, response_code=code)
    if code in ("UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"):
        raise MailBackendUnavailable(message)
    raise MailError(message, response_code=code)
