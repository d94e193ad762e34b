"""Reading the Java Opush ini files: flat ``key=value`` lines, no sections.

The Java server read these files as ``java.util.Properties``, so we accept what it accepted:
``key=value``, ``key = value`` and ``key: value``; whole-line comments starting with ``#``, ``;``
or ``!``; ``\\uXXXX`` escapes (the guide tells admins to run ``native2ascii`` on mail_conf.ini);
files in UTF-8 or, failing that, ISO-8859-1.  There are no inline comments (a password may
contain ``#``).  One pair of surrounding double or single quotes is stripped from a value
(obm_conf.ini writes ``password = "secret"``).  ``[section]`` lines are ignored: OBM's
obm_conf.ini starts with ``[global]``.  An empty value means "not set".
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from opush.config.problems import Problem

_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_COMMENT_STARTS = ("#", ";", "!")


@attrs.frozen
class Entry:
    """A raw value and where it came from (for messages that name the right file)."""

    value: str
    file: str
    line: int


@attrs.frozen
class IniFile:
    """The entries of one file, plus what was wrong with its syntax."""

    name: str
    entries: dict[str, Entry]
    problems: list[Problem]
    warnings: list[Problem]
    sections: bool = False


def unquote(value: str) -> str:
    """Strip one pair of matching surrounding quotes (``"x"`` or ``'x'``)."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("iso-8859-1")
    return _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _split(line: str) -> tuple[str, str] | None:
    """Split at the first ``=`` or ``:`` (Properties style); None when there is neither."""
    positions = [p for p in (line.find("="), line.find(":")) if p >= 0]
    if not positions:
        return None
    at = min(positions)
    return line[:at].strip(), line[at + 1 :].strip()


def parse(text: str, name: str) -> IniFile:
    """Parse ini ``text`` of the file called ``name`` (used in problems).

    Malformed lines are errors; a key given twice is a warning (the last one wins, as with
    Properties).  Never raises.
    """
    entries: dict[str, Entry] = {}
    problems: list[Problem] = []
    warnings: list[Problem] = []
    sections = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENT_STARTS):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections = True
            continue
        split = _split(line)
        if split is None:
            # Do not quote the line: it may be a mistyped "password secret".
            problems.append(Problem(name, None, "expected key=value, found no '='", number))
            continue
        key, value = split
        if not key:
            problems.append(Problem(name, None, "expected key=value, found no key", number))
            continue
        if key in entries:
            warnings.append(
                Problem(
                    name,
                    key,
                    f"set twice (lines {entries[key].line} and {number}); the last one is used",
                )
            )
        entries[key] = Entry(unquote(value), name, number)
    return IniFile(name, entries, problems, warnings, sections)


def read(path: Path, name: str) -> IniFile | None:
    """Parse the file at ``path``; None when it does not exist.  Never raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return IniFile(name, {}, [Problem(name, None, f"cannot read {path}: {e.strerror}")], [])
    return parse(_decode(data), name)
