"""Where a user's IMAP and SMTP servers are in the obm profile: mail_conf.ini's static
``imap.host``/``smtp.host`` when set, else obm-locator (``mail/imap_frontend``,
``mail/smtp_out``), as the Java server asked it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from opush.backends.interfaces import Credentials, MailStore
from opush.backends.obmsync.locator import IMAP_FRONTEND, SMTP_OUT, Locator


class MailHosts:
    def __init__(
        self,
        locator: Locator,
        *,
        imap_host: str | None,
        imap_port: int,
        smtp_host: str | None,
        smtp_port: int,
    ) -> None:
        self.locator = locator
        self.imap_host, self.imap_port = imap_host, imap_port
        self.smtp_host, self.smtp_port = smtp_host, smtp_port

    async def imap(self, login_at_domain: str) -> tuple[str, int]:
        if self.imap_host:
            return self.imap_host, self.imap_port
        return await self.locator.locate(*IMAP_FRONTEND, login_at_domain), self.imap_port

    def imap_cached(self, login_at_domain: str) -> str | None:
        return self.imap_host or self.locator.cached(*IMAP_FRONTEND, login_at_domain)

    async def smtp(self, login_at_domain: str) -> tuple[str, int]:
        """The SMTP server to send this user's mail through (SendMail, Smart*)."""
        if self.smtp_host:
            return self.smtp_host, self.smtp_port
        return await self.locator.locate(*SMTP_OUT, login_at_domain), self.smtp_port


class LocatedMailBackend:
    """A MailBackend whose IMAP server is found per user by obm-locator.

    One backend (connection pool) per IMAP host, built by ``make_backend(host)``.  ``store``
    must answer at once, so when the locator's answer is not cached yet the store resolves
    the host on its first call.
    """

    def __init__(self, hosts: MailHosts, make_backend: Callable[[str], Any]) -> None:
        self.hosts = hosts
        self._make_backend = make_backend
        self._backends: dict[str, Any] = {}

    def _backend(self, host: str) -> Any:
        backend = self._backends.get(host)
        if backend is None:
            backend = self._backends[host] = self._make_backend(host)
        return backend

    def store(self, credentials: Credentials) -> MailStore:
        host = self.hosts.imap_cached(credentials.user.login_at_domain)
        if host is not None:
            return cast(MailStore, self._backend(host).store(credentials))
        return cast(MailStore, _LocatedStore(self, credentials))

    async def store_for(self, credentials: Credentials) -> MailStore:
        host, _port = await self.hosts.imap(credentials.user.login_at_domain)
        return cast(MailStore, self._backend(host).store(credentials))

    async def shutdown(self) -> None:
        for backend in list(self._backends.values()):
            await backend.shutdown()


class _LocatedStore:
    """Resolves the IMAP host on first use, then behaves as that host's MailStore."""

    def __init__(self, backend: LocatedMailBackend, credentials: Credentials) -> None:
        self._backend = backend
        self._credentials = credentials
        self._store: MailStore | None = None

    def __getattr__(self, name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._store is None:
                self._store = await self._backend.store_for(self._credentials)
            return await getattr(self._store, name)(*args, **kwargs)

        return call
