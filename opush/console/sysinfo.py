"""Process facts for ``runtime`` and ``system`` (the CRaSH ``jvm``/``system`` equivalents).

Everything here reads /proc of this process or module attributes: cheap, local, never a
network call, so it runs on the reactor thread.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import twisted

PROC = Path("/proc")


def versions() -> list[tuple[str, str]]:
    import opush

    return [
        ("opush", opush.__version__),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Twisted", twisted.__version__),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
    ]


def memory() -> dict[str, int]:
    """Resident and virtual size now, and the peak resident size, in bytes."""
    out: dict[str, int] = {}
    try:
        text = (PROC / "self" / "status").read_text("ascii", "replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmSize", "VmHWM"):
            parts = value.split()
            if parts and parts[0].isdigit():
                out[name] = int(parts[0]) * 1024
    if "VmHWM" not in out:
        out["VmHWM"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def process_start(default: float) -> float:
    """Epoch seconds the process started (from /proc), else ``default``."""
    try:
        stat = (PROC / "self" / "stat").read_text("ascii")
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in (PROC / "stat").read_text("ascii").splitlines()
            if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return default


def open_files() -> tuple[int, int]:
    """(open file descriptors, of which sockets)."""
    fds = sockets = 0
    folder = PROC / "self" / "fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return 0, 0
    for name in names:
        fds += 1
        try:
            if os.readlink(folder / name).startswith("socket:"):
                sockets += 1
        except OSError:
            continue
    return fds, sockets


def threads(reactor: Any) -> list[tuple[str, str]]:
    rows = [("threads", str(threading.active_count()))]
    pool = getattr(reactor, "threadpool", None)
    if pool is not None:
        working = len(getattr(pool, "working", ()))
        waiting = len(getattr(pool, "waiters", ()))
        rows.append(("reactor thread pool", f"{working} busy, {waiting} idle, max {pool.max}"))
    return rows


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_duration(seconds: float) -> str:
    s = int(max(0, seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    text = f"{hours:02d}:{minutes:02d}:{s:02d}"
    return f"{days}d {text}" if days else text


def java_date(epoch: float | None = None) -> str:
    """``date`` as java.util.Date.toString() printed it: ``Wed Mar 26 16:25:53 GMT 2014``."""
    local = time.localtime(time.time() if epoch is None else epoch)
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", local)


def python_executable() -> str:
    return sys.executable
