"""Per-logger thresholds, as the Java server's logback configuration had them.

The guide: every event at WARN or above is written whatever its logger; MIGRATION, CONFIGURATION
and CONTAINER are on at INFO; the administrator enables the other named loggers in
``logback.xml``. Logger names are hierarchical as in logback (``<logger name="twisted"
level="INFO"/>`` also covers ``twisted.web.http``), and an entry in logback.xml always wins, so
``level="ERROR"`` or ``"OFF"`` can silence a noisy library's warnings.

The effective threshold of each name is computed once and cached in a plain dict, so the hot
paths (IMAP.COMMAND, REQUEST.FULL at DEBUG) pay one dict lookup per event.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path

from twisted.logger import LogLevel

DEBUG = 10
INFO = 20
WARN = 30
ERROR = 40
OFF = 100

#: Twisted level -> numeric priority.
PRIORITY: dict[LogLevel, int] = {
    LogLevel.debug: DEBUG,
    LogLevel.info: INFO,
    LogLevel.warn: WARN,
    LogLevel.error: ERROR,
    LogLevel.critical: ERROR + 10,
}

#: Twisted level -> the ``%-5level`` column of the Java pattern (logback has no CRITICAL).
LABEL: dict[LogLevel, str] = {
    LogLevel.debug: "DEBUG",
    LogLevel.info: "INFO ",
    LogLevel.warn: "WARN ",
    LogLevel.error: "ERROR",
    LogLevel.critical: "ERROR",
}

#: logback level names (case-insensitive) -> threshold. TRACE/ALL: Twisted has nothing below debug.
LOGBACK_LEVELS: dict[str, int] = {
    "ALL": DEBUG,
    "TRACE": DEBUG,
    "DEBUG": DEBUG,
    "INFO": INFO,
    "WARN": WARN,
    "ERROR": ERROR,
    "OFF": OFF,
}

#: The guide's named loggers (section 12.2).
NAMED_LOGGERS = (
    "AUTHENTICATION",
    "BREAKDOWN",
    "CONFIGURATION",
    "CONTAINER",
    "IMAP.COMMAND",
    "MAIL.DATA",
    "MIGRATION",
    "OBM-SYNC",
    "REQUEST.FULL",
    "REQUEST.TRIMMED",
    "RESOURCES",
    "SUMMARY.IN",
    "SUMMARY.OUT",
)

ROOT = ""

#: Built-in defaults: root WARN; the loggers the Java server shipped enabled at INFO; our own
#: module loggers (``opush.*``) like CONTAINER.
DEFAULTS: dict[str, int] = {
    ROOT: WARN,
    "MIGRATION": INFO,
    "CONFIGURATION": INFO,
    "CONTAINER": INFO,
    "opush": INFO,
}


class LogbackError(ValueError):
    """logback.xml cannot be used; the message says why (file, line)."""


class Levels:
    """Thresholds per logger name: built-in defaults overlaid by logback.xml entries."""

    def __init__(self, defaults: Mapping[str, int] = DEFAULTS) -> None:
        self._defaults = dict(defaults)
        self._configured: dict[str, int] = {}
        self._cache: dict[str, int] = {}

    def threshold(self, name: str) -> int:
        """The lowest priority written for ``name`` (a dict lookup once computed)."""
        try:
            return self._cache[name]
        except KeyError:
            value = self._compute(name)
            self._cache[name] = value
            return value

    def _compute(self, name: str) -> int:
        # logback.xml entries first (nearest ancestor wins), then the built-in ones (which stand
        # for the entries the Java server's shipped logback.xml had), then the roots.
        for table in (self._configured, self._defaults):
            probe = name
            while probe:
                if probe in table:
                    return table[probe]
                cut = probe.rfind(".")
                probe = probe[:cut] if cut > 0 else ROOT
        return self._configured.get(ROOT, self._defaults.get(ROOT, WARN))

    def is_enabled(self, name: str, level: LogLevel) -> bool:
        return PRIORITY[level] >= self.threshold(name)

    def add_default(self, name: str, threshold: int) -> None:
        """Give an application logger name a default (``logger()`` does this for unknown names)."""
        if name not in self._defaults:
            self._defaults[name] = threshold
            self._cache = {}

    @property
    def configured(self) -> dict[str, int]:
        return dict(self._configured)

    def configure(self, configured: Mapping[str, int]) -> bool:
        """Replace the logback.xml overlay; True if anything changed."""
        new = dict(configured)
        if new == self._configured:
            return False
        self._configured = new
        # A fresh dict rather than clear(): a reader in another thread sees old or new, never half.
        self._cache = {}
        return True

    @contextlib.contextmanager
    def override(self, configured: Mapping[str, int]) -> Iterator[None]:
        """Temporarily add entries (tests: ``with levels.override({"IMAP.COMMAND": DEBUG}):``)."""
        saved = self._configured
        self.configure({**saved, **configured})
        try:
            yield
        finally:
            self.configure(saved)


def parse_logback(path: Path) -> dict[str, int]:
    """Read ``<logger name=".." level=".."/>`` (and ``<root level=".."/>``) entries.

    Accepts the guide's ``<included>`` form and a full ``<configuration>``. A missing file means
    "no overlay". Entries without a level (or ``INHERITED``/``NULL``) are ignored, as logback does.
    Raises LogbackError for malformed XML or unknown level names.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise LogbackError(f"{path}: cannot read: {e.strerror}") from e
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise LogbackError(f"{path}: not well-formed XML: {e}") from e
    result: dict[str, int] = {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1] if isinstance(el.tag, str) else ""
        if tag not in ("logger", "root"):
            continue
        level = (el.get("level") or "").strip().upper()
        if level in ("", "INHERITED", "NULL"):
            continue
        if level not in LOGBACK_LEVELS:
            raise LogbackError(
                f"{path}: unknown level {el.get('level')!r} "
                f"(use one of {', '.join(LOGBACK_LEVELS)})"
            )
        name = ROOT if tag == "root" else (el.get("name") or "").strip()
        if tag == "logger" and not name:
            raise LogbackError(f"{path}: <logger> without a name")
        result[name] = LOGBACK_LEVELS[level]
    return result


def level_name(threshold: int) -> str:
    for name, value in LOGBACK_LEVELS.items():
        if value == threshold and name not in ("ALL", "TRACE"):
            return name
    return str(threshold)
