"""Builds opush's .deb for real (packaging/build-deb = dpkg-buildpackage -us -uc -b in a temporary
copy of the checkout) and checks what an administrator gets: metadata, conffiles, the systemd
unit, the twistd plugin, and a `twistd opush --help` that runs from the unpacked package.

Dependencies come from a wheelhouse cached in var/wheelhouse (filled from the package index on
the first run), so later builds are offline; the .deb is left uncompressed
(OPUSH_DEB_COMPRESSION=none) to save time. About 35 s on an idle 2-core machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import opush

TOP = Path(__file__).resolve().parents[3]
WHEELHOUSE = TOP / "var" / "wheelhouse"
VENV = "usr/lib/opush"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    missing = [t for t in ("dpkg-buildpackage", "dh", "fakeroot") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/bootstrap installs them)")
    out = tmp_path_factory.mktemp("deb")
    result = subprocess.run(
        [str(TOP / "packaging" / "build-deb"), "--wheelhouse", str(WHEELHOUSE), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OPUSH_DEB_COMPRESSION": "none"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    debs = list(out.glob("opush_*.deb"))
    assert len(debs) == 1, debs
    yield debs[0]


@pytest.fixture(scope="module")
def root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package unpacked into a scratch root (dpkg -x: no maintainer scripts run)."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    return root


def dpkg_deb(*args: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def control_fields(deb: Path) -> dict[str, str]:
    fields = {}
    for line in dpkg_deb("-f", str(deb)).splitlines():
        if line[:1].strip() and ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields


def test_deb_metadata(deb: Path) -> None:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert deb.name == f"opush_{opush.__version__}_{arch}.deb"
    fields = control_fields(deb)
    assert fields["Package"] == "opush"
    assert fields["Version"] == opush.__version__
    depends = [d.strip().split()[0] for d in fields["Depends"].split(",")]
    assert "python3.11" in depends and "adduser" in depends and "libc6" in depends


def test_deb_conffiles_and_files(deb: Path) -> None:
    conffiles = set(dpkg_deb("-I", str(deb), "conffiles").split())
    samples = {p.name for p in (TOP / "conf").iterdir() if p.suffix in (".ini", ".xml")}
    assert {f"/etc/opush/{name}" for name in samples} <= conffiles
    assert "/etc/apache2/conf-available/opush.conf" in conffiles
    files = {line.split()[-1].removeprefix(".") for line in dpkg_deb("-c", str(deb)).splitlines()}
    assert "/lib/systemd/system/opush.service" in files
    assert f"/{VENV}/bin/twistd" in files
    assert f"/{VENV}/lib/python3.11/site-packages/twisted/plugins/opush_plugin.py" in files
    # The private venv carries no pip, and no test data from the repository.
    assert not any("/site-packages/pip/" in f for f in files)
    assert not any("corpus" in f or "/tests/e2e/" in f for f in files)
    postinst = dpkg_deb("-I", str(deb), "postinst")
    assert "adduser --system" in postinst and "/var/log/opush" in postinst


def test_unpacked_deb_runs_twistd_opush(root: Path, tmp_path: Path) -> None:
    venv = root / VENV
    # Shebangs and pyvenv.cfg name the installed location, not the build directory.
    assert (venv / "bin" / "twistd").read_text().splitlines()[0] == f"#!/{VENV}/bin/python"
    assert "build" not in (venv / "pyvenv.cfg").read_text()
    # bin/python3.11 is a relative link to /usr/bin/python3.11: give the scratch root one.
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "bin" / "python3.11").symlink_to("/usr/bin/python3.11")
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(venv / "bin" / "python"), str(venv / "bin" / "twistd"), "opush", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "--config-dir" in result.stdout and "/etc/opush" in result.stdout
    # The installed code is the packaged one, not the checkout's.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import opush; print(opush.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where


def test_packaged_unit_passes_systemd_analyze(root: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    unit = (root / "lib/systemd/system/opush.service").read_text()
    twistd = root / VENV / "bin" / "twistd"
    assert os.access(twistd, os.X_OK)
    # verify checks ExecStart's program: point it at the unpacked one.
    checked = tmp_path / "opush.service"
    checked.write_text(unit.replace(f"/{VENV}/bin/twistd", str(twistd)))
    result = subprocess.run(
        [analyze, "verify", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if str(checked) in line] == []
