"""logback.xml: the named logger levels an administrator enables (guide section 12.2).

The Java server included ``/etc/opush/logback.xml``, a file of the form
``<included><logger name="AUTHENTICATION" level="INFO"/></included>``; we read the same file and
hand the (name, level) pairs to opush.log.  Anything else in the file is ignored.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from opush.config.problems import Problem

LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF")
FILE = "logback.xml"


def read_levels(
    path: Path, problems: list[Problem], warnings: list[Problem]
) -> tuple[tuple[str, str], ...]:
    """The (logger name, LEVEL) pairs of ``path``; () when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ()
    except OSError as e:
        problems.append(Problem(FILE, None, f"cannot read {path}: {e.strerror}"))
        return ()
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        problems.append(Problem(FILE, None, f"not well-formed XML: {e.msg}", e.lineno))
        return ()
    if root.tag not in ("included", "configuration"):
        problems.append(Problem(FILE, None, f"root element must be <included>, not <{root.tag}>"))
        return ()
    levels: dict[str, str] = {}
    for logger in root.iter("logger"):
        name = logger.get("name", "").strip()
        level = logger.get("level", "").strip().upper()
        line = logger.sourceline if isinstance(logger.sourceline, int) else None
        if not name:
            problems.append(Problem(FILE, None, "<logger> without a name", line))
            continue
        if level not in LEVELS:
            problems.append(
                Problem(FILE, name, f"level must be one of {', '.join(LEVELS)}, got {level!r}")
            )
            continue
        if name in levels:
            warnings.append(Problem(FILE, name, "logger given twice; the last level is used"))
        levels[name] = level
    return tuple(levels.items())
