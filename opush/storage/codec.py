"""The one way records are serialized: compact JSON text, identical for every backend.

Field names are the attrs field names; enums are stored by value; datetimes as ISO 8601 UTC
strings (``2026-11-22T08:11:06.123456+00:00``); absent optional fields as ``null``. Readers
ignore unknown fields and default missing ones, so a newer opush can add fields without a
schema change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opush.storage.interfaces import (
    Device,
    DeviceInformation,
    FolderKind,
    FolderRef,
    Json,
    Permission,
    PingFolder,
    PingParameters,
    StorageError,
    WipeState,
)


def dumps(value: Json) -> str:
    """Deterministic compact JSON (sorted keys), so equal records give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as e:
        raise StorageError(f"corrupt stored record: {e}") from e
    if not isinstance(value, dict):
        raise StorageError("corrupt stored record: not a JSON object")
    return value


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    return None if value is None else str(value)


def _int(record: Mapping[str, Any], key: str) -> int | None:
    value = record.get(key)
    return None if value is None else int(value)


def device_to_json(device: Device) -> str:
    info = device.information
    return dumps(
        {
            "user": device.user,
            "device_id": device.device_id,
            "device_type": device.device_type,
            "user_agent": device.user_agent,
            "first_seen": _time(device.first_seen),
            "last_seen": _time(device.last_seen),
            "protocol_version": device.protocol_version,
            "information": {
                "model": info.model,
                "imei": info.imei,
                "friendly_name": info.friendly_name,
                "os": info.os,
                "os_language": info.os_language,
                "phone_number": info.phone_number,
                "mobile_operator": info.mobile_operator,
                "user_agent": info.user_agent,
            },
            "policy_key": device.policy_key,
            "pending_policy_key": device.pending_policy_key,
            "wipe": device.wipe.value,
            "wipe_requested_by": device.wipe_requested_by,
            "wipe_requested_at": _time(device.wipe_requested_at),
            "wipe_acknowledged_at": _time(device.wipe_acknowledged_at),
            "permission": None if device.permission is None else device.permission.value,
        }
    )


def device_from_json(text: str) -> Device:
    r = loads(text)
    try:
        info = r.get("information") or {}
        first_seen = _parse_time(r["first_seen"])
        last_seen = _parse_time(r["last_seen"])
        assert first_seen is not None and last_seen is not None
        return Device(
            user=str(r["user"]),
            device_id=str(r["device_id"]),
            device_type=str(r["device_type"]),
            user_agent=_str(r, "user_agent"),
            first_seen=first_seen,
            last_seen=last_seen,
            protocol_version=_str(r, "protocol_version"),
            information=DeviceInformation(
                model=_str(info, "model"),
                imei=_str(info, "imei"),
                friendly_name=_str(info, "friendly_name"),
                os=_str(info, "os"),
                os_language=_str(info, "os_language"),
                phone_number=_str(info, "phone_number"),
                mobile_operator=_str(info, "mobile_operator"),
                user_agent=_str(info, "user_agent"),
            ),
            policy_key=_int(r, "policy_key"),
            pending_policy_key=_int(r, "pending_policy_key"),
            wipe=WipeState(r.get("wipe") or "none"),
            wipe_requested_by=_str(r, "wipe_requested_by"),
            wipe_requested_at=_parse_time(r.get("wipe_requested_at")),
            wipe_acknowledged_at=_parse_time(r.get("wipe_acknowledged_at")),
            permission=None if r.get("permission") is None else Permission(r["permission"]),
        )
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise StorageError(f"corrupt stored device record: {e!r}") from e


def folder_ref_to_json(ref: FolderRef) -> str:
    return dumps(
        {
            "kind": ref.kind.value,
            "backend_id": ref.backend_id,
            "display_name": ref.display_name,
            "folder_type": ref.folder_type,
            "parent_backend_id": ref.parent_backend_id,
        }
    )


def folder_ref_from_json(text: str) -> FolderRef:
    r = loads(text)
    try:
        return FolderRef(
            kind=FolderKind(r["kind"]),
            backend_id=str(r["backend_id"]),
            display_name=str(r["display_name"]),
            folder_type=int(r["folder_type"]),
            parent_backend_id=_str(r, "parent_backend_id"),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise StorageError(f"corrupt stored folder record: {e!r}") from e


def ping_to_json(params: PingParameters) -> str:
    return dumps(
        {
            "heartbeat_interval": params.heartbeat_interval,
            "folders": [
                {"collection_id": f.collection_id, "folder_class": f.folder_class}
                for f in params.folders
            ],
        }
    )


def ping_from_json(text: str) -> PingParameters:
    r = loads(text)
    try:
        return PingParameters(
            heartbeat_interval=int(r["heartbeat_interval"]),
            folders=tuple(
                PingFolder(
                    collection_id=int(f["collection_id"]), folder_class=str(f["folder_class"])
                )
                for f in r["folders"]
            ),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise StorageError(f"corrupt stored ping record: {e!r}") from e
