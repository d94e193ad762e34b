"""Pure parts of the mail commands: the multipart layout, ServerIds, Search queries and
ranges, LDAP filter building."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.ldap import (
    build_base,
    build_filter,
    endpoint_description,
    entry_from_attributes,
    escape_filter_value,
)
from opush.commands.itemoperations import multipart_body, parse_multipart, parse_server_id
from opush.commands.search import (
    _Invalid,
    imap_query,
    parse_eas_datetime,
    parse_mailbox_query,
    parse_range,
)
from opush.wbxml import E, ns

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_multipart_layout_matches_the_spec_structure() -> None:
    # MS-ASCMD 2.2.1.10.1.1: count, (offset, length) pairs from the start, then the data.
    body = multipart_body([b"WBXML", b"", b"abc"])
    assert body[:4] == struct.pack("<i", 3)
    header = 4 + 3 * 8
    assert struct.unpack_from("<ii", body, 4) == (header, 5)
    assert struct.unpack_from("<ii", body, 12) == (header + 5, 0)
    assert struct.unpack_from("<ii", body, 20) == (header + 5, 3)
    assert body[header:] == b"WBXMLabc"


@settings(max_examples=100)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_multipart_roundtrip(parts: list[bytes]) -> None:
    assert parse_multipart(multipart_body(parts)) == parts


@pytest.mark.parametrize("bad", [b"", b"\x01\x00\x00", struct.pack("<iii", 1, 12, 50)])
def test_malformed_multipart_is_refused(bad: bytes) -> None:
    with pytest.raises(ValueError):
        parse_multipart(bad)


def test_server_ids() -> None:
    item = parse_server_id("5:42")
    assert item is not None and (item.collection_id, item.uid) == ("5", 42)
    assert item.server_id == "5:42"
    for bad in (None, "", "5", "x:1", "5:0", "5:abc", ":3"):
        assert parse_server_id(bad) is None


def _query(*conditions: object) -> object:
    return E(ns.SEARCH, "Query", E(ns.SEARCH, "And", *conditions))  # type: ignore[arg-type]


def _date(op: str, value: str) -> object:
    return E(ns.SEARCH, op, E(ns.EMAIL, "DateReceived"), E(ns.SEARCH, "Value", text=value))


def test_mailbox_query_conditions() -> None:
    q = parse_mailbox_query(
        _query(  # type: ignore[arg-type]
            E(ns.AIRSYNC, "Class", text="Email"),
            E(ns.AIRSYNC, "CollectionId", text="7"),
            E(ns.SEARCH, "FreeText", text="budget"),
            _date("GreaterThan", "2024-03-01T10:00:00.000Z"),
            _date("LessThan", "2024-03-05T00:00:00.000Z"),
        )
    )
    assert q.collection_ids == ("7",) and q.free_text == "budget" and q.classes == ("Email",)
    assert q.after == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert q.before == datetime(2024, 3, 5, tzinfo=UTC)
    imap = imap_query(q)
    # Whole days, widened so that no match is lost to the server's time zone.
    assert imap.since == date(2024, 2, 29) and imap.before == date(2024, 3, 7)
    assert imap.text == "budget"


@pytest.mark.parametrize(
    ("condition", "status"),
    [
        (E(ns.SEARCH, "Or"), 8),
        (E(ns.SEARCH, "EqualTo"), 8),
        (E(ns.EMAIL, "Subject", text="x"), 2),
        (E(ns.SEARCH, "GreaterThan", E(ns.SEARCH, "Value", text="2024-01-01")), 2),
    ],
)
def test_unusable_queries_get_their_store_status(condition: object, status: int) -> None:
    with pytest.raises(_Invalid) as err:
        parse_mailbox_query(_query(condition))  # type: ignore[arg-type]
    assert err.value.status == status


def test_bad_date_is_invalid_request() -> None:
    with pytest.raises(_Invalid) as err:
        parse_mailbox_query(_query(_date("GreaterThan", "yesterday")))  # type: ignore[arg-type]
    assert err.value.status == 2


def test_ranges() -> None:
    assert parse_range(None) == (0, 99)
    assert parse_range("0-9") == (0, 9)
    assert parse_range("10-5000") == (10, 109)  # at most 100 results (MS-ASCMD 2.2.3.143.3)
    for bad in ("9-0", "a-b", "5", "-3"):
        with pytest.raises(_Invalid):
            parse_range(bad)


def test_eas_datetimes() -> None:
    assert parse_eas_datetime("2024-03-01T10:00:00.000Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parse_eas_datetime("2024-03-01T12:00:00+02:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)


DEFAULT = "(&(objectClass=inetOrgPerson) (|(mail=%q*)(sn=%q*)(givenName=%q*)))"


def test_filter_from_the_guide_template() -> None:
    assert build_filter(DEFAULT, "bob") == (
        "(&(objectClass=inetOrgPerson)(|(mail=bob*)(sn=bob*)(givenName=bob*)))"
    )
    assert build_filter("(mail=*%q*)", "") == "(mail=*)"
    assert build_base("dc=%d,dc=local", "example.org") == "dc=example.org,dc=local"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_typed_text_cannot_change_the_filter(typed: str) -> None:
    from ldaptor import ldapfilter

    escaped = escape_filter_value(typed)
    assert not set("()*") & set(escaped.replace("\\2a", "").replace("\\28", "").replace("\\29", ""))
    filter_object = ldapfilter.parseFilter(build_filter("(mail=a%qz)", typed))
    # Still one equality match on mail: nothing the user typed got into the structure.
    assert type(filter_object).__name__ == "LDAPFilter_equalityMatch"


def test_endpoints_and_entries() -> None:
    assert endpoint_description("ldap://127.0.0.1:3389/", 5) == (
        "tcp:host=127.0.0.1:port=3389:timeout=5"
    )
    assert endpoint_description("ldap.example.org", 2).startswith(
        "tcp:host=ldap.example.org:port=389"
    )
    assert endpoint_description("ldaps://ldap.example.org", 2).startswith("tls:")
    with pytest.raises(ValueError):
        endpoint_description("http://x", 1)
    entry = entry_from_attributes(
        {"givenName": [b"Bob"], "sn": [b"Durand"], "MAIL": [b"bob@example.org"], "cn": []}
    )
    assert entry.display_name == "Bob Durand" and entry.email == "bob@example.org"
