"""Starting opush in the obm profile: the database check (OP-237), opush's own tables next to
OBM's, MYSQL refused, and the components the profile wires."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from opush.backends.obmsync import ObmSyncAuth, ObmSyncClient, ObmSyncConsoleAuth
from opush.backends.obmsync.hosts import LocatedMailBackend
from opush.backends.smtp import SmtpClient
from opush.config import ConfigError, load
from opush.storage.obmdb import DB_CHECK_FAILED, ObmDeviceRegistry
from opush.tap import build_runtime
from tests.support.config import write_config
from tests.support.obmdb import sql

pytestmark = pytest.mark.integration


def _obm_config(tmp_path: Path, db: dict[str, Any], **extra: str) -> Path:
    lines = {
        "backend": "obm",
        "host": str(db["host"]),
        "port": str(db["port"]),
        "dbtype": "PGSQL",
        "db": str(db["dbname"]),
        "user": str(db["user"]),
        "password": "unused-with-trust",
        "external-url": "opush.example.org",
        "data-dir": str(tmp_path / "data"),
        "log-dir": str(tmp_path / "log"),
        **extra,
    }
    (tmp_path / "data").mkdir(exist_ok=True)
    text = "".join(f"{k}={v}\n" for k, v in lines.items())
    return write_config(tmp_path / "etc", {"opush.ini": text})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_obm_profile_wiring(tmp_path: Path, obm_db: dict[str, Any]) -> None:
    config = load(_obm_config(tmp_path, obm_db))
    runtime, stores = build_runtime(config, reactor)
    try:
        assert isinstance(runtime.auth, ObmSyncAuth)
        assert isinstance(runtime.devices, ObmDeviceRegistry)
        assert isinstance(runtime.mail, LocatedMailBackend)
        assert isinstance(runtime.services["obm_sync"], ObmSyncClient)
        smtp = runtime.services["smtp"]
        assert isinstance(smtp, SmtpClient) and smtp._locate is not None
        console = runtime.services["console_auth"]
        assert isinstance(console, ObmSyncConsoleAuth) and console.domain == "global.virt"
        tables = sql(
            obm_db,
            "SELECT to_regclass('opush_device_details') IS NOT NULL, "
            "to_regclass('opush_policy_key') IS NOT NULL",
        )
        assert tables == [(True, True)]
        device = await runtime.devices.touch_device(
            "alice@example.org", "WIRED", device_type="t", user_agent=None, protocol_version=None
        )
        assert device.user == "alice@example.org"
    finally:
        for store in stores:
            await store.close()


def test_unreachable_database_stops_opush(
    tmp_path: Path, obm_db: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(_obm_config(tmp_path, {**obm_db, "port": _free_port()}))
    with pytest.raises(SystemExit) as stop:
        build_runtime(config, reactor)
    assert stop.value.code == 1
    assert DB_CHECK_FAILED in capsys.readouterr().err
    assert DB_CHECK_FAILED == (
        "Cannot get database connection, verify your configuration then restart opush"
    )


def test_database_without_obm_tables_stops_opush(
    tmp_path: Path, fresh_pg_database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = load(_obm_config(tmp_path, fresh_pg_database))
    with pytest.raises(SystemExit):
        build_runtime(config, reactor)
    err = capsys.readouterr().err
    assert DB_CHECK_FAILED in err and "opush_device" in err


def test_mysql_is_refused(tmp_path: Path) -> None:
    db = {"host": "127.0.0.1", "port": 3306, "dbname": "obm", "user": "obm"}
    with pytest.raises(ConfigError) as err:
        load(_obm_config(tmp_path, db, dbtype="MYSQL"))
    assert any("MYSQL is not supported" in p.message for p in err.value.problems)
