"""The obm profile (`backend = obm`, the default): obm-sync authentication, obm-locator,
OBM's PostgreSQL tables for devices, calendars and contacts through obm-sync."""

from __future__ import annotations

import sys
from typing import Any

from opush.config import Config
from opush.profiles import Backends


def obm_backends(config: Config, reactor: Any) -> Backends:
    # Until the obm-sync client lands, refuse clearly at startup rather than half-serve.
    sys.stderr.write(
        "opush: opush.ini: key 'backend': the obm profile is not available in this build; "
        "use backend = standalone\n"
    )
    raise SystemExit(1)
