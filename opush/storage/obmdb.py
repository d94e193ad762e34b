# mypy: disallow-untyped-calls=False
"""The obm profile's DeviceRegistry over OBM's PostgreSQL tables (txpostgres, never blocking).

OBM's tables keep their meaning, so obm-ui and opush agree (research obm-sync.md §5):

- a device is an ``opush_device`` row (identifier = EAS DeviceId, owner = ``userobm_id``,
  type); users are resolved through ``userobm`` + ``domain`` (``login@domain``).  When obm-ui
  deletes the row ("delete device", user removal) everything below goes with it by cascade:
  the next request registers the device again and it must provision again;
- ``opush_sync_perms`` rows authorise a device (obm-ui "Add partnership" inserts one with a
  NULL policy).  A device with any row is ALLOWED, one without follows sync_perms.ini
  (``allow.unknown.pda``), exactly the Java ``syncAuthorized``;
- policy keys: the valid key is the row with a policy and ``pending_accept=false``, the key
  being acknowledged the one with ``pending_accept=true`` (``opush_sec_policy`` rows).

What OBM's tables cannot hold (user agent, protocol version, times, DeviceInformation, wipe,
an explicit block, the random 32-bit key values) lives in opush's own tables
(``schema/obm/*.sql``), hanging off OBM's rows with ON DELETE CASCADE.  Devices never expire
here: OBM's tables have no expiry, and obm-ui manages them.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Final, TypeVar

import attrs
import psycopg2
from twisted.internet.defer import Deferred, DeferredSemaphore
from txpostgres import txpostgres

from opush.log import logger, watch
from opush.storage.interfaces import (
    Device,
    DeviceInformation,
    DeviceNotFound,
    Permission,
    StorageError,
    WipeState,
)

log = logger("CONTAINER")
T = TypeVar("T")

#: OP-237: what the Java server said (and then exited) when the database was unusable.
DB_CHECK_FAILED: Final = (
    "Cannot get database connection, verify your configuration then restart opush"
)

Cursor = Any  # txpostgres.Cursor: execute() -> Deferred[cursor], fetchall() after it


@attrs.frozen
class DatabaseSettings:
    """opush.ini's database keys (``host``, ``port``, ``db``, ``user``, ``password``...)."""

    host: str
    dbname: str
    user: str
    password: str | None = attrs.field(default=None, repr=False)
    port: int = 5432
    max_connections: int = 10
    connect_timeout: int = 10
    ssl: bool = False
    ssl_non_validating: bool = False
    #: transaction-timeout (opush.ini): a statement running longer is cancelled.
    statement_timeout_seconds: float | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "connect_timeout": self.connect_timeout,
            "application_name": "opush",
        }
        if self.password:
            kw["password"] = self.password
        if self.statement_timeout_seconds:
            kw["options"] = f"-c statement_timeout={int(self.statement_timeout_seconds * 1000)}"
        if self.ssl:
            kw["sslmode"] = "require" if self.ssl_non_validating else "verify-full"
        return kw


def check_database(settings: DatabaseSettings) -> str | None:
    """Blocking connection test for startup (before the reactor runs): None if usable, else
    why not.  Also tells whether OBM's ``opush_device`` table is there."""
    try:
        conn = psycopg2.connect(**settings.connect_kwargs())
    except psycopg2.Error as e:
        return str(e).strip() or type(e).__name__
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('opush_device'), to_regclass('userobm')")
            row = cur.fetchone()
            if row is None or row[0] is None or row[1] is None:
                return "the OBM tables (userobm, opush_device) are missing from this database"
    except psycopg2.Error as e:
        return str(e).strip() or type(e).__name__
    finally:
        conn.close()
    return None


def schema_statements() -> list[str]:
    """opush's own tables in the OBM database, idempotent (``CREATE TABLE IF NOT EXISTS``)."""
    folder = resources.files("opush.storage").joinpath("schema", "obm")
    statements = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            text = "\n".join(
                line
                for line in entry.read_text("utf-8").splitlines()
                if not line.strip().startswith("--")
            )
            statements += [s.strip() for s in text.split(";") if s.strip()]
    return statements


class ObmDatabase:
    """A small pool of txpostgres connections; broken connections are dropped and replaced."""

    def __init__(self, settings: DatabaseSettings, reactor: Any = None) -> None:
        self.settings = settings
        self._reactor = reactor
        self._idle: list[Any] = []
        self._semaphore = DeferredSemaphore(settings.max_connections)
        self._closed = False

    async def _connect(self) -> Any:
        conn = txpostgres.Connection(reactor=self._reactor)
        try:
            await conn.connect(**self.settings.connect_kwargs())
        except psycopg2.Error as e:
            raise StorageError(f"OBM database unreachable: {str(e).strip()}") from e
        return conn

    async def interaction(self, fn: Callable[[Cursor], Coroutine[Any, Any, T]]) -> T:
        """Run ``fn(cursor)`` in one transaction (rolled back if it raises)."""
        if self._closed:
            raise StorageError("OBM database closed")
        await self._semaphore.acquire()
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                with watch("SQL"):
                    # txpostgres calls back from the reactor: keep the request's
                    # context (log line prefix, breakdown) for the interaction.
                    ctx = contextvars.copy_context()
                    result: T = await conn.runInteraction(
                        lambda cur: ctx.run(Deferred.fromCoroutine, fn(cur))
                    )
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                _close_quietly(conn)
                raise StorageError(f"OBM database: {str(e).strip()}") from e
            except psycopg2.Error as e:
                self._idle.append(conn)  # rolled back, still usable
                raise StorageError(f"OBM database: {str(e).strip()}") from e
            except txpostgres.RollbackFailed as e:
                _close_quietly(conn)
                raise StorageError("OBM database: rollback failed") from e
            except BaseException:
                self._idle.append(conn)
                raise
            self._idle.append(conn)
            return result
        finally:
            self._semaphore.release()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            _close_quietly(conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass  # already broken; nothing more to do


async def _rows(cur: Cursor, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    await cur.execute(sql, args)
    try:
        return list(cur.fetchall())
    except psycopg2.ProgrammingError:  # no result set (INSERT/UPDATE/DELETE)
        return []


def _split(user: str) -> tuple[str, str]:
    login, sep, domain = user.rpartition("@")
    if not sep or not login or not domain:
        raise StorageError(f"not a login@domain: {user!r}")
    return login, domain


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


# opush_device columns + the owner's login@domain + details, for one device.
_DEVICE_SELECT: Final = """
SELECT d.id, d.identifier, d.type, u.userobm_login, dom.domain_name,
       x.user_agent, x.protocol_version, x.first_seen, x.last_seen, x.information,
       x.wipe, x.wipe_requested_by, x.wipe_requested_at, x.wipe_acknowledged_at, x.blocked,
       EXISTS (SELECT 1 FROM opush_sync_perms p WHERE p.device_id = d.id),
       (SELECT k.policy_key FROM opush_sync_perms p
         JOIN opush_policy_key k ON k.policy_id = p.policy
         WHERE p.device_id = d.id AND p.pending_accept = FALSE ORDER BY p.policy DESC LIMIT 1),
       (SELECT k.policy_key FROM opush_sync_perms p
         JOIN opush_policy_key k ON k.policy_id = p.policy
         WHERE p.device_id = d.id AND p.pending_accept = TRUE ORDER BY p.policy DESC LIMIT 1)
FROM opush_device d
JOIN userobm u ON d.owner = u.userobm_id
JOIN domain dom ON u.userobm_domain_id = dom.domain_id
LEFT JOIN opush_device_details x ON x.device_id = d.id
"""

_BY_USER: Final = "u.userobm_login = %s AND dom.domain_name = %s"


class ObmDeviceRegistry:
    """`DeviceRegistry` over OBM's tables (see the module docstring)."""

    #: Devices do not expire in OBM's tables (the contract suite reads this).
    expires = False

    def __init__(self, database: ObmDatabase, clock: Any) -> None:
        self.db = database
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)

    def _run(self, fn: Callable[[Cursor], Coroutine[Any, Any, T]]) -> Deferred[T]:
        return Deferred.fromCoroutine(self.db.interaction(fn))

    # ------------------------------------------------------------------------------ schema

    def install_schema(self) -> Deferred[None]:
        """Create opush's own tables (idempotent; OBM's tables must exist)."""

        async def go(cur: Cursor) -> None:
            for statement in schema_statements():
                await cur.execute(statement)

        return self._run(go)

    # ------------------------------------------------------------------------------ reading

    def _device(self, row: tuple[Any, ...]) -> Device:
        (
            _id,
            identifier,
            dtype,
            login,
            domain,
            agent,
            version,
            first_seen,
            last_seen,
            information,
            wipe,
            wipe_by,
            wipe_at,
            wipe_ack,
            blocked,
            has_perms,
            policy_key,
            pending_key,
        ) = row
        now = self._now()
        permission = None
        if blocked:
            permission = Permission.BLOCKED
        elif has_perms:
            permission = Permission.ALLOWED
        return Device(
            user=f"{login}@{domain}",
            device_id=identifier,
            device_type=dtype,
            user_agent=agent,
            first_seen=_utc(first_seen) or now,
            last_seen=_utc(last_seen) or now,
            protocol_version=version,
            information=DeviceInformation(**json.loads(information))
            if information
            else DeviceInformation(),
            policy_key=policy_key,
            pending_policy_key=pending_key,
            wipe=WipeState(wipe) if wipe else WipeState.NONE,
            wipe_requested_by=wipe_by,
            wipe_requested_at=_utc(wipe_at),
            wipe_acknowledged_at=_utc(wipe_ack),
            permission=permission,
        )

    async def _find(self, cur: Cursor, user: str, device_id: str) -> tuple[Any, ...] | None:
        login, domain = _split(user)
        rows = await _rows(
            cur,
            _DEVICE_SELECT + f"WHERE d.identifier = %s AND {_BY_USER} ORDER BY d.id DESC LIMIT 1",
            (device_id, login, domain),
        )
        return rows[0] if rows else None

    async def _require(self, cur: Cursor, user: str, device_id: str) -> int:
        row = await self._find(cur, user, device_id)
        if row is None:
            raise DeviceNotFound(user, device_id)
        return int(row[0])

    async def _reread(self, cur: Cursor, user: str, device_id: str) -> Device:
        row = await self._find(cur, user, device_id)
        if row is None:
            raise DeviceNotFound(user, device_id)
        return self._device(row)

    def get_device(self, user: str, device_id: str) -> Deferred[Device | None]:
        async def go(cur: Cursor) -> Device | None:
            row = await self._find(cur, user, device_id)
            return None if row is None else self._device(row)

        return self._run(go)

    def list_devices(self, user: str | None = None) -> Deferred[list[Device]]:
        async def go(cur: Cursor) -> list[Device]:
            if user is None:
                rows = await _rows(cur, _DEVICE_SELECT)
            else:
                login, domain = _split(user)
                rows = await _rows(cur, _DEVICE_SELECT + f"WHERE {_BY_USER}", (login, domain))
            latest: dict[tuple[str, str], Device] = {}
            for row in sorted(rows, key=lambda r: r[0]):
                device = self._device(row)
                latest[(device.user, device.device_id)] = device
            return [latest[k] for k in sorted(latest)]

        return self._run(go)

    # ------------------------------------------------------------------------------ writing

    def touch_device(
        self,
        user: str,
        device_id: str,
        *,
        device_type: str,
        user_agent: str | None,
        protocol_version: str | None,
    ) -> Deferred[Device]:
        async def go(cur: Cursor) -> Device:
            now = self._now()
            row = await self._find(cur, user, device_id)
            if row is None:
                login, domain = _split(user)
                # DeviceDaoJdbcImpl.registerNewDevice: must insert exactly one row.
                created = await _rows(
                    cur,
                    "INSERT INTO opush_device (identifier, type, owner) "
                    "SELECT %s, %s, userobm_id FROM userobm "
                    "JOIN domain ON userobm_domain_id = domain_id "
                    "WHERE userobm_login = %s AND domain_name = %s RETURNING id",
                    (device_id, device_type[:64], login, domain),
                )
                if len(created) != 1:
                    raise StorageError(f"unknown OBM user {user!r}: cannot register {device_id}")
                pk = created[0][0]
                log.info("device {device} of {user} registered", device=device_id, user=user)
            else:
                pk = row[0]
                if row[2] != device_type[:64]:
                    await cur.execute(
                        "UPDATE opush_device SET type = %s WHERE id = %s", (device_type[:64], pk)
                    )
            await cur.execute(
                "INSERT INTO opush_device_details "
                "(device_id, user_agent, protocol_version, first_seen, last_seen) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET "
                "user_agent = COALESCE(EXCLUDED.user_agent, opush_device_details.user_agent), "
                "protocol_version = COALESCE(EXCLUDED.protocol_version, "
                "opush_device_details.protocol_version), last_seen = EXCLUDED.last_seen",
                (pk, user_agent, protocol_version, now, now),
            )
            return await self._reread(cur, user, device_id)

        return self._run(go)

    def _update_details(
        self, user: str, device_id: str, assignments: str, args: tuple[Any, ...]
    ) -> Deferred[Device]:
        async def go(cur: Cursor) -> Device:
            pk = await self._require(cur, user, device_id)
            now = self._now()
            # A device obm-ui registered has no details row yet.
            await cur.execute(
                "INSERT INTO opush_device_details (device_id, first_seen, last_seen) "
                "VALUES (%s, %s, %s) ON CONFLICT (device_id) DO NOTHING",
                (pk, now, now),
            )
            await cur.execute(
                f"UPDATE opush_device_details SET {assignments} WHERE device_id = %s",
                (*args, pk),
            )
            return await self._reread(cur, user, device_id)

        return self._run(go)

    def update_device_information(
        self, user: str, device_id: str, information: DeviceInformation
    ) -> Deferred[Device]:
        return self._update_details(
            user, device_id, "information = %s", (json.dumps(attrs.asdict(information)),)
        )

    def request_wipe(
        self, user: str, device_id: str, *, requested_by: str, account_only: bool = False
    ) -> Deferred[Device]:
        state = WipeState.ACCOUNT_ONLY_WIPE_PENDING if account_only else WipeState.WIPE_PENDING
        return self._update_details(
            user,
            device_id,
            "wipe = %s, wipe_requested_by = %s, wipe_requested_at = %s, "
            "wipe_acknowledged_at = NULL",
            (state.value, requested_by, self._now()),
        )

    def cancel_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        return self._update_details(
            user,
            device_id,
            "wipe = %s, wipe_requested_by = NULL, wipe_requested_at = NULL, "
            "wipe_acknowledged_at = NULL",
            (WipeState.NONE.value,),
        )

    def acknowledge_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        return self._update_details(
            user,
            device_id,
            "wipe = CASE wipe WHEN %s THEN %s WHEN %s THEN %s ELSE wipe END, "
            "wipe_acknowledged_at = CASE WHEN wipe IN (%s, %s) THEN %s "
            "ELSE wipe_acknowledged_at END",
            (
                WipeState.WIPE_PENDING.value,
                WipeState.WIPED.value,
                WipeState.ACCOUNT_ONLY_WIPE_PENDING.value,
                WipeState.ACCOUNT_ONLY_WIPED.value,
                WipeState.WIPE_PENDING.value,
                WipeState.ACCOUNT_ONLY_WIPE_PENDING.value,
                self._now(),
            ),
        )

    def set_permission(
        self, user: str, device_id: str, permission: Permission | None
    ) -> Deferred[Device]:
        """BLOCKED: opush's flag.  ALLOWED: obm-ui's "Add partnership" row.  None: obm-ui's
        "Remove partnership" (every perms row goes, keys included: the device provisions
        again when it is let in)."""

        async def go(cur: Cursor) -> Device:
            pk = await self._require(cur, user, device_id)
            now = self._now()
            await cur.execute(
                "INSERT INTO opush_device_details (device_id, first_seen, last_seen) "
                "VALUES (%s, %s, %s) ON CONFLICT (device_id) DO NOTHING",
                (pk, now, now),
            )
            await cur.execute(
                "UPDATE opush_device_details SET blocked = %s WHERE device_id = %s",
                (permission is Permission.BLOCKED, pk),
            )
            if permission is Permission.ALLOWED:
                await cur.execute(
                    "INSERT INTO opush_sync_perms (owner, device_id, policy, pending_accept) "
                    "SELECT owner, id, NULL, FALSE FROM opush_device d WHERE id = %s "
                    "AND NOT EXISTS (SELECT 1 FROM opush_sync_perms p WHERE p.device_id = d.id)",
                    (pk,),
                )
            elif permission is None:
                await self._drop_policies(cur, pk, None)
                await cur.execute("DELETE FROM opush_sync_perms WHERE device_id = %s", (pk,))
            return await self._reread(cur, user, device_id)

        return self._run(go)

    async def _drop_policies(self, cur: Cursor, pk: int, pending: bool | None) -> None:
        """removePolicyKey: delete the sec_policy rows (the perms rows go by cascade)."""
        condition = "" if pending is None else " AND pending_accept = %s"
        args: tuple[Any, ...] = (pk,) if pending is None else (pk, pending)
        await cur.execute(
            "DELETE FROM opush_sec_policy WHERE id IN (SELECT policy FROM opush_sync_perms "
            f"WHERE device_id = %s AND policy IS NOT NULL{condition})",
            args,
        )

    async def _allocate(self, cur: Cursor, pk: int, key: int, pending: bool) -> None:
        """allocateNewPolicyKey: a default opush_sec_policy row, its perms row, our key."""
        policy = (await _rows(cur, "INSERT INTO opush_sec_policy DEFAULT VALUES RETURNING id"))[0][
            0
        ]
        await cur.execute(
            "INSERT INTO opush_policy_key (policy_id, policy_key) VALUES (%s, %s)", (policy, key)
        )
        await cur.execute(
            "INSERT INTO opush_sync_perms (policy, device_id, owner, pending_accept) "
            "SELECT %s, id, owner, %s FROM opush_device WHERE id = %s",
            (policy, pending, pk),
        )

    def set_policy_keys(
        self, user: str, device_id: str, *, policy_key: int | None, pending_policy_key: int | None
    ) -> Deferred[Device]:
        async def go(cur: Cursor) -> Device:
            pk = await self._require(cur, user, device_id)
            row = await self._find(cur, user, device_id)
            assert row is not None
            current, pending = row[16], row[17]
            for wanted, have, is_pending in (
                (policy_key, current, False),
                (pending_policy_key, pending, True),
            ):
                if wanted == have:
                    continue
                await self._drop_policies(cur, pk, is_pending)
                if wanted is not None:
                    await self._allocate(cur, pk, wanted, is_pending)
            return await self._reread(cur, user, device_id)

        return self._run(go)

    def remove_device(self, user: str, device_id: str) -> Deferred[bool]:
        """obm-ui's "delete device": every row of the device goes by cascade."""

        async def go(cur: Cursor) -> bool:
            login, domain = _split(user)
            rows = await _rows(
                cur,
                "DELETE FROM opush_device d USING userobm u, domain dom "
                "WHERE d.owner = u.userobm_id AND u.userobm_domain_id = dom.domain_id "
                f"AND d.identifier = %s AND {_BY_USER} RETURNING d.id",
                (device_id, login, domain),
            )
            return bool(rows)

        return self._run(go)

    # ------------------------------------------------- other Opush 3 tables (event mapping, Ping)

    def event_ext_id(self, user: str, device_id: str, event_uid: str) -> Deferred[str | None]:
        """``opush_event_mapping``: the obm-sync extId behind a device's event UID."""

        async def go(cur: Cursor) -> str | None:
            pk = await self._require(cur, user, device_id)
            rows = await _rows(
                cur,
                "SELECT event_ext_id FROM opush_event_mapping WHERE event_uid = %s "
                "AND device_id = %s",
                (event_uid, pk),
            )
            return str(rows[0][0]) if rows else None

        return self._run(go)

    def event_uid(self, user: str, device_id: str, ext_id: str) -> Deferred[str | None]:
        async def go(cur: Cursor) -> str | None:
            pk = await self._require(cur, user, device_id)
            rows = await _rows(
                cur,
                "SELECT event_uid FROM opush_event_mapping WHERE event_ext_id_hash = %s "
                "AND device_id = %s",
                (psycopg2.Binary(_ext_id_hash(ext_id)), pk),
            )
            return str(rows[0][0]) if rows else None

        return self._run(go)

    def put_event_mapping(
        self, user: str, device_id: str, event_uid: str, ext_id: str
    ) -> Deferred[None]:
        """Insert unless this extId is already mapped for the device (UNIQUE hash)."""

        async def go(cur: Cursor) -> None:
            pk = await self._require(cur, user, device_id)
            await cur.execute(
                "INSERT INTO opush_event_mapping "
                "(device_id, event_uid, event_ext_id, event_ext_id_hash) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (device_id, event_ext_id_hash) DO NOTHING",
                (pk, event_uid, ext_id, psycopg2.Binary(_ext_id_hash(ext_id))),
            )

        return self._run(go)

    def get_heartbeat(self, user: str, device_id: str) -> Deferred[int | None]:
        """``opush_ping_heartbeat``: the last Ping heartbeat (seconds)."""

        async def go(cur: Cursor) -> int | None:
            pk = await self._require(cur, user, device_id)
            rows = await _rows(
                cur, "SELECT last_heartbeat FROM opush_ping_heartbeat WHERE device_id = %s", (pk,)
            )
            return int(rows[0][0]) if rows else None

        return self._run(go)

    def put_heartbeat(self, user: str, device_id: str, seconds: int) -> Deferred[None]:
        async def go(cur: Cursor) -> None:
            pk = await self._require(cur, user, device_id)
            await cur.execute("DELETE FROM opush_ping_heartbeat WHERE device_id = %s", (pk,))
            await cur.execute(
                "INSERT INTO opush_ping_heartbeat (device_id, last_heartbeat) VALUES (%s, %s)",
                (pk, seconds),
            )

        return self._run(go)

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.db.close())


def _ext_id_hash(ext_id: str) -> bytes:
    return hashlib.sha1(ext_id.encode("utf-8")).digest()


def obm_device_uid(ext_id: str) -> str:
    """The device UID Opush gives an OBM event: hex of the extId's bytes (research §5)."""
    return ext_id.encode("utf-8").hex()


__all__ = [
    "DB_CHECK_FAILED",
    "DatabaseSettings",
    "ObmDatabase",
    "ObmDeviceRegistry",
    "check_database",
    "obm_device_uid",
    "schema_statements",
]
