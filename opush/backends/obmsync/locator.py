"""obm-locator client: where a user's obm-sync, IMAP and SMTP servers are.

``GET http://<host>:8084/obm-locator/location/host/<service>/<property>/<login@domain>``
answers ``text/plain``, one address per line; like OBM's ``LocatorClientImpl`` we take the
first line, cache it ``locator-cache-timeout`` and give up after
``locator-client-timeout-seconds`` (research obm-sync.md §4).  404 means "no such service".
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from opush.backends.obmsync.errors import LocatorError
from opush.backends.obmsync.transport import HttpTransport, TransportError
from opush.log import logger, watch
from opush.runtime import Clock

log = logger("OBM-SYNC")

LOCATOR_PORT: Final = 8084
#: (service, property) pairs opush asks for.
OBM_SYNC: Final = ("sync", "obm_sync")
IMAP_FRONTEND: Final = ("mail", "imap_frontend")
SMTP_OUT: Final = ("mail", "smtp_out")
#: obm-sync's port and path are hard-coded in OBM (ConfigurationServiceImpl).
OBM_SYNC_PORT: Final = 8080


def obm_sync_services_url(host: str, port: int = OBM_SYNC_PORT) -> str:
    return f"http://{_bracket(host)}:{port}/obm-sync/services"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Locator:
    """Cached obm-locator lookups (one entry per service, property and user)."""

    def __init__(
        self,
        transport: HttpTransport,
        clock: Clock,
        host: str,
        *,
        port: int = LOCATOR_PORT,
        cache_seconds: float = 30 * 60.0,
        timeout: float = 5.0,
        base_url: str | None = None,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self.base_url = base_url or f"http://{_bracket(host)}:{port}/obm-locator/location/host"
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._cache: dict[tuple[str, str, str], tuple[str, float]] = {}

    def cached(self, service: str, prop: str, login_at_domain: str) -> str | None:
        """The cached answer, if still fresh (no request)."""
        key = (service, prop, login_at_domain.lower())
        hit = self._cache.get(key)
        if hit is None:
            return None
        if hit[1] <= self._clock.seconds():
            del self._cache[key]
            return None
        return hit[0]

    async def locate(self, service: str, prop: str, login_at_domain: str) -> str:
        """The first address obm-locator gives; LocatorError if none or unreachable."""
        hit = self.cached(service, prop, login_at_domain)
        if hit is not None:
            return hit
        url = "/".join(
            (
                self.base_url,
                quote(service, safe=""),
                quote(prop, safe=""),
                quote(login_at_domain, safe="@"),
            )
        )
        try:
            with watch("OBM"):
                response = await self._transport.request(b"GET", url, timeout_seconds=self.timeout)
        except TransportError as e:
            raise LocatorError(f"obm-locator unreachable ({url}): {e}") from e
        if response.code == 404:
            raise LocatorError(f"obm-locator knows no {service}/{prop} for {login_at_domain}")
        if response.code != 200:
            raise LocatorError(f"obm-locator answered HTTP {response.code} for {url}")
        lines = [
            line.strip()
            for line in response.body.decode("utf-8", "replace").splitlines()
            if line.strip()
        ]
        if not lines:
            raise LocatorError(f"obm-locator gave no address for {service}/{prop}")
        host = lines[0]
        log.debug(
            "locator {service}/{prop} for {user}: {host}",
            service=service,
            prop=prop,
            user=login_at_domain,
            host=host,
        )
        if self.cache_seconds > 0:
            key = (service, prop, login_at_domain.lower())
            self._cache[key] = (host, self._clock.seconds() + self.cache_seconds)
        return host
