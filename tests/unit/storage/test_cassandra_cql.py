"""Every CQL statement opush sends is valid CQL, checked with cqlsh's own grammar (cqlshlib),
and names only tables and columns the schema files create: typos cannot hide until a cluster
is at hand."""

from __future__ import annotations

import re

import pytest
from cqlshlib.cql3handling import CqlRuleSet

from opush.storage import migration
from opush.storage.cassandra import STATEMENTS, split_script

SCHEMA = migration.load_schema("cassandra")
DDL = [s for f in SCHEMA.files for s in split_script(f.text)]
TABLE_OPTIONS = {name for name, _ in CqlRuleSet.columnfamily_layout_options} | {
    "clustering order by",
    "compaction",
    "compression",
    "caching",
}


def parses(statement: str) -> bool:
    # cqlsh's grammar has no bind markers; any literal stands in for "?".
    text = statement.replace("?", "0") + ";"
    tokens = CqlRuleSet.cql_massage_tokens(CqlRuleSet.lex(text))
    return CqlRuleSet.whole_match("Start", tokens, srcstr=text) is not None


def schema_tables() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    for statement in DDL:
        m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)", statement, re.S)
        assert m, statement
        body = m[2].split("PRIMARY KEY")[0]
        tables[m[1]] = {line.split()[0] for line in body.split(",") if line.strip()}
    return tables


def test_the_checker_rejects_typos() -> None:
    assert parses("SELECT a FROM t WHERE b = ?")
    assert not parses("SELECT a FORM t WHERE b = ?")
    assert not parses("INSERT INTO t (a) VALUES (?) USING TTL")
    assert not parses("DELETE t WHERE a = ?")


@pytest.mark.parametrize("statement", DDL, ids=lambda s: s.split("(")[0][:60])
def test_schema_statements_parse(statement: str) -> None:
    assert parses(statement), statement
    assert statement.startswith("CREATE TABLE IF NOT EXISTS "), "schema files must be rerunnable"
    options = statement.rsplit(")", 1)[1]
    for option in re.findall(r"(?:WITH|AND)\s+([a-z_ ]+?)\s*(?:=|\()", options, re.I):
        assert option.lower() in TABLE_OPTIONS, option


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_store_statements_parse(name: str) -> None:
    assert parses(STATEMENTS[name]), STATEMENTS[name]


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_store_statements_use_existing_tables_and_columns(name: str) -> None:
    statement = STATEMENTS[name]
    table = re.search(r"(?:FROM|INTO|UPDATE)\s+([\w.]+)", statement)
    assert table, statement
    if table[1].startswith("system"):
        return
    columns = schema_tables()[table[1]]
    words = set(re.findall(r"\b([a-z_]+)\b", statement.split(table[1], 1)[0]))
    words |= set(re.findall(r"\b([a-z_]+)\s*=", statement))
    words |= {
        w
        for group in re.findall(r"\(([^?]*?)\) VALUES", statement)
        for w in re.findall(r"\w+", group)
    }
    for word in words - {"select", "delete", "from", "insert", "into"}:
        assert word in columns, f"{name}: no column {word!r} in {table[1]}"


@pytest.mark.parametrize("name", sorted(n for n in STATEMENTS if "INSERT" in STATEMENTS[n]))
def test_every_state_write_carries_a_ttl(name: str) -> None:
    if name == "schema_record":
        return
    assert STATEMENTS[name].endswith("USING TTL ?"), name


def test_cassandra_schema_continues_the_java_numbering() -> None:
    # Java Opush stopped at 6: a keyspace it used must show "Update required".
    assert SCHEMA.latest == SCHEMA.minimal == 7
    assert "schema_version" in schema_tables()
