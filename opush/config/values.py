"""Value types of the ini files: each parser turns a raw string into a typed value or raises
`BadValue` with a message that completes "key 'x': ...".

Parsers get a `Context` so relative paths can be resolved against the configuration directory.
"""

from __future__ import annotations

import enum
import os.path
import re
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar
from urllib.parse import urlsplit

import attrs

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


class BadValue(ValueError):
    """The raw value does not have the key's type; the message says what was expected."""


@attrs.frozen
class Context:
    """What a parser may need besides the raw value."""

    config_dir: Path


@attrs.frozen
class ValueType(Generic[T]):
    """A parser plus how to write a value back in an ini file (for samples and describe)."""

    parse: Callable[[str, Context], T]
    render: Callable[[T], str]
    description: str


def _quote(raw: str) -> str:
    return repr(raw) if len(raw) <= 80 else repr(raw[:77] + "...")


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _parse_bool(raw: str, ctx: Context) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise BadValue(f"expected a boolean (true or false), got {_quote(raw)}")


BOOLEAN: ValueType[bool] = ValueType(_parse_bool, lambda v: "true" if v else "false", "boolean")


_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


def integer(minimum: int | None = None, maximum: int | None = None) -> ValueType[int]:
    """An integer, optionally bounded (inclusive)."""

    def parse(raw: str, ctx: Context) -> int:
        if not _INTEGER.fullmatch(raw):
            raise BadValue(f"expected an integer, got {_quote(raw)}")
        value = int(raw, 10)
        if minimum is not None and value < minimum:
            raise BadValue(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise BadValue(f"must be at most {maximum}, got {value}")
        return value

    if minimum is not None and maximum is not None:
        description = f"integer, {minimum}..{maximum}"
    elif minimum is not None:
        description = f"integer >= {minimum}"
    else:
        description = "integer"
    return ValueType(parse, str, description)


PORT = integer(1, 65535)


def _parse_string(raw: str, ctx: Context) -> str:
    return raw


STRING: ValueType[str] = ValueType(_parse_string, str, "string")


def choice(enum_type: type[E]) -> ValueType[E]:
    """One of an enum's values, case-insensitive (the Java server upper-cased them)."""
    by_name = {str(member.value).lower(): member for member in enum_type}

    def parse(raw: str, ctx: Context) -> E:
        try:
            return by_name[raw.lower()]
        except KeyError:
            allowed = ", ".join(str(m.value) for m in enum_type)
            raise BadValue(f"expected one of {allowed}, got {_quote(raw)}") from None

    return ValueType(parse, lambda v: str(v.value), " | ".join(str(m.value) for m in enum_type))


def _parse_list(raw: str, ctx: Context) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


STRING_LIST: ValueType[tuple[str, ...]] = ValueType(
    _parse_list, lambda v: ",".join(v), "comma-separated list"
)


def _parse_path(raw: str, ctx: Context) -> Path:
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = ctx.config_dir / path
    # normpath, not resolve(): no file system access, symlinks kept as the admin wrote them
    return Path(os.path.normpath(path))


PATH: ValueType[Path] = ValueType(
    _parse_path, str, "path (relative paths are resolved against the configuration directory)"
)


def _parse_http_url(raw: str, ctx: Context) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadValue(f"expected an http:// or https:// URL, got {_quote(raw)}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise BadValue(f"bad port in URL {_quote(raw)}") from None
    return raw


HTTP_URL: ValueType[str] = ValueType(_parse_http_url, str, "http(s) URL")


def _parse_external_url(raw: str, ctx: Context) -> str:
    """The Java server took a bare FQDN and prefixed https://; a full URL is accepted too."""
    url = raw if "://" in raw else "https://" + raw
    _parse_http_url(url, ctx)
    return url.rstrip("/")


EXTERNAL_URL: ValueType[str] = ValueType(
    _parse_external_url, str, "host name (https is assumed) or http(s) URL"
)


def _parse_ldap_url(raw: str, ctx: Context) -> str:
    """As the Java server: no scheme means ldap://; only ldap and ldaps are allowed."""
    url = raw if "://" in raw else "ldap://" + raw
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.netloc:
        raise BadValue(f"expected an ldap:// or ldaps:// URL, got {_quote(raw)}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise BadValue(f"bad port in URL {_quote(raw)}") from None
    return url


LDAP_URL: ValueType[str] = ValueType(_parse_ldap_url, str, "ldap:// or ldaps:// URL")


def integer_or(word: str, meaning: T, minimum: int) -> ValueType[int | T]:
    """An integer, or ``word`` (case-insensitive) standing for ``meaning``: the Java server
    typed some EAS integers as booleans (``devicePasswordHistory=false``)."""
    number = integer(minimum)

    def parse(raw: str, ctx: Context) -> int | T:
        if raw.lower() == word:
            return meaning
        try:
            return number.parse(raw, ctx)
        except BadValue as e:
            raise BadValue(f"{e} (or {word})") from None

    def render(value: int | T) -> str:
        return word if value == meaning and not isinstance(value, int) else str(value)

    return ValueType(parse, render, f"{number.description} or {word}")
