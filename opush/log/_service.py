"""Named loggers and the service that writes opush.log / access.log.

Our loggers publish to ``opush_publisher``. Until LoggingService runs it forwards everything to
Twisted's global publisher (so tests can use ``capturedLogs``); while it runs, LoggingService is
its only observer. That keeps opush events out of twistd's own log (stdout under ``-n``,
``--logfile`` otherwise, the Java server's out.log): they are written once, filtered and
sanitized, to opush.log, and under ``-n`` also to stdout. Twisted's own events and those of
stdlib ``logging`` (cassandra-driver, ...) are written to opush.log too, under their own names
(``twisted.*``, ``cassandra.*``), WARN and above unless logback.xml says otherwise.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO, cast

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver, Logger, LogLevel, LogPublisher, globalLogPublisher
from zope.interface import implementer

from ._access import AccessLog
from ._context import request_context
from ._files import Background, DailyFile, run_in_thread
from ._format import CONTEXT_KEY, format_event, logger_name
from ._levels import (
    DEBUG,
    ERROR,
    INFO,
    NAMED_LOGGERS,
    PRIORITY,
    WARN,
    Levels,
    LogbackError,
    level_name,
    parse_logback,
)

#: The process-wide thresholds (logback.xml overlay included).
levels = Levels()

#: Where ``logger()`` loggers publish (see module docstring).
opush_publisher = LogPublisher(cast(ILogObserver, globalLogPublisher))


def is_enabled(name: str, level: LogLevel) -> bool:
    """Would an event of ``name`` at ``level`` be written? Check before building big messages."""
    return PRIORITY[level] >= levels.threshold(name)


_DEBUG_LEVEL: LogLevel = LogLevel.debug
_INFO_LEVEL: LogLevel = LogLevel.info


class OpushLogger(Logger):
    """A twisted Logger that drops disabled events before building them and records the context.

    ``debug``/``info`` are the hot calls (IMAP.COMMAND, REQUEST.FULL): they test the threshold
    before anything else, so a disabled call costs a dict lookup.
    """

    def debug(self, format: str | None = None, **kwargs: object) -> None:
        threshold = levels._cache.get(self.namespace)
        if threshold is None:
            threshold = levels.threshold(self.namespace)
        if threshold <= DEBUG:
            self._emit(_DEBUG_LEVEL, format, kwargs)

    def info(self, format: str | None = None, **kwargs: object) -> None:
        threshold = levels._cache.get(self.namespace)
        if threshold is None:
            threshold = levels.threshold(self.namespace)
        if threshold <= INFO:
            self._emit(_INFO_LEVEL, format, kwargs)

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: object) -> None:
        if PRIORITY.get(level, ERROR) >= levels.threshold(self.namespace):
            self._emit(level, format, kwargs)

    def _emit(self, level: LogLevel, format: str | None, kwargs: dict[str, object]) -> None:
        if CONTEXT_KEY not in kwargs:
            # A snapshot: the request's context is filled in as it goes (command, user).
            ctx = request_context.get()
            kwargs[CONTEXT_KEY] = None if ctx is None else ctx.snapshot()
        super().emit(level, format, **kwargs)

    def __get__(self, instance: object, owner: type | None = None) -> OpushLogger:
        # Keep the guide's name when used as a class attribute (Logger would rename it after the
        # class); only the source changes.
        return OpushLogger(
            self.namespace, instance if instance is not None else owner, self.observer
        )


def logger(name: str) -> OpushLogger:
    """The logger named ``name`` (a guide name such as ``"IMAP.COMMAND"``, or a module name).

    Names that are neither the guide's nor under a configured hierarchy default to INFO, like
    CONTAINER.
    """
    if name not in NAMED_LOGGERS:
        levels.add_default(name, INFO)
    return OpushLogger(namespace=name, observer=cast(ILogObserver, opush_publisher))


_container = logger("CONTAINER")


@implementer(ILogObserver)
class OpushLogObserver:
    """Writes events as opush.log lines, filtered per logger, to a file and optionally a stream."""

    def __init__(self, file: DailyFile, stream: TextIO | None = None) -> None:
        self.file = file
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        if PRIORITY.get(event.get("log_level"), INFO) < levels.threshold(logger_name(event)):  # type: ignore[arg-type]
            return
        line = format_event(event)
        when = event.get("log_time")
        self.file.write(line, float(when) if isinstance(when, (int, float)) else 0.0)
        if self.stream is not None:
            try:
                self.stream.write(line)
            except (OSError, ValueError):  # stdout closed (terminal gone): keep the file going
                self.stream = None


_STDLIB_LEVELS: tuple[tuple[int, LogLevel], ...] = (
    (logging.ERROR + 10, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
)


def _twisted_level(levelno: int) -> LogLevel:
    for floor, level in _STDLIB_LEVELS:
        if levelno >= floor:
            return level
    return _DEBUG


_DEBUG: LogLevel = LogLevel.debug


_STDLIB_FROM_THRESHOLD = {DEBUG: logging.DEBUG, INFO: logging.INFO, WARN: logging.WARNING}


class StdlibHandler(logging.Handler):
    """Feeds stdlib ``logging`` records into an observer as Twisted-style events."""

    def __init__(self, observer: OpushLogObserver) -> None:
        super().__init__(logging.DEBUG)
        self._observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._observer(
                {
                    "log_namespace": record.name if record.name != "root" else "python",
                    "log_level": _twisted_level(record.levelno),
                    "log_time": record.created,
                    "log_format": "{text}",
                    "text": text,
                    CONTEXT_KEY: request_context.get(),
                }
            )
        except Exception:
            self.handleError(record)


def _stdlib_level(threshold: int) -> int:
    return _STDLIB_FROM_THRESHOLD.get(threshold, logging.ERROR if threshold <= ERROR else 100)


def apply_stdlib_levels(configured: dict[str, int], previous: dict[str, int]) -> None:
    """Mirror logback.xml onto stdlib loggers so disabled records are not even built."""
    logging.getLogger().setLevel(_stdlib_level(configured.get("", WARN)))
    for name in previous.keys() - configured.keys():
        if name:
            logging.getLogger(name).setLevel(logging.NOTSET)
    for name, threshold in configured.items():
        if name:
            logging.getLogger(name).setLevel(_stdlib_level(threshold))


class LoggingService(Service):
    """Installs opush.log (+ stdout when ``foreground``), access.log and the logback.xml re-read.

    Start it first (add it to the root MultiService before the others) so startup messages land in
    opush.log. ``access_log`` is the file to give to the HTTP Site (see ``install_access_log``).
    """

    name = "logging"
    reread_interval = 60.0

    def __init__(
        self,
        log_dir: Path,
        logback_xml: Path,
        foreground: bool,
        clock: IReactorTime,
        keep: int = 30,
        stdout: TextIO | None = None,
        background: Background = run_in_thread,
    ) -> None:
        self.log_dir = log_dir
        self.logback_xml = logback_xml
        self.clock = clock
        self.file = DailyFile(log_dir / "opush.log", keep=keep, background=background)
        # Under -n twistd already prints Twisted's own events to stdout: we add only ours there.
        self._global_observer = OpushLogObserver(self.file)
        self._opush_observer = OpushLogObserver(
            self.file, (stdout or sys.stdout) if foreground else None
        )
        self.access_log = AccessLog(log_dir / "access.log", clock, keep=keep, background=background)
        # stdlib records are not Twisted events: twistd never prints them, so they go to stdout
        # under -n like ours.
        self._stdlib_handler = StdlibHandler(self._opush_observer)
        self._reread = LoopingCall(self.reload_levels)
        self._reread.clock = clock
        self._saved_levels: dict[str, int] = {}
        self._saved_root_level = logging.WARNING

    def startService(self) -> None:
        now = cast(Any, self.clock).seconds()
        self.file.open(now)
        self.access_log.file.open(now)
        super().startService()  # type: ignore[no-untyped-call]
        self._saved_levels = levels.configured
        self._saved_root_level = logging.getLogger().level
        opush_publisher.removeObserver(cast(ILogObserver, globalLogPublisher))
        opush_publisher.addObserver(cast(ILogObserver, self._opush_observer))
        globalLogPublisher.addObserver(cast(ILogObserver, self._global_observer))
        logging.getLogger().addHandler(self._stdlib_handler)
        self.reload_levels()
        apply_stdlib_levels(levels.configured, {})
        self._reread.start(self.reread_interval, now=False)

    def stopService(self) -> None:
        if self._reread.running:
            self._reread.stop()
        logging.getLogger().removeHandler(self._stdlib_handler)
        globalLogPublisher.removeObserver(cast(ILogObserver, self._global_observer))
        opush_publisher.removeObserver(cast(ILogObserver, self._opush_observer))
        opush_publisher.addObserver(cast(ILogObserver, globalLogPublisher))
        apply_stdlib_levels({}, levels.configured)
        logging.getLogger().setLevel(self._saved_root_level)
        levels.configure(self._saved_levels)
        self.file.close()
        self.access_log.file.close()
        super().stopService()  # type: ignore[no-untyped-call]

    def reload_levels(self) -> None:
        """Re-read logback.xml; a broken file is reported and the previous levels are kept."""
        try:
            configured = parse_logback(self.logback_xml)
        except LogbackError as e:
            _container.warn("{problem}; keeping the previous logger levels", problem=str(e))
            return
        except Exception:
            _container.failure("Cannot read {path}", path=str(self.logback_xml))
            return
        previous = levels.configured
        if levels.configure(configured):
            apply_stdlib_levels(configured, previous)
            described = ", ".join(
                f"{name or 'ROOT'}={level_name(v)}" for name, v in sorted(configured.items())
            )
            _container.info(
                "Logger levels from {path}: {levels}",
                path=str(self.logback_xml),
                levels=described or "(defaults)",
            )
