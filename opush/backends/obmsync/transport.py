# mypy: disallow-untyped-calls=False
"""The HTTP requests obm-sync and obm-locator need, behind a one-method interface.

`AgentTransport` is the real thing (twisted.web.client.Agent with persistent connections);
tests may pass any object with the same ``request`` coroutine (e.g. one that calls the
obm-sync double in memory) to keep unit tests free of sockets and wall-clock time.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any, Protocol, cast

import attrs
from twisted.internet import protocol as _protocol
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers


class TransportError(Exception):
    """The request did not complete: refused, timed out, connection lost."""


@attrs.frozen
class HttpResponse:
    code: int
    body: bytes
    content_type: str | None = None


class HttpTransport(Protocol):
    async def request(
        self,
        method: bytes,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout_seconds: float,
    ) -> HttpResponse:
        """Send one request and read the whole answer; TransportError when that fails."""
        ...


class AgentTransport:
    """twisted.web.client.Agent with a small persistent pool (obm-sync is called often)."""

    def __init__(
        self, reactor: Any, *, connect_timeout: float = 5.0, max_per_host: int = 8
    ) -> None:
        self._reactor = reactor
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_per_host
        self._pool.retryAutomatically = False  # a POST must not be sent twice behind our back
        self._agent = Agent(reactor, pool=self._pool, connectTimeout=connect_timeout)

    async def request(
        self,
        method: bytes,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout_seconds: float,
    ) -> HttpResponse:
        headers = Headers({b"User-Agent": [b"opush"]})
        if content_type is not None:
            headers.addRawHeader(b"Content-Type", content_type.encode("ascii"))
        producer = FileBodyProducer(BytesIO(body)) if body is not None else None
        try:
            d = self._agent.request(method, url.encode("utf-8"), headers, cast(Any, producer))
            d.addTimeout(timeout_seconds, self._reactor)
            response = await d
            read = _read_body(response)
            read.addTimeout(timeout_seconds, self._reactor)
            data = await read
        except (TimeoutError, CancelledError) as e:
            raise TransportError(f"no answer within {timeout_seconds:g} s") from e
        except (ConnectError, DNSLookupError, ConnectionLost) as e:
            raise TransportError(str(e) or type(e).__name__) from e
        except Exception as e:  # ResponseNeverReceived, ResponseFailed, ...
            reasons = getattr(e, "reasons", None) or []
            if any(isinstance(r, Failure) and r.check(CancelledError) for r in reasons):
                raise TransportError(f"no answer within {timeout_seconds:g} s") from e
            raise TransportError(f"{type(e).__name__}: {e}") from e
        ctype = response.headers.getRawHeaders(b"content-type")
        return HttpResponse(response.code, data, ctype[0].decode("latin-1") if ctype else None)

    async def close(self) -> None:
        await self._pool.closeCachedConnections()


_DONE = Failure(ResponseDone())


class _Body(_protocol.Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self.chunks))
        else:
            self.done.errback(reason)


def _read_body(response: Any) -> Deferred[bytes]:
    """readBody without its deprecation path: a cancelled read drops the connection."""

    def cancel(d: Deferred[bytes]) -> None:
        transport = getattr(body, "transport", None)
        if transport is not None:
            abort = getattr(transport, "abortConnection", None) or transport.stopProducing
            abort()

    done: Deferred[bytes] = Deferred(cancel)
    body = _Body(done)
    response.deliverBody(body)
    return done
