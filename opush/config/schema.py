"""Declaring ini keys on attrs classes, and the one generic loader that reads them.

Each field of a section class carries a `Spec` (ini key, value type, documentation, secret or
not) in its metadata; the loader, `describe()` and the sample writer all walk those specs, so a
key is declared exactly once.  Field names are the snake_case of the ini key
(``imap.activateTLS`` -> ``imap_activate_tls``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from opush.config.ini import Entry
from opush.config.problems import Problem
from opush.config.values import BadValue, Context, ValueType

T = TypeVar("T")
_SPEC = "opush.config.spec"


@attrs.frozen
class Spec(Generic[T]):
    key: str
    type: ValueType[T]
    doc: str
    secret: bool = False
    example: str | None = None  # shown in samples for keys without a default


def key(
    name: str,
    type_: ValueType[T],
    default: T,
    doc: str,
    *,
    secret: bool = False,
    example: str | None = None,
) -> T:
    """A key with a default value (``example`` is shown in samples when it renders empty)."""
    spec = Spec(name, type_, doc, secret, example)
    return attrs.field(default=default, metadata={_SPEC: spec})


def optional_key(
    name: str,
    type_: ValueType[T],
    doc: str,
    *,
    secret: bool = False,
    example: str | None = None,
) -> T | None:
    """A key whose default is "not set" (None)."""
    spec = Spec(name, type_, doc, secret, example)
    default: T | None = None
    return attrs.field(default=default, metadata={_SPEC: spec})


class Section(Protocol):
    """What every section class has: the file it is read from."""

    FILE: ClassVar[str]


S = TypeVar("S", bound=Section)


def specs(cls: type[Any]) -> Iterator[tuple[attrs.Attribute[Any], Spec[Any]]]:
    """The (attribute, spec) pairs of a section class, in declaration order."""
    for attribute in attrs.fields(cls):
        spec = attribute.metadata.get(_SPEC)
        if spec is not None:
            yield attribute, spec


def snake_case(ini_key: str) -> str:
    """``imap.activateTLS`` -> ``imap_activate_tls``; the rule tying field names to keys."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", ini_key)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[.\-]", "_", name).lower()


@attrs.define
class Loaded(Generic[S]):
    """A section plus which keys were explicitly set, and in which file."""

    section: S
    origin: dict[str, str]  # ini key -> file it was read from

    def is_set(self, ini_key: str) -> bool:
        return ini_key in self.origin


def load_section(
    cls: type[S],
    entries: Mapping[str, Entry],
    ctx: Context,
    problems: list[Problem],
) -> Loaded[S]:
    """Build ``cls`` from raw entries; a value that does not parse is a problem (and the field
    keeps its default so the other checks still run)."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for attribute, spec in specs(cls):
        entry = entries.get(spec.key)
        if entry is None or entry.value == "":
            continue
        try:
            values[attribute.name] = spec.type.parse(entry.value, ctx)
        except BadValue as e:
            message = str(e)
            if spec.secret:
                message = f"invalid value ({spec.type.description} expected)"
            problems.append(Problem(entry.file, spec.key, message))
            continue
        origin[spec.key] = entry.file
    return Loaded(cls(**values), origin)


def known_keys(cls: type[Any]) -> list[str]:
    return [spec.key for _, spec in specs(cls)]


def unknown_key_warnings(file: str, keys: Iterable[str], known: list[str]) -> list[Problem]:
    """A warning per unknown key, with the nearest known key when one is close."""
    warnings = []
    known_set = set(known)
    for name in keys:
        if name in known_set:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        warnings.append(Problem(file, name, f"unknown key, ignored{hint}"))
    return warnings
