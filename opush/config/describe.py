"""The effective configuration as text lines, for the CONFIGURATION logger at startup.

Secrets (passwords) are always shown as ``*``: these lines go to opush.log.
"""

from __future__ import annotations

from typing import Any

from opush.config.loader import SECTION_CLASSES, Config
from opush.config.schema import Spec, specs

MASK = "*"


def render(spec: Spec[Any], value: Any) -> str:
    """How ``value`` of ``spec``'s key is written in an ini file."""
    if value is None:
        return ""
    return spec.type.render(value)


def describe(config: Config) -> list[str]:
    """One line per key, ``file: key = value``, marking defaults and values read elsewhere."""
    lines = [f"configuration directory: {config.config_dir}"]
    for attr_name, cls in SECTION_CLASSES:
        section = getattr(config, attr_name)
        origins = config.origins.get(cls.FILE, {})
        for attribute, spec in specs(cls):
            value = getattr(section, attribute.name)
            if value is None:
                shown = "(not set)"
            elif spec.secret:
                shown = MASK
            else:
                shown = render(spec, value) or '""'
            origin = origins.get(spec.key)
            if origin is None:
                suffix = " (default)" if value is not None else ""
            elif origin != cls.FILE:
                suffix = f" (from {origin})"
            else:
                suffix = ""
            if value is None:
                # No "=": the log sanitizer would otherwise mask "(not set)" of a password.
                lines.append(f"{cls.FILE}: {spec.key} (not set)")
            else:
                lines.append(f"{cls.FILE}: {spec.key} = {shown}{suffix}")
    for name, level in config.loggers:
        lines.append(f"logback.xml: logger {name} = {level}")
    return lines
