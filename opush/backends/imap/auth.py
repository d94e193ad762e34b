"""`Auth` by IMAP LOGIN (the standalone profile: the mail server is the authority)."""

from __future__ import annotations

from typing import Any

from opush.backends.imap.pool import (
    Connector,
    ImapPool,
    ImapSettings,
    logout,
    open_session,
    tcp_connector,
)
from opush.backends.interfaces import Auth, AuthenticationFailed, UserIdentity, parse_login
from opush.log import logger

log = logger("AUTHENTICATION")


class ImapAuth:
    """Checks credentials with a fresh IMAP session (LOGIN then LOGOUT).

    `default_domain` completes a bare `user` login; the e-mail address is
    `user@domain`.  With `pool` (the ImapMailBackend's), credentials that already have a
    live pooled session are accepted without a new LOGIN.  A server that cannot be reached
    raises MailBackendUnavailable (so the HTTP layer answers 503, not 401).
    """

    def __init__(
        self,
        reactor: Any,
        settings: ImapSettings,
        *,
        default_domain: str | None = None,
        connector: Connector | None = None,
        pool: ImapPool | None = None,
    ) -> None:
        self.settings = settings
        self.default_domain = default_domain
        self.pool = pool
        self.connector = connector or tcp_connector(reactor, settings)

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        try:
            name = parse_login(login, self.default_domain)
        except ValueError as exc:
            raise AuthenticationFailed(str(exc)) from exc
        if not password:
            raise AuthenticationFailed(f"empty password for {name.login_at_domain}")
        imap_login = name.login_at_domain if self.settings.login_with_domain else name.user
        email = name.login_at_domain if name.domain else name.user
        identity = UserIdentity(login=name.user, domain=name.domain, email=email)
        if self.pool is not None and self.pool.has_session(imap_login, password):
            # The mail pool holds a session opened with exactly these credentials: the
            # server accepted them, no need for another LOGIN on every EAS request.
            return identity
        session = await open_session(
            self.connector, self.settings, imap_login, password, enable=False
        )
        await logout(session)
        return identity


def _conforms(auth: ImapAuth) -> Auth:
    """mypy checks here that ImapAuth implements the Auth protocol."""
    return auth
