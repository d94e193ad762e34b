# mypy: disallow-untyped-calls=False
"""SSH sessions of the console: an interactive shell with line editing and history on a
terminal (``ssh host``), plain lines without one (``ssh -T host < script``), and one
command per connection (``ssh host schema status``; ``ssh -t host dashboard`` for a live
view).

Each command runs as a coroutine on the reactor; while it runs, keystrokes go to it (the
dashboard's ``q``) instead of the line editor.
"""

from __future__ import annotations

from typing import Any

from twisted.conch.avatar import ConchUser
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser, ISession
from twisted.conch.recvline import HistoricRecvLine
from twisted.conch.ssh.session import SSHSession, SSHSessionProcessProtocol
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Protocol
from twisted.python import components
from twisted.python.failure import Failure
from zope.interface import implementer

from opush.console.commands import ConsoleApp
from opush.log import logger

log = logger("opush.console")

PROMPT = b"% "
EXIT_WORDS = frozenset({"exit", "quit", "bye", "logout"})


def banner(admin: str) -> str:
    import opush

    return (
        f"opush {opush.__version__} administration console\n"
        f"Logged in as {admin}. Type help for the commands, exit to leave.\n"
    )


class _Keys:
    """Keys typed while a command runs, for the command (the dashboard's q)."""

    def __init__(self) -> None:
        self.waiters: list[Deferred[str]] = []

    def wait(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.waiters.append(d)
        return d

    def deliver(self, key: str) -> None:
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(key)

    def release(self) -> None:
        """The command ended or the session closed: nobody waits any more."""
        self.deliver("")


class _Transport:
    """The small transport insults and our protocols need, over a callable."""

    def __init__(self, write: Any, lose: Any) -> None:
        self._write = write
        self._lose = lose
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if not self.disconnecting:
            self._write(data)

    def writeSequence(self, seq: list[bytes]) -> None:
        self.write(b"".join(seq))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self._lose()

    def getHost(self) -> Any:
        return None

    def getPeer(self) -> Any:
        return None


def _end(pp: SSHSessionProcessProtocol, status: int) -> None:
    """Send exit-status and close the channel, as a finished process would."""
    reason = ProcessDone(0) if status == 0 else ProcessTerminated(exitCode=status)
    try:
        pp.processEnded(Failure(reason))
    except Exception:
        log.failure("closing a console channel failed")


# ------------------------------------------------------------------------------ terminal


class TerminalShell(HistoricRecvLine):
    """The interactive console on a terminal (CRaSH's shell): ``% `` prompt, arrows, history.

    With ``command`` set (``ssh -t host dashboard``) it runs that command and ends.
    """

    ps = (PROMPT, PROMPT)
    interactive = True

    def __init__(
        self,
        app: ConsoleApp,
        admin: str,
        ended: Any,
        command: str | None = None,
    ) -> None:
        self.app = app
        self.admin = admin
        self._ended = ended
        self._command = command
        self._keys = _Keys()
        self._busy = False
        self._closed = False
        self.width, self.height = 80, 24

    # Terminal (opush.console.commands)
    def write(self, text: str) -> None:
        if not self._closed:
            # insults turns \n into \r\n itself.
            self.terminal.write(text.replace("\r\n", "\n").encode("utf-8"))

    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def wait_for_key(self) -> Deferred[str]:
        return self._keys.wait()

    # insults
    def connectionMade(self) -> None:
        super().connectionMade()
        t = self.terminal
        self.keyHandlers.update(
            {
                b"\x03": self.handle_CTRL_C,
                b"\x04": self.handle_CTRL_D,
                b"\x0c": self.handle_CTRL_L,
                b"\x15": self.handle_CTRL_U,
                b"\x01": self.handle_HOME,
                b"\x05": self.handle_END,
                t.BACKSPACE: self.handle_BACKSPACE,
                b"\x08": self.handle_BACKSPACE,
            }
        )
        self.app.sessions += 1

    def initializeScreen(self) -> None:
        self.setInsertMode()
        if self._command is not None:
            # After the channel request is answered (the channel is not ours before).
            self.app.clock.callLater(0, self._run, self._command, True)
            return
        self.write(banner(self.admin))
        self.terminal.write(PROMPT)

    def terminalSize(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def keystrokeReceived(self, keyID: Any, modifier: Any) -> None:
        if self._busy:
            if isinstance(keyID, bytes):
                self._keys.deliver(keyID.decode("latin-1"))
            return
        handler = self.keyHandlers.get(keyID)
        if handler is not None:
            handler()
        elif isinstance(keyID, bytes) and keyID in self._printableChars:
            self.characterReceived(keyID, False)

    def handle_CTRL_C(self) -> None:
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.terminal.write(b"^C")
        self.terminal.nextLine()
        self.terminal.write(PROMPT)

    def handle_CTRL_D(self) -> None:
        if not self.lineBuffer:
            self.terminal.nextLine()
            self._exit(0)
        else:
            self.handle_DELETE()

    def handle_CTRL_L(self) -> None:
        self.terminal.eraseDisplay()
        self.terminal.cursorHome()
        self.drawInputLine()

    def handle_CTRL_U(self) -> None:
        self.handle_HOME()
        self.terminal.eraseToLineEnd()
        self.lineBuffer = []
        self.lineBufferIndex = 0

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").strip()
        if text in EXIT_WORDS:
            self._exit(0)
            return
        if not text:
            self.terminal.write(PROMPT)
            return
        self._run(text, then_exit=False)

    def _run(self, text: str, then_exit: bool) -> None:
        self._busy = True

        def done(status: int) -> None:
            self._busy = False
            self._keys.release()
            if then_exit:
                self._exit(status)
            elif not self._closed:
                self.terminal.write(PROMPT)

        ensureDeferred(self.app.execute(text, self)).addCallback(done)

    def _exit(self, status: int) -> None:
        if not self._closed:
            self._ended(status)

    def connectionLost(self, reason: Any = None) -> None:
        if not self._closed:
            self._closed = True
            self.app.sessions -= 1
            self._keys.release()


# --------------------------------------------------------------------------------- plain


class LineShell(Protocol):
    """Without a terminal: one command per input line, output only (no prompt, no echo),
    the session ends at end of input once every command ran, in order."""

    interactive = False

    def __init__(self, app: ConsoleApp, admin: str, ended: Any) -> None:
        self.app = app
        self.admin = admin
        self._ended = ended
        self._buffer = b""
        self._queue: Deferred[int] = Deferred()
        self._queue.callback(0)
        self._status = 0
        self._keys = _Keys()
        self._closed = False
        self.app.sessions += 1

    def write(self, text: str) -> None:
        transport: Any = self.transport
        if not self._closed and transport is not None:
            transport.write(text.encode("utf-8"))

    def size(self) -> tuple[int, int]:
        return 200, 50

    def wait_for_key(self) -> Deferred[str]:
        return self._keys.wait()

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._enqueue(line.decode("utf-8", "replace").strip())

    def _enqueue(self, text: str) -> None:
        async def run(_: object) -> int:
            if self._closed or not text:
                return self._status
            if text in EXIT_WORDS:
                self.finish()
                return self._status
            self._status = await self.app.execute(text, self)
            return self._status

        self._queue.addCallback(lambda r: ensureDeferred(run(r)))

    def input_ended(self) -> None:
        if self._buffer.strip():
            self._enqueue(self._buffer.decode("utf-8", "replace").strip())
            self._buffer = b""
        self._queue.addCallback(lambda _: self.finish())

    def finish(self) -> None:
        if not self._closed:
            self._ended(self._status)

    def closed(self) -> None:
        if not self._closed:
            self._closed = True
            self.app.sessions -= 1
            self._keys.release()


class ExecTerminal:
    """``ssh host <command>`` without a terminal: the output, then the exit status."""

    interactive = False

    def __init__(self, admin: str, pp: SSHSessionProcessProtocol) -> None:
        self.admin = admin
        self._pp = pp
        self._keys = _Keys()
        self.closed = False

    def write(self, text: str) -> None:
        if not self.closed:
            self._pp.write(text.encode("utf-8"))

    def size(self) -> tuple[int, int]:
        return 200, 50

    def wait_for_key(self) -> Deferred[str]:
        return self._keys.wait()

    def close(self) -> None:
        self.closed = True
        self._keys.release()


# ------------------------------------------------------------------------------ SSH glue


class ConsoleAvatar(ConchUser):
    """A logged-in administrator; ``session`` channels only (no forwarding, no sftp)."""

    def __init__(self, app: ConsoleApp, admin: str) -> None:
        super().__init__()
        self.app = app
        self.admin = admin
        self.channelLookup[b"session"] = SSHSession

    def logout(self) -> None:
        log.info("console: {admin} logged out", admin=self.admin)


@implementer(ISession)
class ConsoleSession:
    """One ``session`` channel: a shell, a terminal shell, or one command."""

    def __init__(self, avatar: ConsoleAvatar) -> None:
        self.avatar = avatar
        self.app = avatar.app
        self.pty: tuple[int, int] | None = None
        self._terminal: insults.ServerProtocol | None = None
        self._line: LineShell | None = None
        self._exec: ExecTerminal | None = None
        self._pp: SSHSessionProcessProtocol | None = None

    def getPty(self, term: bytes, windowSize: Any, modes: Any) -> None:
        rows, cols = int(windowSize[0]), int(windowSize[1])
        self.pty = (cols or 80, rows or 24)

    def windowChanged(self, newWindowSize: Any) -> None:
        rows, cols = int(newWindowSize[0]), int(newWindowSize[1])
        self.pty = (cols or 80, rows or 24)
        if self._terminal is not None and self._terminal.terminalProtocol is not None:
            self._terminal.terminalProtocol.terminalSize(*self.pty)

    def openShell(self, pp: SSHSessionProcessProtocol) -> None:
        self._pp = pp
        if self.pty is not None:
            self._open_terminal(pp, None)
            return
        shell = LineShell(self.app, self.avatar.admin, lambda status: self._finish(status))
        self._line = shell
        shell.makeConnection(_Transport(pp.write, lambda: self._finish(0)))
        pp.makeConnection(_Transport(shell.dataReceived, lambda: None))

    def execCommand(self, pp: SSHSessionProcessProtocol, cmd: bytes) -> None:
        self._pp = pp
        command = cmd.decode("utf-8", "replace")
        if self.pty is not None:
            self._open_terminal(pp, command)
            return
        terminal = ExecTerminal(self.avatar.admin, pp)
        self._exec = terminal
        pp.makeConnection(_Transport(lambda data: None, lambda: None))

        async def run() -> None:
            self.app.sessions += 1
            try:
                status = await self.app.execute(command, terminal)
            finally:
                self.app.sessions -= 1
            if not terminal.closed:
                self._finish(status)

        # After the channel request is answered (the channel is not ours before).
        self.app.clock.callLater(0, lambda: ensureDeferred(run()))

    def _open_terminal(self, pp: SSHSessionProcessProtocol, command: str | None) -> None:
        cols, rows = self.pty or (80, 24)
        server = insults.ServerProtocol(
            TerminalShell, self.app, self.avatar.admin, self._finish, command
        )
        self._terminal = server
        pp.makeConnection(_Transport(server.dataReceived, lambda: None))
        server.makeConnection(_Transport(pp.write, lambda: self._finish(0)))
        shell: Any = server.terminalProtocol
        shell.terminalSize(cols, rows)

    def _finish(self, status: int) -> None:
        pp, self._pp = self._pp, None
        if pp is not None:
            _end(pp, status)

    def eofReceived(self) -> None:
        if self._line is not None:
            self._line.input_ended()

    def closed(self) -> None:
        self._pp = None
        if self._line is not None:
            self._line.closed()
        if self._exec is not None:
            self._exec.close()
        if self._terminal is not None:
            self._terminal.connectionLost(Failure(ProcessDone(0)))


components.registerAdapter(ConsoleSession, ConsoleAvatar, ISession)


@implementer(IRealm)
class ConsoleRealm:
    def __init__(self, app: ConsoleApp) -> None:
        self.app = app

    def requestAvatar(self, avatarId: bytes, mind: Any, *interfaces: Any) -> Any:
        if IConchUser not in interfaces:
            raise NotImplementedError("the console offers SSH sessions only")
        avatar = ConsoleAvatar(self.app, avatarId.decode("utf-8"))
        return IConchUser, avatar, avatar.logout
