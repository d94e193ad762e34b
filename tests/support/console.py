"""Helpers for the console tests: a recording terminal, and a real OpenSSH client run in
batch mode (password through SSH_ASKPASS, host key not remembered)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from twisted.internet.defer import Deferred


class RecordingTerminal:
    """`opush.console.commands.Terminal` keeping what was written; keys are fed by tests."""

    def __init__(self, admin: str = "admin@example.org", interactive: bool = False) -> None:
        self.admin = admin
        self.interactive = interactive
        self.output: list[str] = []
        self.key_waiters: list[Deferred[str]] = []

    def write(self, text: str) -> None:
        self.output.append(text)

    def size(self) -> tuple[int, int]:
        return 120, 40

    def wait_for_key(self) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.key_waiters.append(d)
        return d

    def press(self, key: str) -> None:
        waiters, self.key_waiters = self.key_waiters, []
        for d in waiters:
            d.callback(key)

    @property
    def text(self) -> str:
        return "".join(self.output)


def ssh_command(
    port: int,
    login: str,
    base: Path,
    *,
    password: str | None = None,
    identity: Path | None = None,
    tty: bool = False,
    args: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for OpenSSH's ssh against the console on 127.0.0.1:port."""
    env = dict(os.environ)
    argv = [
        "ssh",
        "-p",
        str(port),
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=10",
        "-F",
        "/dev/null",
    ]
    if identity is not None:
        argv += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(identity)]
        argv += ["-o", "PreferredAuthentications=publickey"]
    else:
        askpass = base / "askpass.sh"
        askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{password or ''}'\n", "utf-8")
        askpass.chmod(0o700)
        env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        argv += ["-o", "PreferredAuthentications=password", "-o", "NumberOfPasswordPrompts=1"]
        argv += ["-o", "PubkeyAuthentication=no"]
    argv.append("-tt" if tty else "-T")
    argv += ["-l", login, "127.0.0.1", *args]
    return argv, env


def ssh(
    port: int,
    login: str,
    base: Path,
    *args: str,
    password: str | None = None,
    identity: Path | None = None,
    stdin: str | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess[str]:
    """Run one ssh (blocking; call it in a thread from reactor code)."""
    argv, env = ssh_command(
        port, login, base, password=password, identity=identity, args=list(args)
    )
    return subprocess.run(
        argv,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        start_new_session=True,
    )
