"""The obm profile's components from the configuration (called by opush.profiles.obm).

Startup follows the Java server: the OBM database is checked first (``Checking for database
connection...``; OP-237: on failure ``Cannot get database connection, verify your
configuration then restart opush`` and exit 1); ``dbtype=MYSQL`` is refused by the
configuration loader.  obm-sync is found through obm-locator (``sync/obm_sync``), IMAP and
SMTP too unless mail_conf.ini names them.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred

from opush.backends.obmsync.auth import ObmSyncAuth, ObmSyncConsoleAuth
from opush.backends.obmsync.client import ObmSyncClient
from opush.backends.obmsync.hosts import LocatedMailBackend, MailHosts
from opush.backends.obmsync.locator import OBM_SYNC, Locator, obm_sync_services_url
from opush.backends.obmsync.pim import pim_services
from opush.backends.obmsync.transport import AgentTransport
from opush.config import Config
from opush.log import logger
from opush.storage.obmdb import (
    DB_CHECK_FAILED,
    DatabaseSettings,
    ObmDatabase,
    ObmDeviceRegistry,
    check_database,
    schema_statements,
)

log = logger("CONTAINER")


def database_settings(config: Config) -> DatabaseSettings:
    o = config.opush
    if o.host is None or o.db is None or o.user is None:
        raise ValueError("host, db and user are required in the obm profile")
    return DatabaseSettings(
        host=o.host,
        port=o.db_port,
        dbname=o.db,
        user=o.user,
        password=o.password,
        max_connections=o.database_max_connection_pool_size,
        ssl=o.database_postgres_ssl_enabled,
        ssl_non_validating=o.database_postgres_ssl_non_validating_factory,
        statement_timeout_seconds=o.transaction_timeout_seconds,
    )


def prepare_database(settings: DatabaseSettings, *, install: bool = True) -> None:
    """The startup check (blocking, before anything listens); exits 1 like the Java server."""
    log.info("Checking for database connection...")
    problem = check_database(settings)
    if problem is None and install:
        problem = _install(settings)
    if problem is not None:
        log.error("{message}: {problem}", message=DB_CHECK_FAILED, problem=problem)
        sys.stderr.write(f"opush: {DB_CHECK_FAILED} ({problem})\n")
        raise SystemExit(1)


def _install(settings: DatabaseSettings) -> str | None:
    """opush's own tables next to OBM's (CREATE TABLE IF NOT EXISTS)."""
    import psycopg2

    try:
        conn = psycopg2.connect(**settings.connect_kwargs())
    except psycopg2.Error as e:
        return str(e).strip()
    try:
        with conn, conn.cursor() as cur:
            for statement in schema_statements():
                cur.execute(statement)
    except psycopg2.Error as e:
        return f"cannot create opush's tables: {str(e).strip()}"
    finally:
        conn.close()
    return None


class _Closer:
    """OpushService closes stores by calling close() and awaiting a Deferred."""

    def __init__(self, client: ObmSyncClient, transport: AgentTransport) -> None:
        self.client, self.transport = client, transport

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        await self.client.close()
        await self.transport.close()


def build(
    config: Config,
    reactor: Any,
    *,
    services_url: str | None = None,
    locator_base_url: str | None = None,
    check_db: bool = True,
) -> dict[str, Any]:
    """Every obm profile component, by name: auth, mail, devices, services, closeables.

    ``services_url`` bypasses obm-locator for obm-sync (the Java ``-DobmSyncHost``);
    ``locator_base_url`` replaces ``http://<host>:8084/obm-locator/location/host``.
    """
    o = config.opush
    settings = database_settings(config)
    if check_db:
        prepare_database(settings)
    transport = AgentTransport(reactor, connect_timeout=float(o.locator_client_timeout_seconds))
    locator = Locator(
        transport,
        reactor,
        o.host or "localhost",
        cache_seconds=o.locator_cache_timeout_seconds,
        timeout=float(o.locator_client_timeout_seconds),
        base_url=locator_base_url,
    )

    async def obm_sync_url(login_at_domain: str) -> str:
        return obm_sync_services_url(await locator.locate(*OBM_SYNC, login_at_domain))

    client = ObmSyncClient(transport, reactor, services_url or obm_sync_url)
    mail_conf = config.mail
    hosts = MailHosts(
        locator,
        imap_host=mail_conf.imap_host,
        imap_port=mail_conf.imap_port,
        smtp_host=mail_conf.smtp_host,
        smtp_port=mail_conf.smtp_port,
    )
    from opush.profiles.standalone import imap_settings, mail_backend, oof_services

    mail = LocatedMailBackend(
        hosts, lambda host: mail_backend(config, reactor, imap_settings(config, host))
    )
    from opush.backends.smtp import SmtpClient, settings_from_config

    # SMTP: smtp.host when set, else obm-locator's mail/smtp_out for the sending user.
    smtp = SmtpClient(reactor, settings_from_config(config), locate=hosts.smtp)
    devices = ObmDeviceRegistry(ObmDatabase(settings, reactor), reactor)
    return {
        "auth": ObmSyncAuth(client),
        "mail": mail,
        "devices": devices,
        "services": {
            "obm_sync": client,
            "locator": locator,
            "mail_hosts": hosts,
            "smtp": smtp,
            "console_auth": ObmSyncConsoleAuth(
                client, config.console.console_authentication_domain
            ),
            # Calendars, address books: sync, folder and push sources, MeetingResponse hook.
            **pim_services(client),
            **oof_services(config, reactor),
        },
        "closeables": [_Closer(client, transport), devices],
    }
