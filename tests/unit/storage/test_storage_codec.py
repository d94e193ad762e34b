"""Stored records survive the JSON codec unchanged; corrupt rows give a clear StorageError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opush.storage import codec
from opush.storage.interfaces import (
    Device,
    DeviceInformation,
    FolderKind,
    FolderRef,
    Permission,
    PingFolder,
    PingParameters,
    StorageError,
    WipeState,
)

text = st.text(max_size=40)
maybe_text = st.none() | text
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
maybe_time = st.none() | times
keys = st.none() | st.integers(min_value=0, max_value=2**32 - 1)

devices = st.builds(
    Device,
    user=text,
    device_id=text,
    device_type=text,
    user_agent=maybe_text,
    first_seen=times,
    last_seen=times,
    protocol_version=maybe_text,
    information=st.builds(
        DeviceInformation,
        model=maybe_text,
        imei=maybe_text,
        friendly_name=maybe_text,
        os=maybe_text,
        os_language=maybe_text,
        phone_number=maybe_text,
        mobile_operator=maybe_text,
        user_agent=maybe_text,
    ),
    policy_key=keys,
    pending_policy_key=keys,
    wipe=st.sampled_from(WipeState),
    wipe_requested_by=maybe_text,
    wipe_requested_at=maybe_time,
    wipe_acknowledged_at=maybe_time,
    permission=st.none() | st.sampled_from(Permission),
)


@settings(max_examples=100)
@given(devices)
def test_device_round_trip(device: Device) -> None:
    assert codec.device_from_json(codec.device_to_json(device)) == device


@settings(max_examples=100)
@given(
    st.builds(
        FolderRef,
        kind=st.sampled_from(FolderKind),
        backend_id=text,
        display_name=text,
        folder_type=st.integers(1, 19),
        parent_backend_id=maybe_text,
    )
)
def test_folder_ref_round_trip(ref: FolderRef) -> None:
    assert codec.folder_ref_from_json(codec.folder_ref_to_json(ref)) == ref


@settings(max_examples=50)
@given(
    st.builds(
        PingParameters,
        heartbeat_interval=st.integers(1, 3540),
        folders=st.lists(
            st.builds(PingFolder, collection_id=st.integers(0, 10**6), folder_class=text)
        ).map(tuple),
    )
)
def test_ping_round_trip(params: PingParameters) -> None:
    assert codec.ping_from_json(codec.ping_to_json(params)) == params


def test_times_are_stored_as_utc() -> None:
    paris = datetime(2026, 11, 22, 9, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    device = Device("u", "d", "t", None, paris, paris)
    assert '"first_seen":"2026-11-22T09:00:00+00:00"' in codec.device_to_json(device)
    assert codec.device_from_json(codec.device_to_json(device)).first_seen == paris


def test_records_tolerate_unknown_and_missing_fields() -> None:
    stored = (
        '{"user":"u","device_id":"d","device_type":"t","first_seen":"2026-01-01T00:00:00+00:00",'
        '"last_seen":"2026-01-01T00:00:00+00:00","future_field":1}'
    )
    device = codec.device_from_json(stored)
    assert device.wipe is WipeState.NONE and device.information == DeviceInformation()


@pytest.mark.parametrize(
    "stored",
    [
        "not json",
        "[1, 2]",
        '{"user": "u"}',
        '{"user":"u","device_id":"d","device_type":"t","first_seen":"yesterday","last_seen":"x"}',
    ],
)
def test_corrupt_device_rows_raise_storage_error(stored: str) -> None:
    with pytest.raises(StorageError, match="corrupt"):
        codec.device_from_json(stored)


def test_corrupt_folder_and_ping_rows_raise_storage_error() -> None:
    with pytest.raises(StorageError, match="corrupt"):
        codec.folder_ref_from_json('{"kind": "fax"}')
    with pytest.raises(StorageError, match="corrupt"):
        codec.ping_from_json('{"heartbeat_interval": 5}')


def test_dumps_is_deterministic() -> None:
    assert codec.dumps({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
