"""OBM database for tests: OBM's DDL (tests/support/obm_ddl.sql) in a fresh PostgreSQL
database, demo domain and users, and an installed `ObmDeviceRegistry` on a fake clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import psycopg2

from opush.storage.interfaces import STATE_TTL
from opush.storage.obmdb import DatabaseSettings, ObmDatabase, ObmDeviceRegistry
from tests.support.storage import Backend, embedded_store, fake_clock

DDL = Path(__file__).with_name("obm_ddl.sql")


def settings_for(params: dict[str, Any], max_connections: int = 4) -> DatabaseSettings:
    return DatabaseSettings(
        host=params["host"],
        port=int(params["port"]),
        dbname=params["dbname"],
        user=params["user"],
        password=params.get("password"),
        max_connections=max_connections,
    )


def load_obm_ddl(params: dict[str, Any]) -> None:
    """OBM's tables, in a database that has none yet."""
    with psycopg2.connect(**params) as conn, conn.cursor() as cur:
        cur.execute(DDL.read_text())
    conn.close()


def ensure_user(params: dict[str, Any], login_at_domain: str, *, email: str | None = None) -> int:
    """The userobm_id of ``login@domain``, creating the domain and the user if needed."""
    login, _, domain = login_at_domain.partition("@")
    conn = psycopg2.connect(**params)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT domain_id FROM domain WHERE domain_name = %s", (domain,))
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO domain (domain_label, domain_name, domain_uuid) "
                    "VALUES (%s, %s, %s) RETURNING domain_id",
                    (domain[:32], domain, str(uuid.uuid4())),
                )
                row = cur.fetchone()
            assert row is not None
            domain_id = row[0]
            cur.execute(
                "SELECT userobm_id FROM userobm WHERE userobm_login = %s "
                "AND userobm_domain_id = %s",
                (login, domain_id),
            )
            found = cur.fetchone()
            if found is not None:
                return int(found[0])
            cur.execute(
                "INSERT INTO userobm (userobm_domain_id, userobm_login, userobm_email) "
                "VALUES (%s, %s, %s) RETURNING userobm_id",
                (domain_id, login, email or login),
            )
            created = cur.fetchone()
            assert created is not None
            return int(created[0])
    finally:
        conn.close()


def sql(
    params: dict[str, Any], statement: str, args: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Run one statement as obm-ui would (its own connection, committed)."""
    conn = psycopg2.connect(**params)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, args)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


async def obm_registry(params: dict[str, Any], clock: Any) -> ObmDeviceRegistry:
    """A registry on a database that already has OBM's tables; opush's own ones installed."""
    registry = ObmDeviceRegistry(ObmDatabase(settings_for(params)), clock)
    await registry.install_schema()
    return registry


@attrs.define
class ObmBackend(Backend):
    """A contract-suite backend whose users exist in ``userobm`` (created on first use)."""

    params: dict[str, Any] = attrs.field(factory=dict)

    def user(self, name: str) -> str:
        address = super().user(name)
        ensure_user(self.params, address)
        return address


async def obm_backend(params: dict[str, Any], tmp_path: Path) -> AsyncIterator[Backend]:
    """The contract suite's "obmdb" backend: registry over OBM's tables, state embedded."""
    clock = fake_clock()
    load_obm_ddl(params)
    registry = await obm_registry(params, clock)
    store = await embedded_store(tmp_path, clock)

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    yield ObmBackend(
        "obmdb",
        store,
        registry,
        STATE_TTL.total_seconds(),
        advance,
        lambda: datetime.fromtimestamp(clock.seconds(), UTC),
        params=params,
    )
    await registry.close()
    await store.close()
