"""Logging as the administrator guide describes it (section 12).

``opush.log`` lines ``HH:MM:SS.mmm [LEVEL] {LOGGER} [t<conn>/c<command>/r<request>/<user>] msg``
(UTC, like the Java server), the guide's named loggers with per-logger levels from
``logback.xml`` (re-read every minute), ``access.log`` in Apache common format, both rotated
daily, gzipped, 30 kept; under ``twistd -n`` opush.log lines also go to stdout. Passwords are
masked in every line (OP-100, ``sanitize``).

In code::

    from opush.log import logger, is_enabled
    log = logger("IMAP.COMMAND")             # a twisted.logger.Logger
    log.debug("{line}", line=line)          # dropped at once unless enabled
    if is_enabled("REQUEST.FULL", LogLevel.debug):
        full.debug("{xml}", xml=etree.tostring(tree))

Request context: ``RequestContext`` in ``request_context`` (or ``with request_scope(ctx):``),
set by the HTTP layer, follows the request through ``async def`` code. BREAKDOWN: ``Breakdown``,
``watch``, ``watched``; SUMMARY.IN/OUT: ``format_summary``.

Wiring (tap.py)::

    logging_service = LoggingService(log_dir, config_dir / "logback.xml",
                                     foreground=nodaemon, clock=reactor)
    logging_service.setServiceParent(root)   # first, so startup messages reach opush.log
    site = make_site(...)                    # any twisted.web Site
    install_access_log(site, logging_service.access_log)   # Apache common format

Tests: ``with levels.override({"IMAP.COMMAND": DEBUG}):`` enables a logger; without a running
LoggingService events reach Twisted's global publisher, so ``capturedLogs()`` sees them.
"""

from ._access import AccessLog, common_log_formatter, install_access_log
from ._breakdown import Breakdown, format_summary, watch, watched
from ._context import (
    RequestContext,
    current_context,
    new_request_id,
    request_context,
    request_scope,
)
from ._files import DailyFile
from ._format import abbreviate, format_event
from ._levels import (
    DEBUG,
    ERROR,
    INFO,
    NAMED_LOGGERS,
    OFF,
    WARN,
    Levels,
    LogbackError,
    parse_logback,
)
from ._sanitize import sanitize
from ._service import (
    LoggingService,
    OpushLogger,
    is_enabled,
    levels,
    logger,
    opush_publisher,
)

__all__ = [
    "DEBUG",
    "ERROR",
    "INFO",
    "NAMED_LOGGERS",
    "OFF",
    "WARN",
    "AccessLog",
    "Breakdown",
    "DailyFile",
    "Levels",
    "LogbackError",
    "LoggingService",
    "OpushLogger",
    "RequestContext",
    "abbreviate",
    "common_log_formatter",
    "current_context",
    "format_event",
    "format_summary",
    "install_access_log",
    "is_enabled",
    "levels",
    "logger",
    "new_request_id",
    "opush_publisher",
    "parse_logback",
    "request_context",
    "request_scope",
    "sanitize",
    "watch",
    "watched",
]
