"""`twistd opush` as an admin runs it: options, startup, configuration errors, OPTIONS."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest
from twisted.application.service import IServiceCollection
from twisted.internet.testing import MemoryReactorClock

from opush import tap
from tests.support.server import make_config_dir, start_server, twistd

pytestmark = pytest.mark.e2e


def test_help_documents_the_options() -> None:
    out = subprocess.run(
        [twistd(), "opush", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--config-dir", "--http", "--console", "/etc/opush", "tcp:8082"):
        assert option in out


def test_starts_logs_configuration_and_answers_options(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        request = urllib.request.Request(server.url, method="OPTIONS")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
            headers = response.headers
        versions = headers["MS-ASProtocolVersions"].split(",")
        assert {"12.1", "14.1", "16.1"} <= set(versions)
        commands = headers["MS-ASProtocolCommands"].split(",")
        assert "Provision" in commands
        assert "OPTIONS" in headers["Allow"] and "POST" in headers["Allow"]
        assert headers["MS-Server-ActiveSync"]
        log = server.log_text()
        assert "{CONFIGURATION}" in log
        assert "mail_conf.ini: imap.host = 127.0.0.1" in log
        with urllib.request.urlopen(server.base_url + "/opush/healthcheck/", timeout=5) as r:
            assert r.read() == b"OK"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.base_url + "/nowhere", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()


def test_three_mistakes_in_two_files_are_all_reported(tmp_path: Path) -> None:
    conf = make_config_dir(
        tmp_path,
        {
            "opush.ini": {"window-size": "many", "push.heartbeat.min": "-5"},
            "mail_conf.ini": {"imap.timeoutInMs": "soon"},
        },
    )
    result = subprocess.run(
        [twistd(), "-n", "--pidfile=", "opush", "--config-dir", str(conf), "--http", "tcp:0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    errors = result.stderr + result.stdout
    assert "opush.ini: key 'window-size'" in errors
    assert "opush.ini: key 'push.heartbeat.min'" in errors
    assert "mail_conf.ini: key 'imap.timeoutInMs'" in errors
    assert "listening" not in errors.lower() and "starting on" not in errors


def test_make_service_builds_an_inspectable_tree(tmp_path: Path) -> None:
    conf = make_config_dir(tmp_path)
    options = tap.Options()
    options.parseOptions(["--config-dir", str(conf), "--http", "tcp:18999"])
    root = tap.makeService(options, MemoryReactorClock())
    assert IServiceCollection.providedBy(root)
    names = {service.name for service in root}
    assert "http" in names
    assert not root.running
