"""The opush.log line, after the Java server's logback pattern
``%d{HH:mm:ss.SSS} [%-5level] {%logger{32}}
[t%X{threadId}/c%X{command}/r%X{requestId}/%X{user}] %msg`` (one line).

Times are UTC: the Java server forced the JVM time zone to GMT, and rotation follows UTC days.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from twisted.logger import eventAsText

from ._context import NO_CONTEXT_PREFIX, RequestContext, request_context
from ._levels import LABEL
from ._sanitize import sanitize

#: Event key holding the RequestContext captured when the event was emitted.
CONTEXT_KEY = "opush_context"

#: Twisted's legacy ``twisted.python.log`` events and events without a namespace.
_TWISTED = "twisted"


def logger_name(event: dict[str, Any]) -> str:
    """The logger an event belongs to, for thresholds and for the ``{LOGGER}`` column."""
    name = event.get("log_namespace")
    if not isinstance(name, str) or not name or name == "log_legacy":
        return _TWISTED
    return name


@functools.lru_cache(maxsize=1024)
def abbreviate(name: str, width: int = 32) -> str:
    """logback's ``%logger{32}``: shorten leading segments to their initial, rightmost last.

    ``com.datastax.driver.core.policies.LoggingRetryPolicy`` -> ``c.d.d.c.p.LoggingRetryPolicy``;
    names that fit (all the guide's loggers) are unchanged; the last segment is never cut.
    """
    if len(name) <= width:
        return name
    parts = name.split(".")
    length = len(name)
    for i in range(len(parts) - 1):
        if length <= width:
            break
        length -= len(parts[i]) - 1
        parts[i] = parts[i][:1]
    return ".".join(parts)


_last_second: list[tuple[int, str]] = [(-1, "")]


def _clock_part(when: float) -> str:
    secs = int(when)
    # Truncate like logback; the epsilon absorbs float noise (x.669 stored as x.66899999).
    ms = min(999, int((when - secs) * 1000 + 0.0005))
    cached_secs, hms = _last_second[0]
    if cached_secs != secs:
        t = time.gmtime(secs)
        hms = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
        _last_second[0] = (secs, hms)
    return f"{hms}.{ms:03d}"


def context_prefix(ctx: RequestContext | None) -> str:
    return NO_CONTEXT_PREFIX if ctx is None else ctx.prefix()


def format_event(event: dict[str, Any]) -> str:
    """One opush.log entry (newline-terminated), password-free.

    The request context is the one captured at emit time (our loggers store it in the event);
    for foreign events (Twisted's, stdlib's) observers run synchronously in the emitting code, so
    the current contextvar is the emitter's.
    """
    when = event.get("log_time")
    if not isinstance(when, (int, float)):
        when = time.time()
    label = LABEL.get(event.get("log_level"), "INFO ")  # type: ignore[arg-type]
    if CONTEXT_KEY in event:
        ctx = event[CONTEXT_KEY]
    else:
        ctx = request_context.get()
    prefix = context_prefix(ctx if isinstance(ctx, RequestContext) else None)
    text = eventAsText(event, includeTimestamp=False, includeSystem=False)
    return (
        f"{_clock_part(float(when))} [{label}] {{{abbreviate(logger_name(event))}}} {prefix} "
        f"{sanitize(text)}\n"
    )
