"""A started LoggingService writing into a tmp dir, driven by a fake clock."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock

from opush.log import LoggingService
from opush.log._files import run_now


@attrs.define
class LogSetup:
    service: LoggingService
    clock: Clock
    dir: Path
    logback: Path
    stdout: io.StringIO

    def lines(self) -> list[str]:
        path = self.dir / "opush.log"
        return path.read_text().splitlines() if path.exists() else []

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


def _make(tmp_path: Path, foreground: bool) -> Iterator[LogSetup]:
    clock = Clock()
    stdout = io.StringIO()
    logback = tmp_path / "logback.xml"
    service = LoggingService(
        tmp_path / "log",
        logback,
        foreground=foreground,
        clock=clock,
        stdout=stdout,
        background=run_now,
    )
    service.startService()
    try:
        yield LogSetup(service, clock, tmp_path / "log", logback, stdout)
    finally:
        service.stopService()


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[LogSetup]:
    yield from _make(tmp_path, foreground=False)


@pytest.fixture
def foreground_logs(tmp_path: Path) -> Iterator[LogSetup]:
    yield from _make(tmp_path, foreground=True)
