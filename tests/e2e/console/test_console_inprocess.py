"""The console service in this process (real reactor, real OpenSSH client) over an embedded
store whose schema is not installed: ``schema status`` before and after ``install``, device
requests refused then served, public-key and password logins."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from opush.backends.interfaces import AuthenticationFailed, UserIdentity
from opush.config.sections import Backend, Storage
from opush.console.service import make_console_service
from opush.http.metrics import Metrics
from opush.storage.startup import REFUSE_DEVICES, check_schema_at_startup
from tests.support.console import ssh
from tests.support.server import free_port
from tests.support.storage import embedded_store

pytestmark = pytest.mark.e2e


class PasswordAuth:
    """Stands for the profile's Auth: one user, one password."""

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        if (login, password) != ("root@example.org", "hunter2"):
            raise AuthenticationFailed("bad credentials")
        return UserIdentity("root", "example.org", "root@example.org")


def keypair(base: Path) -> Path:
    key = base / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@pytest_twisted.ensureDeferred
async def test_schema_install_from_the_console_serves_devices(tmp_path: Path) -> None:
    r: Any = reactor
    store = await embedded_store(tmp_path, clock=r, install=False)
    key = keypair(tmp_path)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(
        "# admins\n" + 'from="127.0.0.1" ' + key.with_suffix(".pub").read_text(), "utf-8"
    )
    config = SimpleNamespace(
        opush=SimpleNamespace(
            storage=Storage.EMBEDDED, backend=Backend.STANDALONE, data_dir=tmp_path / "data"
        ),
        console=SimpleNamespace(
            console_admins=("root@example.org",),
            console_authentication_domain="global.virt",
            console_authorized_keys=authorized,
        ),
    )
    runtime = SimpleNamespace(
        clock=r,
        auth=PasswordAuth(),
        state=store,
        devices=store,
        services={"site": SimpleNamespace(metrics=Metrics())},
    )
    await check_schema_at_startup(runtime, config, install_embedded=False)
    assert REFUSE_DEVICES in runtime.services
    port = free_port()
    service: Any = make_console_service(config, runtime, f"tcp:{port}:interface=127.0.0.1", r)
    service.startService()
    assert (tmp_path / "data" / "console_host_key").exists()

    def console(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return ssh(port, "root@example.org", tmp_path, *args, **kw)

    try:
        before = await deferToThread(console, "schema", "status", identity=key)
        assert before.returncode == 0, before.stderr
        assert before.stdout == (
            "WARN: Install required\n"
            'No schema found, you can create it using the "install" command\n'
            "The latest schema version available is 1\n"
        )
        installed = await deferToThread(console, "schema", "install", password="hunter2")
        assert installed.stdout == (
            "Schema version 1 has been installed, please restart opush to get the service up\n"
        )
        after = await deferToThread(console, "schema", "status", password="hunter2")
        assert after.stdout.startswith(
            "OK\nYour schema is already at the latest version: 1 updated the "
        )
        assert REFUSE_DEVICES not in runtime.services
        wrong = await deferToThread(console, "date", password="hunter3")
        assert wrong.returncode == 255
        # A key not in the file does not log in.
        other = keypair(tmp_path / "other") if (tmp_path / "other").mkdir() is None else None
        assert other is not None
        refused = await deferToThread(console, "date", identity=other)
        assert refused.returncode == 255
    finally:
        await service.stopService()
        await store.close()
