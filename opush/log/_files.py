"""Daily rotated log files: ``opush.log`` -> ``opush.log.2026-11-21.gz``, the newest N kept.

Like the Java server's logback policy (daily, gzip, 30 days). Days are UTC days of the entries'
own timestamps, so rotation needs no timer and tests drive it with made-up times. Renaming is
done inline (fast); compressing and pruning run off the reactor thread (``background``), because
gzipping a day of DEBUG logs takes seconds. Writes take a lock: stdlib loggers of libraries
(cassandra-driver) write from their own threads.
"""

from __future__ import annotations

import datetime
import gzip
import os
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

Background = Callable[[Callable[[], None]], None]


def run_in_thread(job: Callable[[], None]) -> None:
    """Default ``background``: a plain non-daemon thread, so a compression finishes at exit."""
    threading.Thread(target=job, name="opush-log-compress").start()


def run_now(job: Callable[[], None]) -> None:
    """Synchronous ``background`` (tests)."""
    job()


def _day_of(when: float) -> int:
    return int(when // 86400)


def _iso(day: int) -> str:
    return datetime.date.fromordinal(datetime.date(1970, 1, 1).toordinal() + day).isoformat()


class DailyFile:
    """An append-only text file rotated at the first write of each new UTC day."""

    def __init__(self, path: Path, keep: int = 30, background: Background = run_in_thread) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.path = path
        self.keep = keep
        self._background = background
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._day: int | None = None
        self._archive = re.compile(
            re.escape(path.name) + r"\.(\d{4}-\d{2}-\d{2})(?:\.(\d+))?(?:\.gz)?$"
        )

    def write(self, text: str, when: float) -> None:
        """Append ``text``; ``when`` (epoch seconds) decides the day it belongs to."""
        day = _day_of(when)
        with self._lock:
            f = self._file
            if f is None or (self._day is not None and day > self._day):
                f = self._roll(day)
            f.write(text)

    def open(self, when: float) -> None:
        """Open (and create) the file now, so an unwritable log directory fails at startup."""
        with self._lock:
            if self._file is None:
                self._roll(_day_of(when))

    def flush(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _roll(self, day: int) -> TextIO:
        if self._file is not None:
            empty = self._file.tell() == 0
            self._file.close()
            self._file = None
            assert self._day is not None
            if not empty:
                self._rotate(self._day)
        else:
            # Restarted on a later day than the existing file's last write: archive it first.
            try:
                st = self.path.stat()
            except FileNotFoundError:
                pass
            else:
                old = _day_of(st.st_mtime)
                if st.st_size > 0 and old < day:
                    self._rotate(old)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffered: `tail -f` shows each entry at once and a crash loses nothing written.
        self._file = open(self.path, "a", buffering=1, encoding="utf-8", errors="replace")
        self._day = day
        return self._file

    def _rotate(self, day: int) -> None:
        base = f"{self.path.name}.{_iso(day)}"
        target = self.path.with_name(base)
        n = 0
        while target.exists() or target.with_name(target.name + ".gz").exists():
            n += 1
            target = self.path.with_name(f"{base}.{n}")
        try:
            os.replace(self.path, target)
        except FileNotFoundError:
            return
        self._background(lambda: self._compress_and_prune(target))

    def _compress_and_prune(self, plain: Path) -> None:
        gz = plain.with_name(plain.name + ".gz")
        tmp = plain.with_name(plain.name + ".gz.tmp")
        with open(plain, "rb") as src, gzip.open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, gz)
        plain.unlink()
        self.prune()

    def archives(self) -> list[Path]:
        """Rotated files, oldest first."""
        found: list[tuple[str, int, Path]] = []
        for p in self.path.parent.iterdir():
            m = self._archive.match(p.name)
            if m:
                found.append((m.group(1), int(m.group(2) or 0), p))
        found.sort(key=lambda t: (t[0], t[1]))
        return [p for _, _, p in found]

    def prune(self) -> None:
        """Delete all but the newest ``keep`` archives."""
        old = self.archives()
        for p in old[: max(0, len(old) - self.keep)]:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
