"""Availability (ResolveRecipients ``Availability``, MS-ASCMD 2.2.3.16) from CalDAV free/busy.

For each recipient, the VEVENT calendars under ``<dav.url><address>/`` answer an RFC 4791
free-busy-query; their FREEBUSY periods are merged into the EAS MergedFreeBusy string
(2.2.3.99): one digit per 30 minutes from StartTime, 0 free, 1 tentative, 2 busy, 3 out of
office, 4 no data.  Only busy periods leave the CalDAV server, never the events.

Reading other people's calendars needs rights: with dav_conf.ini ``dav.freebusy.login`` opush
asks as that account (give it read access on calendars), else as the asking user.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opush.backends.dav.client import DavClient, DavError
from opush.backends.interfaces import BackendUnavailable, Credentials
from opush.content.email import ics
from opush.log import logger

log = logger("opush.backends.dav")

SLOT = timedelta(minutes=30)
#: FBTYPE (RFC 5545 3.2.9) -> MergedFreeBusy digit; a period without FBTYPE is BUSY.
_DIGITS = {"FREE": 0, "BUSY-TENTATIVE": 1, "BUSY": 2, "BUSY-UNAVAILABLE": 3}
NO_DATA = "4"
#: Longest window answered (Exchange refuses beyond 42 days).
MAX_SPAN = timedelta(days=42)


def _compact(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _periods(text: str) -> list[tuple[datetime, datetime, int]]:
    """(start, end, digit) of every FREEBUSY period of a VFREEBUSY."""
    out: list[tuple[datetime, datetime, int]] = []
    root = ics.parse_ics(text)
    for fb in root.find("VFREEBUSY"):
        for prop in fb.all("FREEBUSY"):
            digit = _DIGITS.get(prop.params.get("FBTYPE", "BUSY").upper(), 2)
            for period in prop.value.split(","):
                first, _, second = period.strip().partition("/")
                try:
                    start = datetime.strptime(first, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                    if second.startswith(("P", "+P")):
                        end = start + (ics._duration(second.lstrip("+")) or timedelta(0))
                    else:
                        end = datetime.strptime(second, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                except ValueError:
                    continue
                out.append((start, end, digit))
    return out


def merged_free_busy(
    start: datetime, end: datetime, periods: list[tuple[datetime, datetime, int]]
) -> str:
    """MS-ASCMD 2.2.3.99: the highest digit of the periods overlapping each slot."""
    slots: list[int] = []
    t = start
    while t < end:
        u = min(t + SLOT, end)
        digit = 0
        for p_start, p_end, d in periods:
            if p_start < u and p_end > t:
                digit = max(digit, d)
        slots.append(digit)
        t = u
    return "".join(str(d) for d in slots)


class DavAvailability:
    """``runtime.services["availability"]``: ``await merged(credentials, address, start,
    end)`` -> MergedFreeBusy, or None when the address has no readable calendar."""

    def __init__(self, accounts: Any, login: str | None = None, password: str | None = None):
        self.accounts = accounts
        self.login = login
        self.password = password

    def _client(self, credentials: Credentials) -> DavClient:
        if self.login is None:
            client: DavClient = self.accounts.client(credentials)
            return client
        return DavClient(
            self.accounts.reactor,
            self.accounts.root,
            self.login,
            self.password or "",
            timeout=self.accounts.timeout,
            pool=self.accounts.pool,
        )

    async def merged(
        self, credentials: Credentials, address: str, start: datetime, end: datetime
    ) -> str | None:
        end = min(end, start + MAX_SPAN)
        if end <= start:
            return ""
        client = self._client(credentials)
        home = client.url(f"{address}/")
        try:
            calendars = [
                c
                for c in await client.collections(home=home)
                if c.kind == "calendar" and (not c.components or "VEVENT" in c.components)
            ]
            if not calendars:
                return None
            periods: list[tuple[datetime, datetime, int]] = []
            for c in calendars:
                text = await client.free_busy(c.href, _compact(start), _compact(end))
                periods.extend(_periods(text))
        except (DavError, BackendUnavailable) as e:
            log.info("free/busy of {who} unavailable: {e}", who=address, e=e)
            return None
        return merged_free_busy(start, end, periods)
