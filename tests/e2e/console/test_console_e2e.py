"""The SSH console of a real `twistd -n opush` (demo configuration, console admin
alice@example.org), driven by OpenSSH's client in batch mode: authentication, the guide's
schema texts, devices (a pyactivesync device syncs, is listed, wiped and receives the
wipe), a dashboard frame, and a start with an unusable schema (503, console only, update,
served)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_twisted
from pyactivesync import Client
from pyactivesync.exceptions import StatusError
from twisted.internet.threads import deferToThread

from opush.wbxml import E, decode, encode, ns
from tests.support.console import ssh, ssh_command
from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
T = TypeVar("T")
ADMIN = "alice@example.org"


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, dovecot: LocalServices, slapd: LocalServices
) -> Iterator[OpushServer]:
    """One server for the tests that need a working one (each starts in about 6 s)."""
    s = start_server(tmp_path_factory.mktemp("console"))
    yield s
    s.stop()


def console(server: OpushServer, *args: str, login: str = ADMIN, password: str = "secret") -> str:
    result = ssh(server.console_port, login, server.config_dir.parent, *args, password=password)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def device(server: OpushServer, user: str, device_id: str) -> Client:
    c = Client(f"127.0.0.1:{server.http_port}", user, "secret", device_id=device_id, timeout=10)
    c._transport.base_url = server.url
    return c


def test_wrong_password_and_non_admin_are_refused(server: OpushServer) -> None:
    base = server.config_dir.parent
    wrong = ssh(server.console_port, ADMIN, base, "date", password="not-secret")
    assert wrong.returncode == 255 and "Permission denied" in wrong.stderr
    # bob's password is right, but bob is not in console.admins.
    bob = ssh(server.console_port, "bob@example.org", base, "date", password="secret")
    assert bob.returncode == 255 and "Permission denied" in bob.stderr
    assert "console: bob@example.org refused, not in console.admins" in server.log_text()
    assert "not-secret" not in server.log_text()


def test_schema_status_and_commands_over_ssh(server: OpushServer) -> None:
    status = console(server, "schema", "status")
    assert status.startswith("OK\nYour schema is already at the latest version: 1 updated the ")
    assert console(server, "schema", "install") == (
        'The schema is already installed, use the "status" command to know if an update '
        "is available\n"
    )
    assert "  devices " in console(server, "help")
    assert "Twisted:" in console(server, "runtime")
    system = console(server, "system")
    assert "opush.ini: backend = standalone" in system
    # A failed command prints its error and the session goes on (plain shell, no terminal).
    result = ssh(
        server.console_port,
        ADMIN,
        server.config_dir.parent,
        password="secret",
        stdin="devices show nobody@example.org NOPE\ndate\n",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "ERROR: no device 'NOPE' registered for 'nobody@example.org'"
    assert len(lines) == 2 and lines[1].endswith(time.strftime("%Y"))


@pytest_twisted.ensureDeferred
async def test_device_listed_then_wiped_through_the_console(
    server: OpushServer, fresh_user: str
) -> None:
    c = device(server, fresh_user, "CONSOLEWIPE1")
    await blocking(c.provision)
    await blocking(c.list_folders)
    listing = await blocking(lambda: console(server, "devices", "list", fresh_user))
    row = next(line for line in listing.splitlines() if "CONSOLEWIPE1" in line)
    assert row.split()[:2] == [fresh_user.lower(), "CONSOLEWIPE1"]
    assert "provisioned" in row

    wiped = await blocking(lambda: console(server, "devices", "wipe", fresh_user, "CONSOLEWIPE1"))
    assert wiped.startswith("Remote wipe requested for device CONSOLEWIPE1")
    # The next request is told to provision (MS-ASPROV: 140 RemoteWipeRequested) ...
    with pytest.raises(StatusError) as err:
        await blocking(c.list_folders)
    assert err.value.code == "140"
    # ... and Provision carries the RemoteWipe.
    body = encode(
        E(
            ns.PROVISION,
            "Provision",
            E(
                ns.PROVISION,
                "Policies",
                E(
                    ns.PROVISION,
                    "Policy",
                    E(ns.PROVISION, "PolicyType", text="MS-EAS-Provisioning-WBXML"),
                ),
            ),
        )
    )
    reply = decode(await blocking(lambda: c._post("Provision", body)))
    assert reply.find(f"{{{ns.PROVISION}}}RemoteWipe") is not None
    shown = await blocking(lambda: console(server, "devices", "show", fresh_user, "CONSOLEWIPE1"))
    assert "wipe:" in shown and "wipe-pending (requested by alice@example.org" in shown


def test_dashboard_frame_and_quit(server: OpushServer) -> None:
    frame = console(server, "dashboard")
    assert frame.startswith("opush dashboard  ")
    assert "COMMAND" in frame and "REQ/S" in frame and "Devices:" in frame
    # On a terminal: live frames until q.
    argv, env = ssh_command(
        server.console_port, ADMIN, server.config_dir.parent, password="secret", tty=True
    )
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None
    try:
        time.sleep(1.5)
        proc.stdin.write(b"dashboard\r")
        proc.stdin.flush()
        time.sleep(2.5)
        proc.stdin.write(b"q")
        proc.stdin.flush()
        time.sleep(0.5)
        # Line editing and history: type "dat", fix it, run; then up-arrow + return again.
        proc.stdin.write(b"dat\x7fte\r")
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(b"\x1b[A\r")
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(b"exit\r")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode("utf-8", "replace")
    assert "Logged in as alice@example.org" in text
    assert text.count("\x1b[H\x1b[2Jopush dashboard") >= 2
    assert len(re.findall(r"\d\d:\d\d:\d\d \S+ \d{4}\r\n", text)) == 2, text
    assert proc.returncode == 0


def test_start_with_unusable_schema_serves_console_only_until_updated(
    tmp_path: Path, dovecot: LocalServices, slapd: LocalServices
) -> None:
    # An install interrupted before its first version was recorded: too old to serve.
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "opush.sqlite") as db:
        db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, updated TEXT)")
    server = start_server(tmp_path, wait_ready=False)  # it never gets ready by itself
    try:
        assert _wait_for(server, "SSH console listening")
        assert _wait_for(server, "starting administration services only")
        assert "Embedded schema too old, starting administration services only" in (
            server.log_text()
        )
        c = device(server, ADMIN, "CONSOLESCHEMA1")
        with pytest.raises(Exception) as refused:
            c.provision()
        assert "503" in str(refused.value)
        assert console(server, "schema", "status") == (
            "WARN: Update required\n"
            "This opush server IS NOT compatible with the current schema, please update it\n"
            "Current: None\n"
            "Latest : 1\n"
        )
        assert console(server, "schema", "update") == (
            "Your schema has been updated from version None to 1, "
            "please restart opush to get the service up\n"
        )
        assert console(server, "schema", "status").startswith("OK\n")
        # Served without a restart: the HTTP listener was up all along.
        assert c.provision()
    finally:
        server.stop()


def _wait_for(server: OpushServer, text: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log_text():
            return True
        time.sleep(0.1)
    return False
