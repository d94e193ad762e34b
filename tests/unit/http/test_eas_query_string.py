"""MS-ASHTTP 2.2.1.1.1: plain and base64 query strings."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.http.query import (
    COMMAND_CODES,
    PARAMETER_TAGS,
    QueryError,
    device_id_text,
    encode_base64_query,
    parse_query,
)

VERSIONS = ["2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"]
text255 = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255)


def test_plain_query_with_parameters() -> None:
    q = parse_query(
        b"Cmd=SmartReply&User=alice%40example.org&DeviceId=ABC123&DeviceType=iPhone"
        b"&ItemId=5%3A12&CollectionId=5&SaveInSent=T"
    )
    assert (q.command, q.user, q.device_id, q.device_type) == (
        "SmartReply",
        "alice@example.org",
        "ABC123",
        "iPhone",
    )
    assert q.params == {"ItemId": "5:12", "CollectionId": "5"}
    assert q.save_in_sent and not q.base64_form
    assert q.protocol_version is None and q.policy_key is None


@pytest.mark.parametrize(
    "raw",
    [
        b"Cmd=Sync&User=a&DeviceType=x",  # no DeviceId
        b"Cmd=Sync&User=a&DeviceId=d",  # no DeviceType
        b"Cmd=&DeviceId=d&DeviceType=x",  # empty Cmd
        b"",
        b"%%%not-base64%%%",
        base64.b64encode(b"\x8d\x09"),  # truncated after the command code
    ],
)
def test_malformed_queries_are_query_errors(raw: bytes) -> None:
    with pytest.raises(QueryError):
        parse_query(raw)


def test_base64_example_decodes() -> None:
    # A 14.1 Sync from a device with binary id 0x0102..., policy key 3943613432, type "SP".
    raw = encode_base64_query(
        command="Sync",
        device_id=bytes(range(1, 17)),
        device_type="SP",
        protocol_version="14.1",
        policy_key=3943613432,
        locale=0x0409,
    )
    data = base64.b64decode(raw)
    assert data[0] == 141 and data[1] == 0  # version byte, command code
    q = parse_query(quote(raw, safe="").encode())
    assert q.base64_form and q.command == "Sync" and q.protocol_version == "14.1"
    assert q.policy_key == 3943613432 and q.locale == 0x0409
    assert q.device_id == device_id_text(bytes(range(1, 17)))


def test_unknown_command_code_is_kept_for_the_dispatcher() -> None:
    raw = bytearray(
        base64.b64decode(encode_base64_query(command="Sync", device_id=b"d1", device_type="t"))
    )
    raw[1] = 99
    q = parse_query(base64.b64encode(bytes(raw)))
    assert q.command == "#99"


@settings(max_examples=150, deadline=None)
@given(
    command=st.sampled_from(sorted(COMMAND_CODES.values())),
    device_id=st.binary(min_size=1, max_size=40),
    device_type=text255,
    version=st.sampled_from(VERSIONS),
    locale=st.integers(0, 0xFFFF),
    policy_key=st.none() | st.integers(0, 2**32 - 1),
    user=st.none() | text255,
    params=st.dictionaries(st.sampled_from(sorted(PARAMETER_TAGS.values())), text255, max_size=4),
    save_in_sent=st.booleans(),
    accept_multipart=st.booleans(),
)
def test_base64_round_trip(
    command: str,
    device_id: bytes,
    device_type: str,
    version: str,
    locale: int,
    policy_key: int | None,
    user: str | None,
    params: dict[str, str],
    save_in_sent: bool,
    accept_multipart: bool,
) -> None:
    raw = encode_base64_query(
        command=command,
        device_id=device_id,
        device_type=device_type,
        protocol_version=version,
        locale=locale,
        policy_key=policy_key,
        user=user,
        params=params,
        save_in_sent=save_in_sent,
        accept_multipart=accept_multipart,
    )
    q = parse_query(quote(raw, safe=""))
    assert q.command == command
    assert q.device_id == device_id_text(device_id)
    assert q.device_type == device_type
    assert q.protocol_version == version
    assert q.locale == locale
    assert q.policy_key == policy_key
    assert q.user == user
    assert dict(q.params) == params
    assert (q.save_in_sent, q.accept_multipart) == (save_in_sent, accept_multipart)


@settings(max_examples=100, deadline=None)
@given(
    command=st.sampled_from(sorted(COMMAND_CODES.values())),
    device_id=st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=32),
    device_type=st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=20),
    user=st.emails(),
)
def test_plain_round_trip(command: str, device_id: str, device_type: str, user: str) -> None:
    raw = (
        f"Cmd={quote(command)}&User={quote(user, safe='')}"
        f"&DeviceId={quote(device_id)}&DeviceType={quote(device_type)}"
    )
    q = parse_query(raw)
    assert (q.command, q.user, q.device_id, q.device_type) == (
        command,
        user,
        device_id,
        device_type,
    )


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        parse_query(base64.b64encode(data))
    except QueryError:
        pass
