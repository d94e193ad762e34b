"""Deployment profiles: which backends serve authentication, mail, calendars and contacts.

`backend = standalone` (any IMAP/SMTP server, CalDAV/CardDAV) and `backend = obm` (obm-sync,
obm-locator, OBM's PostgreSQL tables) each build a `Backends` record; `opush.tap` wires it into
the runtime. Keeping the choice here keeps tap.py free of profile details.
"""

from __future__ import annotations

from typing import Any

import attrs

from opush.backends.interfaces import Auth, MailBackend
from opush.storage.interfaces import DeviceRegistry


@attrs.define
class Backends:
    """What a profile provides to the runtime."""

    auth: Auth
    mail: MailBackend | None
    #: None: devices live in the state store (standalone); else OBM's tables.
    devices: DeviceRegistry | None = None
    #: Extra components by name (calendar, contacts, directory, smtp, ...).
    services: dict[str, Any] = attrs.field(factory=dict)
    #: Objects with a close() (or shutdown()) to call when opush stops.
    closeables: list[Any] = attrs.field(factory=list)
