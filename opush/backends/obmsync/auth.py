"""Authentication in the obm profile: obm-sync's ``login/doLogin`` (devices) and
``login/authenticateAdmin`` (the SSH console)."""

from __future__ import annotations

from opush.backends.interfaces import AuthenticationFailed, UserIdentity, parse_login
from opush.backends.obmsync.client import ObmSyncClient
from opush.backends.obmsync.errors import AuthFault
from opush.log import logger

log = logger("AUTHENTICATION")


class ObmSyncAuth:
    """`opush.backends.interfaces.Auth` over obm-sync.

    Logs in with ``origin=o-push`` and keeps the session in the client for the user's calendar
    and contacts calls.  The identity is what obm-sync answers: the e-mail and display name
    of the token, the domain it resolved.  OBM has no default domain, so a login without one
    is refused (as UserEmailParserUtils did).  AuthFault -> AuthenticationFailed (HTTP 401);
    anything else is BackendUnavailable (retryable), never a 500.
    """

    def __init__(self, client: ObmSyncClient) -> None:
        self.client = client

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        try:
            name = parse_login(login)
        except ValueError as e:
            raise AuthenticationFailed(str(e)) from e
        if name.domain is None:
            raise AuthenticationFailed(f"login {login!r} has no domain")
        base = await self.client.base_url(name.login_at_domain)
        try:
            token = await self.client.login(name.login_at_domain, password, base)
        except AuthFault as e:
            raise AuthenticationFailed(e.message) from e
        self.client.adopt(name.login_at_domain, password, token, base)
        return UserIdentity(
            login=name.user,
            domain=(token.domain or name.domain).lower(),
            email=token.email or name.login_at_domain,
            display_name=token.display_name,
        )


class ObmSyncConsoleAuth:
    """Console administrators: obm-sync ``authenticateAdmin`` in
    ``console.authentication.domain`` (remote_console.ini, default ``global.virt``).

    ``authenticate`` has the `Auth` shape so the console can use it like any authenticator:
    it returns the administrator's identity or raises AuthenticationFailed.
    """

    def __init__(self, client: ObmSyncClient, domain: str) -> None:
        self.client = client
        self.domain = domain

    async def is_admin(self, login: str, password: str) -> bool:
        user = login.strip()
        if "@" in user:  # admin@global.virt: the configured domain decides, as in the Java
            user = user.split("@", 1)[0]
        if not user or not password:
            return False
        try:
            return await self.client.authenticate_admin(user, password, self.domain)
        except AuthFault:
            return False

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        user = login.strip().split("@", 1)[0]
        if not await self.is_admin(login, password):
            log.info("console: administrator {login} refused", login=login)
            raise AuthenticationFailed(f"{login} is not an administrator of {self.domain}")
        return UserIdentity(login=user, domain=self.domain, email=f"{user}@{self.domain}")
