"""EAS request URIs: the plain and the base64-encoded query string (MS-ASHTTP 2.2.1.1.1).

Both forms decode to one `EasQuery`; `encode_base64_query` is the inverse of the base64
form, for tests and for clients.  Nothing here looks at headers: the protocol version and
policy key of the plain form come from `MS-ASProtocolVersion` / `X-MS-PolicyKey`, which
`opush.http.activesync` merges in.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from urllib.parse import parse_qs

import attrs

# MS-ASHTTP 2.2.1.1.1.1.2 "Command Codes".  Codes 5-8 are the 2.5-era GetHierarchy,
# CreateCollection, DeleteCollection and MoveCollection.
COMMAND_CODES: Mapping[int, str] = {
    0: "Sync",
    1: "SendMail",
    2: "SmartForward",
    3: "SmartReply",
    4: "GetAttachment",
    5: "GetHierarchy",
    6: "CreateCollection",
    7: "DeleteCollection",
    8: "MoveCollection",
    9: "FolderSync",
    10: "FolderCreate",
    11: "FolderDelete",
    12: "FolderUpdate",
    13: "MoveItems",
    14: "GetItemEstimate",
    15: "MeetingResponse",
    16: "Search",
    17: "Settings",
    18: "Ping",
    19: "ItemOperations",
    20: "Provision",
    21: "ResolveRecipients",
    22: "ValidateCert",
    23: "Find",
}
COMMAND_NUMBERS: Mapping[str, int] = {name: code for code, name in COMMAND_CODES.items()}

# MS-ASHTTP 2.2.1.1.1.1.3 "Command Parameters": tag -> name.  Tag 7 (Options) is a bit
# field decoded into `save_in_sent` / `accept_multipart`; tag 8 is User.
PARAMETER_TAGS: Mapping[int, str] = {
    0: "AttachmentName",
    1: "CollectionId",
    2: "CollectionName",
    3: "ItemId",
    4: "LongId",
    5: "ParentId",
    6: "Occurrence",
}
PARAMETER_NUMBERS: Mapping[str, int] = {name: tag for tag, name in PARAMETER_TAGS.items()}
_OPTIONS_TAG = 7
_USER_TAG = 8
_OPTION_SAVE_IN_SENT = 0x01
_OPTION_ACCEPT_MULTIPART = 0x02

# Plain-form parameters that the plain query string may carry besides Cmd/User/DeviceId/
# DeviceType (MS-ASHTTP 2.2.1.1.1.2), kept under the same names as the base64 tags.
_PLAIN_EXTRAS = ("AttachmentName", "CollectionId", "ItemId", "LongId", "Occurrence", "ParentId")


class QueryError(ValueError):
    """The request URI is not a valid EAS query (HTTP 400)."""


@attrs.frozen
class EasQuery:
    """What the request URI says.  `protocol_version` and `policy_key` are only set by the
    base64 form (the plain form carries them in headers); `policy_key` is None when absent."""

    command: str
    device_id: str
    device_type: str
    user: str | None = None
    protocol_version: str | None = None
    policy_key: int | None = None
    locale: int | None = None
    params: Mapping[str, str] = attrs.field(factory=dict)
    save_in_sent: bool = False
    accept_multipart: bool = False
    base64_form: bool = False


def parse_query(raw_query: bytes | str) -> EasQuery:
    """Decode either form: a query with `Cmd=` is the plain form, anything else base64."""
    text = raw_query.decode("latin-1") if isinstance(raw_query, bytes) else raw_query
    if not text:
        raise QueryError("empty query string")
    if "=" in text and any(part.split("=", 1)[0] == "Cmd" for part in text.split("&")):
        return _parse_plain(text)
    return parse_base64_query(text)


def _parse_plain(text: str) -> EasQuery:
    """MS-ASHTTP 2.2.1.1.1.2: Cmd, User, DeviceId, DeviceType (+ command parameters)."""
    try:
        values = parse_qs(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError as e:
        raise QueryError("query string is not UTF-8") from e

    def one(name: str) -> str | None:
        got = values.get(name)
        return got[0] if got else None

    command = one("Cmd")
    device_id = one("DeviceId")
    device_type = one("DeviceType")
    if not command:
        raise QueryError("missing Cmd")
    if not device_id:
        raise QueryError("missing DeviceId")
    if not device_type:
        raise QueryError("missing DeviceType")
    params = {name: v for name in _PLAIN_EXTRAS if (v := one(name)) is not None}
    save_in_sent = (one("SaveInSent") or "").upper() == "T"
    return EasQuery(
        command=command,
        device_id=device_id,
        device_type=device_type,
        user=one("User"),
        params=params,
        save_in_sent=save_in_sent,
        base64_form=False,
    )


def _version_from_byte(value: int) -> str:
    """121 -> "12.1", 25 -> "2.5" (MS-ASHTTP 2.2.1.1.1.1.1: version times ten)."""
    return f"{value // 10}.{value % 10}"


def _version_to_byte(version: str) -> int:
    major, _, minor = version.partition(".")
    return int(major) * 10 + int(minor or "0")


def parse_base64_query(text: str) -> EasQuery:
    """MS-ASHTTP 2.2.1.1.1.1: the binary layout, after base64 (and URL) decoding.

    Layout: version (1 byte), command code (1), locale (2, little-endian), device id length
    (1) + device id, policy key length (1, 0 or 4) + policy key (uint32 little-endian),
    device type length (1) + device type, then tag/length/value command parameters.
    """
    from urllib.parse import unquote

    encoded = unquote(text).strip()
    try:
        data = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise QueryError("query string is neither plain (Cmd=) nor valid base64") from e
    reader = _Reader(data)
    version = _version_from_byte(reader.byte("protocol version"))
    code = reader.byte("command code")
    command = COMMAND_CODES.get(code)
    if command is None:
        # Keep it: an unknown command is answered by the dispatcher (501), not as a 400.
        command = f"#{code}"
    (locale,) = struct.unpack("<H", reader.take(2, "locale"))
    device_id_bytes = reader.take(reader.byte("device id length"), "device id")
    if not device_id_bytes:
        raise QueryError("missing device id")
    key_length = reader.byte("policy key length")
    policy_key: int | None = None
    if key_length == 4:
        (policy_key,) = struct.unpack("<I", reader.take(4, "policy key"))
    elif key_length != 0:
        raise QueryError(f"policy key length {key_length} (must be 0 or 4)")
    device_type = _text(reader.take(reader.byte("device type length"), "device type"))
    if not device_type:
        raise QueryError("missing device type")
    params: dict[str, str] = {}
    user: str | None = None
    save_in_sent = accept_multipart = False
    while not reader.at_end():
        tag = reader.byte("parameter tag")
        value = reader.take(reader.byte("parameter length"), "parameter value")
        if tag == _OPTIONS_TAG:
            flags = int.from_bytes(value, "little") if value else 0
            save_in_sent = bool(flags & _OPTION_SAVE_IN_SENT)
            accept_multipart = bool(flags & _OPTION_ACCEPT_MULTIPART)
        elif tag == _USER_TAG:
            user = _text(value)
        elif tag in PARAMETER_TAGS:
            params[PARAMETER_TAGS[tag]] = _text(value)
        else:
            raise QueryError(f"unknown command parameter tag {tag}")
    return EasQuery(
        command=command,
        device_id=device_id_text(device_id_bytes),
        device_type=device_type,
        user=user,
        protocol_version=version,
        policy_key=policy_key,
        locale=locale,
        params=params,
        save_in_sent=save_in_sent,
        accept_multipart=accept_multipart,
        base64_form=True,
    )


def device_id_text(raw: bytes) -> str:
    """The device id of the base64 form is binary; it is stored as its base64 text, as the
    Java Opush did, so devices it registered keep their identity."""
    return base64.b64encode(raw).decode("ascii")


def encode_base64_query(
    *,
    command: str,
    device_id: bytes,
    device_type: str,
    protocol_version: str = "14.1",
    locale: int = 0x0409,
    policy_key: int | None = None,
    user: str | None = None,
    params: Mapping[str, str] | None = None,
    save_in_sent: bool = False,
    accept_multipart: bool = False,
) -> str:
    """Build a base64 query value (no URL quoting needed beyond what base64 emits)."""
    out = bytearray()
    out.append(_version_to_byte(protocol_version))
    out.append(COMMAND_NUMBERS[command])
    out += struct.pack("<H", locale)
    out.append(_check_len(len(device_id), "device id"))
    out += device_id
    if policy_key is None:
        out.append(0)
    else:
        out.append(4)
        out += struct.pack("<I", policy_key)
    dtype = device_type.encode("utf-8")
    out.append(_check_len(len(dtype), "device type"))
    out += dtype
    for name, value in (params or {}).items():
        raw = value.encode("utf-8")
        out.append(PARAMETER_NUMBERS[name])
        out.append(_check_len(len(raw), name))
        out += raw
    if user is not None:
        raw = user.encode("utf-8")
        out += bytes((_USER_TAG, _check_len(len(raw), "user"))) + raw
    flags = (_OPTION_SAVE_IN_SENT if save_in_sent else 0) | (
        _OPTION_ACCEPT_MULTIPART if accept_multipart else 0
    )
    if flags:
        out += bytes((_OPTIONS_TAG, 1, flags))
    return base64.b64encode(bytes(out)).decode("ascii")


def _check_len(n: int, what: str) -> int:
    if n > 255:
        raise ValueError(f"{what} longer than 255 bytes")
    return n


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise QueryError("query parameter is not UTF-8") from e


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise QueryError(f"base64 query truncated in {what}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def at_end(self) -> bool:
        return self._pos >= len(self._data)
