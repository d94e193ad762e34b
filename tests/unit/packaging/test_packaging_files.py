"""The packaging files agree with the code and the administrator guide (fast checks, no build).

The .deb itself is built and inspected by tests/integration/packaging/test_deb_build.py.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import opush

TOP = Path(__file__).resolve().parents[3]
PACKAGING = TOP / "packaging"
UNIT = PACKAGING / "systemd" / "opush.service"
SPEC = PACKAGING / "rpm" / "opush.spec"
DEBIAN = PACKAGING / "debian"
CONF_FILES = sorted(p.name for p in (TOP / "conf").iterdir() if p.suffix in (".ini", ".xml"))


def unit_service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser["Service"]


def test_versions_follow_opush_version() -> None:
    changelog = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert changelog.startswith(f"opush ({opush.__version__}) ")
    spec_version = re.search(r"^Version:\s*(\S+)$", SPEC.read_text(), re.M)
    assert spec_version is not None and spec_version.group(1) == opush.__version__


def test_unit_runs_twistd_opush_as_opush() -> None:
    service = unit_service()
    assert service["ExecStart"] == (
        "/usr/lib/opush/bin/twistd --nodaemon --pidfile= opush --config-dir /etc/opush"
    )
    assert service["User"] == "opush"
    assert service["Restart"] == "on-failure"
    # 10,000 held Pings need a socket each, plus their IMAP watchers.
    assert int(service["LimitNOFILE"]) >= 20_000


def test_unit_hardening_leaves_state_and_logs_writable() -> None:
    service = unit_service()
    assert service["ProtectSystem"] == "strict"
    writable = service["ReadWritePaths"].split()
    assert "/var/lib/opush" in writable and "/var/log/opush" in writable
    assert service["StateDirectory"] == "opush" and service["LogsDirectory"] == "opush"
    assert "network.target" in UNIT.read_text().split("After=", 1)[1].splitlines()[0]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    # verify checks that ExecStart's program exists: point it at the checkout's twistd.
    twistd = TOP / ".venv" / "bin" / "twistd"
    if not twistd.exists():
        pytest.skip(f"{twistd} not found (run scripts/bootstrap)")
    unit = tmp_path / "opush.service"
    unit.write_text(UNIT.read_text().replace("/usr/lib/opush/bin/twistd", str(twistd)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for unknown keys or bad values: it only warns on stderr.
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if str(unit) in line] == []


def test_deb_installs_every_sample_config_file() -> None:
    install = (DEBIAN / "opush.install").read_text().split()
    assert "conf/*.ini" in install and "conf/logback.xml" in install
    assert "packaging/systemd/opush.service" in install
    assert {"logback.xml", "opush.ini", "mail_conf.ini"} <= set(CONF_FILES)


def test_maintainer_scripts_are_valid_sh() -> None:
    for script in ("opush.postinst", "opush.prerm", "opush.postrm"):
        path = DEBIAN / script
        subprocess.run(["sh", "-n", str(path)], check=True, timeout=10)
        assert path.read_text().count("#DEBHELPER#") == 1, script


def test_apache_snippet_publishes_the_guide_urls() -> None:
    text = (PACKAGING / "apache" / "opush.conf").read_text()
    assert re.search(
        r"^\s*ProxyPass /Microsoft-Server-ActiveSync http://\S+:8082/opush/ActiveSyncServlet/",
        text,
        re.M,
    )
    assert re.search(
        r"^\s*ProxyPassMatch \(\?i:/autodiscover\) http://\S+:8082/opush/Autodiscover/", text, re.M
    )
    # Pings are held up to push.heartbeat.max = 3540 s: the proxy must wait longer.
    timeouts = [int(t) for t in re.findall(r"ActiveSyncServlet/ timeout=(\d+)", text)]
    assert timeouts and min(timeouts) > 3540


def test_rpm_spec_parses_and_marks_config_noreplace() -> None:
    rpmspec = shutil.which("rpmspec")
    if rpmspec is None:
        pytest.skip("rpmspec not installed (Debian package rpm)")
    result = subprocess.run([rpmspec, "-P", str(SPEC)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    parsed = result.stdout
    assert "%config(noreplace) %attr(0640,root,opush) /etc/opush/*.ini" in parsed
    assert "/usr/lib/systemd/system/opush.service" in parsed
    assert "useradd --system" in parsed
