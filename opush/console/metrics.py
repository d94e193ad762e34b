# mypy: disallow-untyped-calls=False
"""What the ``dashboard`` reads: one-second snapshots of the front door's counters
(`opush.http.metrics.Metrics`, the site's ``.metrics``) and the backend timings of the
BREAKDOWN lines.

The HTTP counters are cumulative; `MetricsHistory` keeps the last minute of snapshots so a
frame can show rates (requests per second) and latencies over a recent window. Backend
timings come from the BREAKDOWN logger's events (``REQUEST:12 (IMAP:8, SQL:2, OTHER:2)``),
so they are collected only while that logger is enabled (logback.xml, level INFO).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.task import LoopingCall
from twisted.logger import ILogObserver
from zope.interface import implementer

_CATEGORY = re.compile(r"([A-Z][A-Z0-9_.-]*):(\d+)")
_NOT_BACKEND = frozenset({"REQUEST", "OTHER"})


@attrs.frozen
class Snapshot:
    """Cumulative counters at one instant."""

    at: float
    requests: Mapping[tuple[str, int], int]
    seconds_sum: Mapping[str, float]
    seconds_count: Mapping[str, int]
    active: int
    auth_failures: int
    backend_ms: Mapping[str, int]
    backend_count: Mapping[str, int]

    def count(self, command: str | None = None) -> int:
        return sum(n for (c, _), n in self.requests.items() if command in (None, c))

    def count_codes(self, low: int, high: int) -> int:
        return sum(n for (_, code), n in self.requests.items() if low <= code <= high)


@implementer(ILogObserver)
class BreakdownCollector:
    """Sums the BREAKDOWN events' time per backend category (IMAP, SQL, CASSANDRA, OBM...)."""

    def __init__(self) -> None:
        self.ms: dict[str, int] = {}
        self.count: dict[str, int] = {}

    def __call__(self, event: Mapping[str, Any]) -> None:
        if event.get("log_namespace") != "BREAKDOWN":
            return
        text = event.get("breakdown")
        if isinstance(text, str):
            self.add(text)

    def add(self, rendered: str) -> None:
        seen: dict[str, int] = {}
        for category, ms in _CATEGORY.findall(rendered):
            if category not in _NOT_BACKEND:
                seen[category] = seen.get(category, 0) + int(ms)
        for category, ms in seen.items():
            self.ms[category] = self.ms.get(category, 0) + ms
            self.count[category] = self.count.get(category, 0) + 1


class MetricsHistory:
    """Snapshots of `metrics` every second, the last ``keep`` of them."""

    def __init__(
        self,
        metrics: Callable[[], Any],
        clock: Any,
        breakdown: BreakdownCollector | None = None,
        keep: int = 61,
    ) -> None:
        self._metrics = metrics
        self.clock = clock
        self.breakdown = breakdown or BreakdownCollector()
        self.snapshots: deque[Snapshot] = deque(maxlen=keep)
        self._loop: LoopingCall | None = None
        self.started_at = clock.seconds()

    def take(self) -> Snapshot:
        """Record a snapshot now (called every second)."""
        snap = self.current()
        self.snapshots.append(snap)
        return snap

    def current(self) -> Snapshot:
        m = self._metrics()
        return Snapshot(
            at=self.clock.seconds(),
            requests=dict(getattr(m, "requests", {}) or {}),
            seconds_sum=dict(getattr(m, "seconds_sum", {}) or {}),
            seconds_count=dict(getattr(m, "seconds_count", {}) or {}),
            active=int(getattr(m, "active", 0) or 0),
            auth_failures=int(getattr(m, "auth_failures", 0) or 0),
            backend_ms=dict(self.breakdown.ms),
            backend_count=dict(self.breakdown.count),
        )

    def start(self) -> None:
        loop = LoopingCall(self.take)
        loop.clock = self.clock
        loop.start(1.0, now=True)
        self._loop = loop

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def window(self, seconds: float) -> tuple[Snapshot, Snapshot]:
        """(older, newest): newest is read now (not kept); older is the oldest kept snapshot
        at most ``seconds`` old (the newest itself when nothing older is kept)."""
        newest = self.current()
        older = newest
        for snap in self.snapshots:
            if newest.at - snap.at <= seconds + 0.5 and snap.at < newest.at:
                older = snap
                break
        return older, newest
