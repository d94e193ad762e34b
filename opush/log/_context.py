"""The request context printed in every opush.log line: ``[t<conn>/c<command>/r<request>/<user>]``.

The HTTP layer creates one RequestContext per request and sets it with ``request_scope``. The
contextvar follows the request through ``async def`` code: Twisted runs each coroutine started
with ``ensureDeferred``/``Deferred.fromCoroutine`` inside a copy of the context current at that
call, so everything awaited below sees it. Plain ``addCallback`` callbacks run in whatever context
fires the Deferred and do not see it; write request code as coroutines.

RequestContext is mutable on purpose: the command is known after the query string is parsed and
the user after authentication, and filling them in on the same object makes them visible to
coroutines already started with a copy of the context.

``t<...>``: Java printed the servlet thread id. opush serves every request on the reactor
thread, so the field carries the HTTP connection number instead (Twisted's per-port
``transport.sessionno``): lines of requests that share a keep-alive connection share it, and
Ping's long poll can be told apart from the Sync that follows on another connection.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from contextvars import ContextVar

import attrs


@attrs.define
class RequestContext:
    """Who and what a log line is about."""

    request_id: int
    connection: int | None = None
    command: str = ""
    user: str = ""
    device_id: str = ""

    def snapshot(self) -> RequestContext:
        return RequestContext(
            self.request_id, self.connection, self.command, self.user, self.device_id
        )

    def prefix(self) -> str:
        conn = "" if self.connection is None else str(self.connection)
        return f"[t{conn}/c{self.command}/r{self.request_id}/{self.user}]"


#: Empty context, as the Java server printed outside requests: ``[t/c/r/]``.
NO_CONTEXT_PREFIX = "[t/c/r/]"

request_context: ContextVar[RequestContext | None] = ContextVar(
    "opush_request_context", default=None
)

_request_ids = itertools.count(1)


def new_request_id() -> int:
    """Process-wide increasing request number (the ``r`` field)."""
    return next(_request_ids)


@contextlib.contextmanager
def request_scope(ctx: RequestContext) -> Iterator[RequestContext]:
    """Make ``ctx`` the current request context for the block (sync or inside a coroutine)."""
    token = request_context.set(ctx)
    try:
        yield ctx
    finally:
        request_context.reset(token)


def current_context() -> RequestContext | None:
    return request_context.get()
