# mypy: disallow-untyped-calls=False
"""Who may open a console session.

Passwords: the profile's authenticator restricted to ``console.admins`` (remote_console.ini).
In the obm profile obm-sync's ``authenticateAdmin`` in ``console.authentication.domain``
decides (``runtime.services["console_auth"]``), as the Java server's CRaSH plugin did; a
non-empty ``console.admins`` then narrows it further. In the standalone profile the mail
server's IMAP LOGIN checks the password and only the listed admins get in, so an empty list
means nobody logs in with a password.

Public keys: the OpenSSH ``authorized_keys`` file of ``console.authorized-keys``; its keys
log in as any login of ``console.admins``. The file is read at each attempt (in a thread),
so edits apply without restart.

A refused login never says why to the client; the AUTHENTICATION log does, without the
password.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.conch.error import ValidPublicKey
from twisted.conch.ssh.keys import BadKeyError, Key
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from opush.backends.interfaces import AuthenticationFailed, parse_login
from opush.log import logger

log = logger("AUTHENTICATION")


@attrs.frozen
class AdminPolicy:
    """The ``console.admins`` list, compared case-insensitively on ``user@domain``.

    ``default_domain`` completes a login typed without one (obm profile: the console's
    authentication domain). ``open_to_backend`` lets any login the backend accepts in when
    the list is empty (obm-sync's authenticateAdmin decides who is an administrator).
    """

    admins: frozenset[str]
    default_domain: str | None = None
    open_to_backend: bool = False

    @classmethod
    def create(
        cls, admins: Iterable[str], default_domain: str | None = None, open_to_backend: bool = False
    ) -> AdminPolicy:
        names = set()
        for raw in admins:
            name = normalize(raw, default_domain)
            if name:
                names.add(name)
        return cls(frozenset(names), default_domain, open_to_backend)

    def admin(self, login: str) -> str | None:
        """The normalized admin name for ``login``, or None if it may not log in."""
        name = normalize(login, self.default_domain)
        if name is None:
            return None
        if name in self.admins:
            return name
        if not self.admins and self.open_to_backend:
            return name
        return None

    def key_admin(self, login: str) -> str | None:
        """Public keys log in as a *listed* admin only (no backend is asked)."""
        name = normalize(login, self.default_domain)
        return name if name is not None and name in self.admins else None


def normalize(login: str, default_domain: str | None = None) -> str | None:
    try:
        return parse_login(login, default_domain).login_at_domain.lower()
    except ValueError:
        return None


@implementer(ICredentialsChecker)
class AdminPasswordChecker:
    """SSH ``password`` authentication through an `Auth`-shaped authenticator."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, auth: Any, policy: AdminPolicy) -> None:
        self.auth = auth
        self.policy = policy

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        return ensureDeferred(self._check(credentials))

    async def _check(self, credentials: Any) -> bytes:
        login = credentials.username.decode("utf-8", "replace")
        password = credentials.password.decode("utf-8", "replace")
        admin = self.policy.admin(login)
        if admin is None:
            log.info("console: {login} refused, not in console.admins", login=login)
            raise UnauthorizedLogin()
        try:
            await self.auth.authenticate(login, password)
        except AuthenticationFailed as e:
            log.info("console: {login} refused: {reason}", login=login, reason=str(e))
            raise UnauthorizedLogin() from None
        except Exception as e:
            log.warn(
                "console: cannot check the password of {login}: {error}",
                login=login,
                error=str(e) or type(e).__name__,
            )
            raise UnauthorizedLogin() from None
        log.info("console: {login} logged in with a password", login=admin)
        return admin.encode("utf-8")


def read_authorized_keys(path: Path) -> list[Key]:
    """The keys of an OpenSSH authorized_keys file; option prefixes (``from="..." ``) and
    unreadable lines are skipped. A missing file holds no key."""
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        return []
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for candidate in _key_candidates(line):
            try:
                found.append(Key.fromString(candidate.encode("utf-8")))
                break
            except (BadKeyError, ValueError, IndexError, TypeError):
                continue
    return found


def _key_candidates(line: str) -> Sequence[str]:
    out = [line]
    for prefix in (" ssh-", " ecdsa-", " sk-"):
        at = line.find(prefix)
        if at >= 0:
            out.append(line[at + 1 :])
    return out


@implementer(ICredentialsChecker)
class AuthorizedKeysChecker:
    """SSH ``publickey`` authentication against the ``console.authorized-keys`` file."""

    credentialInterfaces = (ISSHPrivateKey,)

    def __init__(self, path: Path, policy: AdminPolicy) -> None:
        self.path = path
        self.policy = policy

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        return ensureDeferred(self._check(credentials))

    async def _check(self, credentials: Any) -> bytes:
        login = credentials.username.decode("utf-8", "replace")
        admin = self.policy.key_admin(login)
        if admin is None:
            log.info("console: {login} refused, not in console.admins", login=login)
            raise UnauthorizedLogin()
        keys = await deferToThread(read_authorized_keys, self.path)
        offered = credentials.blob
        match = next((k for k in keys if k.blob() == offered), None)
        if match is None:
            raise UnauthorizedLogin()
        if credentials.signature is None:
            # The client asks whether this key would do before signing (RFC 4252 §7).
            raise ValidPublicKey()
        if not match.verify(credentials.signature, credentials.sigData):
            log.info("console: {login} refused, bad key signature", login=login)
            raise UnauthorizedLogin()
        log.info("console: {login} logged in with a public key", login=admin)
        return admin.encode("utf-8")
