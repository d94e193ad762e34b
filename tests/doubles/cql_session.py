"""A test double of a cassandra-driver Session: the CQL subset opush's store uses, in memory.

It lets the storage contract suite exercise ``opush.storage.cassandra``'s own logic (statement
parameters, partition handling, TTL choices, lightweight transactions) without a cluster. It is
NOT evidence about Cassandra itself; it does enforce Cassandra's rules that matter for our
statements: WHERE must give the whole partition key plus a clustering prefix, INSERT is an
upsert, ``USING TTL 0`` means no expiry, ``IF NOT EXISTS`` answers ``[applied]``.
Time comes from a twisted ``Clock`` so expiry is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from twisted.internet.testing import Clock


class InvalidRequest(Exception):
    """What Cassandra would refuse."""


@attrs.define
class Table:
    columns: list[str]
    partition: list[str]
    clustering: list[str]
    rows: dict[tuple[Any, ...], tuple[dict[str, Any], float | None]] = attrs.Factory(dict)

    @property
    def key(self) -> list[str]:
        return self.partition + self.clustering


@attrs.frozen
class Prepared:
    query: str


class Future:
    def __init__(self, rows: list[dict[str, Any]] | None, error: Exception | None) -> None:
        self.rows, self.error, self.has_more_pages = rows, error, False

    def add_callbacks(self, ok: Callable[..., None], err: Callable[..., None]) -> None:
        if self.error is not None:
            err(self.error)
        else:
            ok(self.rows)


_WHERE_TERM = re.compile(r"^(\w+) = (\?|\d+|'[^']*')$")


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1]
    return int(text)


class CqlSession:
    def __init__(self, clock: Clock, keyspace: str = "opush") -> None:
        self.clock = clock
        self.keyspace = keyspace
        self.tables: dict[str, Table] = {}
        self.executed: list[str] = []

    # driver API used by the store
    def prepare(self, query: str) -> Prepared:
        return Prepared(query)

    def execute_async(self, statement: Any, params: Sequence[Any] = ()) -> Future:
        query = statement.query if isinstance(statement, Prepared) else str(statement)
        self.executed.append(query)
        try:
            return Future(self._execute(" ".join(query.split()), list(params)), None)
        except Exception as e:
            return Future(None, e)

    # ------------------------------------------------------------------
    def _now(self) -> float:
        return float(self.clock.seconds())

    def _live(self, table: Table) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        now = self._now()
        return sorted(
            ((k, row) for k, (row, exp) in table.rows.items() if exp is None or exp > now),
            key=lambda kr: tuple(str(v) for v in kr[0]),
        )

    def _table(self, name: str) -> Table:
        if name not in self.tables:
            raise InvalidRequest(f"unconfigured table {name}")
        return self.tables[name]

    def _where(self, table: Table, text: str, params: list[Any]) -> dict[str, Any]:
        terms: dict[str, Any] = {}
        for term in text.split(" AND "):
            m = _WHERE_TERM.match(term.strip())
            if not m:
                raise InvalidRequest(f"unsupported WHERE term {term!r}")
            terms[m[1]] = params.pop(0) if m[2] == "?" else _literal(m[2])
        names = list(terms)
        if names[: len(table.partition)] != table.partition or names != table.key[: len(names)]:
            raise InvalidRequest(f"WHERE {names} is not partition key + clustering prefix")
        return terms

    def _execute(self, q: str, params: list[Any]) -> list[dict[str, Any]]:
        if q.startswith("CREATE TABLE"):
            return self._create(q)
        if m := re.match(r"^SELECT (.+?) FROM ([\w.]+)(?: WHERE (.+))?$", q):
            return self._select(m[1], m[2], m[3], params)
        if m := re.match(
            r"^INSERT INTO (\w+) \((.+?)\) VALUES \((.+?)\)( IF NOT EXISTS)?"
            r"(?: USING TTL (\?|\d+))?$",
            q,
        ):
            return self._insert(m, params)
        if m := re.match(r"^DELETE FROM (\w+) WHERE (.+)$", q):
            table = self._table(m[1])
            terms = self._where(table, m[2], params)
            for key, _ in self._live(table):
                if all(key[table.key.index(c)] == v for c, v in terms.items()):
                    del table.rows[key]
            return []
        raise InvalidRequest(f"unsupported statement {q!r}")

    def _create(self, q: str) -> list[dict[str, Any]]:
        m = re.match(r"^CREATE TABLE IF NOT EXISTS (\w+) \((.*) PRIMARY KEY \((.+?)\)\s*\)", q)
        if not m:
            raise InvalidRequest(f"unsupported CREATE {q!r}")
        if m[1] in self.tables:
            return []
        columns = [c.split()[0] for c in m[2].split(",") if c.strip()]
        pk = m[3]
        if pk.startswith("("):
            part, _, rest = pk[1:].partition(")")
            partition = [c.strip() for c in part.split(",")]
            clustering = [c.strip() for c in rest.split(",") if c.strip()]
        else:
            names = [c.strip() for c in pk.split(",")]
            partition, clustering = names[:1], names[1:]
        self.tables[m[1]] = Table(columns, partition, clustering)
        return []

    def _select(
        self, what: str, name: str, where: str | None, params: list[Any]
    ) -> list[dict[str, Any]]:
        if name == "system_schema.tables":
            _, table = params
            return [{"table_name": table}] if table in self.tables else []
        table = self._table(name)
        terms = self._where(table, where, params) if where else {}
        if not where and name != "opush_device_index":
            raise InvalidRequest(f"full scan of {name}")
        cols = [c.strip() for c in what.split(",")]
        out = []
        for key, row in self._live(table):
            if all(key[table.key.index(c)] == v for c, v in terms.items()):
                out.append({c: row.get(c) for c in cols})
        return out

    def _insert(self, m: re.Match[str], params: list[Any]) -> list[dict[str, Any]]:
        table = self._table(m[1])
        cols = [c.strip() for c in m[2].split(",")]
        raw = [v.strip() for v in m[3].split(",")]
        values = [params.pop(0) if v == "?" else _literal(v) for v in raw]
        ttl = m[5]
        seconds = None if ttl is None else (params.pop(0) if ttl == "?" else int(ttl))
        if params:
            raise InvalidRequest("too many bind values")
        row = dict(zip(cols, values, strict=True))
        for c, v in row.items():
            if c not in table.columns:
                raise InvalidRequest(f"unknown column {c}")
            if isinstance(v, datetime):
                row[c] = v.astimezone(UTC).replace(tzinfo=None)
        if any(row.get(c) is None for c in table.key):
            raise InvalidRequest("missing primary key column")
        key = tuple(row[c] for c in table.key)
        if m[4]:
            live = dict(self._live(table))
            if key in live:
                return [{"[applied]": False, **live[key]}]
        expires = None if not seconds else self._now() + int(seconds)
        table.rows[key] = (row, expires)
        return [{"[applied]": True}] if m[4] else []


class SyncThreadPool:
    """Runs "thread pool" work at once, so deferToThreadPool stays deterministic."""

    def callInThreadWithCallback(
        self, on_result: Callable[[bool, Any], None], f: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        try:
            result = f(*a, **kw)
        except BaseException as e:
            from twisted.python.failure import Failure

            on_result(False, Failure(e))
        else:
            on_result(True, result)


class DirectReactor:
    """Enough of a reactor for CassandraStore over CqlSession: fake time, no threads."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pool = SyncThreadPool()

    def seconds(self) -> float:
        return float(self.clock.seconds())

    def callFromThread(self, f: Callable[..., Any], *a: Any, **kw: Any) -> None:
        f(*a, **kw)

    def getThreadPool(self) -> SyncThreadPool:
        return self.pool


class NoCluster:
    def shutdown(self) -> None:
        pass


async def cassandra_store_on_double(clock: Clock) -> Any:
    """A CassandraStore over CqlSession with the schema installed by the real lifecycle."""
    from opush.storage import migration
    from opush.storage.cassandra import CassandraSettings, CassandraStore

    settings = CassandraSettings(seeds=("double",), keyspace="opush")
    store = CassandraStore(NoCluster(), CqlSession(clock), settings, DirectReactor(clock))  # type: ignore[arg-type]
    result = await migration.install(store, migration.load_schema("cassandra"))
    assert result.success, result.message
    return store
