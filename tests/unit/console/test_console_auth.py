"""Who may log in to the console: admins list, backend password check, authorized keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.error import ValidPublicKey
from twisted.conch.ssh.keys import Key
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin

from opush.backends.interfaces import AuthenticationFailed, BackendUnavailable, UserIdentity
from opush.console.auth import (
    AdminPasswordChecker,
    AdminPolicy,
    AuthorizedKeysChecker,
    read_authorized_keys,
)
from opush.console.hostkey import load_or_create_host_key


class Auth:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[str] = []
        self.error = error

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        self.calls.append(login)
        if self.error is not None:
            raise self.error
        if password != "secret":
            raise AuthenticationFailed("bad password")
        return UserIdentity(login.split("@")[0], "example.org", login)


def test_policy_normalizes_logins() -> None:
    policy = AdminPolicy.create(["Admin@Example.ORG", " ", "EXAMPLE\\root"])
    assert policy.admin("admin@example.org") == "admin@example.org"
    assert policy.admin("example.org\\ADMIN") == "admin@example.org"  # DOMAIN\\user form
    assert policy.admin("root@example") == "root@example"
    assert policy.admin("bob@example.org") is None
    obm = AdminPolicy.create([], default_domain="global.virt", open_to_backend=True)
    assert obm.admin("admin0") == "admin0@global.virt"
    assert obm.key_admin("admin0") is None


@pytest_twisted.ensureDeferred
async def test_password_checker_asks_backend_only_for_admins() -> None:
    auth = Auth()
    checker = AdminPasswordChecker(auth, AdminPolicy.create(["alice@example.org"]))
    assert (
        await checker.requestAvatarId(UsernamePassword(b"alice@example.org", b"secret"))
        == b"alice@example.org"
    )
    with pytest.raises(UnauthorizedLogin):
        await checker.requestAvatarId(UsernamePassword(b"alice@example.org", b"wrong"))
    with pytest.raises(UnauthorizedLogin):
        await checker.requestAvatarId(UsernamePassword(b"bob@example.org", b"secret"))
    assert auth.calls == ["alice@example.org", "alice@example.org"]


@pytest_twisted.ensureDeferred
async def test_unreachable_backend_refuses() -> None:
    checker = AdminPasswordChecker(
        Auth(BackendUnavailable("imap down")), AdminPolicy.create(["alice@example.org"])
    )
    with pytest.raises(UnauthorizedLogin):
        await checker.requestAvatarId(UsernamePassword(b"alice@example.org", b"secret"))


def _key() -> Key:
    return Key(ed25519.Ed25519PrivateKey.generate())


@pytest_twisted.ensureDeferred
async def test_authorized_keys(tmp_path: Path) -> None:
    good, other = _key(), _key()
    path = tmp_path / "keys"
    path.write_text(
        "# comment\n\nnot a key\n"
        + 'no-pty,from="10.0.0.1" '
        + good.public().toString("OPENSSH").decode()
        + " admin\n",
        "utf-8",
    )
    assert [k.blob() for k in read_authorized_keys(path)] == [good.public().blob()]
    assert read_authorized_keys(tmp_path / "missing") == []
    checker = AuthorizedKeysChecker(path, AdminPolicy.create(["alice@example.org"]))

    def creds(user: bytes, key: Key, data: bytes | None) -> Any:
        sig = key.sign(data) if data is not None else None
        return SSHPrivateKey(user, b"ssh-ed25519", key.public().blob(), data or b"", sig)

    with pytest.raises(ValidPublicKey):
        await checker.requestAvatarId(creds(b"alice@example.org", good, None))
    assert (
        await checker.requestAvatarId(creds(b"alice@example.org", good, b"session data"))
        == b"alice@example.org"
    )
    with pytest.raises(UnauthorizedLogin):
        await checker.requestAvatarId(creds(b"alice@example.org", other, b"session data"))
    with pytest.raises(UnauthorizedLogin):
        await checker.requestAvatarId(creds(b"bob@example.org", good, b"session data"))


def test_host_key_generated_once(tmp_path: Path) -> None:
    first = load_or_create_host_key(tmp_path / "data")
    path = tmp_path / "data" / "console_host_key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_host_key(tmp_path / "data").blob() == first.blob()
