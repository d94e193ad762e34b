"""access.log in Apache common log format, rotated like opush.log.

``%h %l %u %t "%r" %>s %b``, e.g. ``127.0.0.1 - alice@example.org [22/Nov/2026:08:11:16 +0000]
"POST /Microsoft-Server-ActiveSync?Cmd=Sync&... HTTP/1.1" 200 312`` (one line).
``%u`` is the Basic-auth user name (never the password); the whole line goes through
``sanitize`` anyway, as query strings could carry a ``password=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IAccessLogFormatter
from zope.interface import alsoProvides

from ._files import Background, DailyFile, run_in_thread
from ._sanitize import sanitize


def _field(value: bytes | str | None) -> str:
    """Printable, quote-safe text for a log field (``-`` when empty)."""
    if not value:
        return "-"
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    out = []
    for ch in value:
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def common_log_formatter(timestamp: str, request: Any) -> str:
    """IAccessLogFormatter for ``Site(..., logFormatter=common_log_formatter)``."""
    addr = request.getClientAddress()
    host = getattr(addr, "host", None)
    user = _field(request.getUser())
    length = request.sentLength
    line = '{} - {} {} "{} {} {}" {} {}'.format(
        _field(host) if isinstance(host, (str, bytes)) else "-",
        user.replace(" ", "_"),
        timestamp,
        _field(request.method),
        _field(request.uri),
        _field(request.clientproto),
        request.code,
        length if length else "-",
    )
    return sanitize(line)


alsoProvides(common_log_formatter, IAccessLogFormatter)


class AccessLog:
    """The ``logFile`` a twisted.web Site writes to: ``write(str)`` / ``close()``.

    ``close()`` only flushes: a Site closes its log file whenever its port stops listening, while
    the file belongs to LoggingService, which closes it at shutdown.
    """

    def __init__(
        self,
        path: Path,
        clock: IReactorTime,
        keep: int = 30,
        background: Background = run_in_thread,
    ) -> None:
        self._clock: Any = clock  # IReactorTime; zope interfaces are opaque to mypy
        self.file = DailyFile(path, keep=keep, background=background)

    def write(self, data: str, /) -> object:
        self.file.write(sanitize(data), self._clock.seconds())
        return None

    def close(self) -> None:
        self.file.flush()


def install_access_log(
    site: Any, access_log: AccessLog, formatter: Any = common_log_formatter
) -> None:
    """Make ``site`` (a twisted.web.server.Site / HTTPFactory) log to ``access_log``.

    HTTPFactory opens its file in ``startFactory`` via ``_openLogFile(logPath)`` (Twisted
    documents it as the hook to override); without a logPath it would write into the legacy
    Twisted log, i.e. into opush.log. The formatter is the one ``Site(logFormatter=)`` sets,
    so a site built elsewhere needs no change.
    """
    site.logPath = str(access_log.file.path)
    site._openLogFile = lambda path: access_log
    site._logFormatter = formatter
