"""A whole opush of the obm profile in process: the obm-sync/obm-locator double over HTTP,
OBM's tables in a fresh PostgreSQL database, mail on the local Dovecot and Postfix, built by
``opush.backends.obmsync.profile.build`` exactly as ``twistd opush`` builds it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest_twisted
from twisted.internet import reactor

from opush.backends.obmsync.profile import build
from opush.config import load
from opush.http.site import make_site
from opush.push import install as install_push
from opush.runtime import FrontDoorSettings, Runtime
from tests.integration.obm.conftest import RunningDouble, obm_db, obm_sync
from tests.support.config import write_config
from tests.support.services import LocalServices
from tests.support.storage import embedded_store

__all__ = ["ObmPimServer", "obm_db", "obm_pim_server", "obm_sync"]


@attrs.define
class ObmPimServer:
    port: int
    obm: RunningDouble
    db: dict[str, Any]
    runtime: Runtime
    services: LocalServices

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def _config(tmp_path: Path, db: dict[str, Any], services: LocalServices) -> Path:
    opush_ini = {
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
    }
    mail_ini = {
        "imap.host": services.host,
        "imap.port": str(services.imap_port),
        "imap.activateTLS": "false",
        "smtp.host": services.host,
        "smtp.port": str(services.smtp_port),
        "smtp.activateTLS": "false",
    }
    (tmp_path / "data").mkdir(exist_ok=True)
    return write_config(
        tmp_path / "etc",
        {
            "opush.ini": "".join(f"{k}={v}\n" for k, v in opush_ini.items()),
            "mail_conf.ini": "".join(f"{k}={v}\n" for k, v in mail_ini.items()),
        },
    )


@pytest_twisted.async_yield_fixture
async def obm_pim_server(
    tmp_path: Path,
    obm_sync: RunningDouble,
    obm_db: dict[str, Any],
    postfix: LocalServices,
) -> AsyncIterator[ObmPimServer]:
    r: Any = reactor
    config = load(_config(tmp_path, obm_db, postfix))
    parts = build(config, r, services_url=obm_sync.services_url)
    store = await embedded_store(tmp_path, clock=r)
    runtime = Runtime(
        clock=r,
        auth=parts["auth"],
        devices=parts["devices"],
        state=store,
        mail=parts["mail"],
        config=config,
        settings=FrontDoorSettings.from_config(config),
    )
    runtime.services.update(parts["services"])
    hub = install_push(runtime)
    # obm-sync is polled for push; every 30 s in production, quicker here.
    hub.settings = attrs.evolve(hub.settings, poll_interval=0.3)
    port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
    try:
        yield ObmPimServer(port.getHost().port, obm_sync, obm_db, runtime, postfix)
    finally:
        await port.stopListening()
        for closeable in parts["closeables"]:
            await closeable.close()
        shutdown = getattr(parts["mail"], "shutdown", None)
        if shutdown is not None:
            await shutdown()
        await store.close()
