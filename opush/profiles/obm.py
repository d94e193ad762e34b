"""The obm profile (`backend = obm`, the default): obm-sync authentication, obm-locator,
OBM's PostgreSQL tables for devices, calendars and contacts through obm-sync."""

from __future__ import annotations

from typing import Any

from opush.config import Config
from opush.profiles import Backends


def obm_backends(config: Config, reactor: Any) -> Backends:
    from opush.backends.obmsync.profile import build

    parts = build(config, reactor)
    return Backends(
        auth=parts["auth"],
        mail=parts["mail"],
        devices=parts["devices"],
        services=parts["services"],
        closeables=parts["closeables"],
    )
