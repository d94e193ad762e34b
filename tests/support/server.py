"""A real `twistd -n opush` process for end-to-end tests.

The server runs the demo (standalone) configuration copied into a temporary directory, with
its own data and log directories and free ports, so tests never share state with a demo
run or with each other's servers.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[2]
DEMO_CONF = REPO / "conf" / "demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config_dir(base: Path, overrides: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """conf/demo copied under `base`, data and logs under `base`, then `overrides`
    ({"opush.ini": {"key": "value"}}) applied, replacing or adding keys."""
    conf = base / "conf"
    shutil.copytree(DEMO_CONF, conf)
    changes: dict[str, dict[str, str]] = {
        "opush.ini": {"data-dir": str(base / "data"), "log-dir": str(base / "log")}
    }
    for name, values in (overrides or {}).items():
        changes.setdefault(name, {}).update(values)
    for name, values in changes.items():
        path = conf / name
        text = path.read_text("utf-8") if path.exists() else ""
        for key, value in values.items():
            pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.MULTILINE)
            line = f"{key}={value}"
            if pattern.search(text):
                text = pattern.sub(lambda _m, line=line: line, text)
            else:
                text = text.rstrip("\n") + f"\n{line}\n"
        path.write_text(text, "utf-8")
    return conf


@attrs.define
class OpushServer:
    """A started server: `url` is the EAS URL, `base_url` the site root."""

    process: subprocess.Popen[bytes]
    http_port: int
    console_port: int
    config_dir: Path
    log_dir: Path
    output: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/Microsoft-Server-ActiveSync"

    def log_text(self) -> str:
        path = self.log_dir / "opush.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def twistd() -> str:
    return str(Path(sys.executable).parent / "twistd")


def _serves_devices(server: OpushServer) -> bool:
    """Device requests are past the schema gate (503 until the state store is ready)."""
    request = urllib.request.Request(
        f"{server.url}?Cmd=FolderSync&User=probe&DeviceId=probe&DeviceType=probe",
        data=b"",
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=2)
    except urllib.error.HTTPError as e:
        return e.code != 503
    return True


def start_server(
    base: Path,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    *,
    wait_ready: bool = True,
    timeout: float = 20.0,
) -> OpushServer:
    """Start `twistd -n opush` on free ports; waits until the healthcheck answers and device
    requests are served (schema installed), or raises with the server's output."""
    conf = make_config_dir(base, overrides)
    http_port, console_port = free_port(), free_port()
    output = base / "twistd.out"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen(
        [
            twistd(),
            "-n",
            "--pidfile=",
            "opush",
            "--config-dir",
            str(conf),
            "--http",
            f"tcp:{http_port}:interface=127.0.0.1",
            "--console",
            f"tcp:{console_port}:interface=127.0.0.1",
        ],
        stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=str(base),
        env=env,
    )
    server = OpushServer(process, http_port, console_port, conf, base / "log", output)
    if not wait_ready:
        return server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"twistd opush exited with {process.returncode}:\n"
                + output.read_text("utf-8", "replace")
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/opush/healthcheck/", timeout=1):
                pass
            if _serves_devices(server):
                return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("twistd opush did not answer:\n" + output.read_text("utf-8", "replace"))
