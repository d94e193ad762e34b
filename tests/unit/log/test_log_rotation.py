"""Daily rotation: gzip the finished day, keep the newest N, survive restarts."""

from __future__ import annotations

import calendar
import gzip
import os
from pathlib import Path

from twisted.logger import LogLevel

from opush.log import DailyFile
from opush.log._files import run_now


def day(n: int, hour: int = 12) -> float:
    """Epoch seconds on 2026-11-(n) at ``hour`` UTC."""
    return float(calendar.timegm((2026, 11, n, hour, 0, 0)))


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_first_write_of_a_new_day_rotates(tmp_path: Path) -> None:
    f = DailyFile(tmp_path / "opush.log", background=run_now)
    f.write("one\n", day(20, 10))
    f.write("two\n", day(20, 23) + 3599.999)
    f.write("three\n", day(21, 0))
    f.close()
    assert names(tmp_path) == ["opush.log", "opush.log.2026-11-20.gz"]
    with gzip.open(tmp_path / "opush.log.2026-11-20.gz", "rt") as gz:
        assert gz.read() == "one\ntwo\n"
    assert (tmp_path / "opush.log").read_text() == "three\n"


def test_keeps_the_newest_archives(tmp_path: Path) -> None:
    f = DailyFile(tmp_path / "access.log", keep=3, background=run_now)
    for n in range(1, 8):
        f.write(f"day {n}\n", day(n))
    f.close()
    assert names(tmp_path) == [
        "access.log",
        "access.log.2026-11-04.gz",
        "access.log.2026-11-05.gz",
        "access.log.2026-11-06.gz",
    ]


def test_default_keeps_thirty_days(tmp_path: Path) -> None:
    f = DailyFile(tmp_path / "opush.log", background=run_now)
    for n in range(40):
        f.write("x\n", day(1) + n * 86400)
    f.close()
    assert len(names(tmp_path)) == 31


def test_restart_on_a_later_day_archives_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "opush.log"
    path.write_text("yesterday\n")
    os.utime(path, (day(20), day(20)))
    f = DailyFile(path, background=run_now)
    f.write("today\n", day(21))
    f.close()
    assert names(tmp_path) == ["opush.log", "opush.log.2026-11-20.gz"]
    assert path.read_text() == "today\n"


def test_restart_on_the_same_day_appends(tmp_path: Path) -> None:
    path = tmp_path / "opush.log"
    path.write_text("morning\n")
    os.utime(path, (day(21, 8), day(21, 8)))
    f = DailyFile(path, background=run_now)
    f.write("noon\n", day(21))
    f.close()
    assert names(tmp_path) == ["opush.log"]
    assert path.read_text() == "morning\nnoon\n"


def test_a_second_archive_for_the_same_day_does_not_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "opush.log"
    (tmp_path / "opush.log.2026-11-20.gz").write_bytes(gzip.compress(b"first\n"))
    f = DailyFile(path, background=run_now)
    f.write("second\n", day(20))
    f.write("next day\n", day(21))
    f.close()
    assert names(tmp_path) == ["opush.log", "opush.log.2026-11-20.1.gz", "opush.log.2026-11-20.gz"]


def test_clock_going_back_does_not_rotate(tmp_path: Path) -> None:
    f = DailyFile(tmp_path / "opush.log", background=run_now)
    f.write("a\n", day(21))
    f.write("b\n", day(20))
    f.close()
    assert names(tmp_path) == ["opush.log"]


def test_service_rotates_opush_log_by_event_time(logs) -> None:
    from opush.log._service import OpushLogObserver

    observer = OpushLogObserver(logs.service.file)
    for n in (20, 21):
        observer(
            {
                "log_namespace": "CONTAINER",
                "log_level": LogLevel.warn,
                "log_time": day(n),
                "log_format": "day {n}",
                "n": n,
            }
        )
    logs.service.file.flush()
    with gzip.open(logs.dir / "opush.log.2026-11-20.gz", "rt") as gz:
        assert gz.read() == "12:00:00.000 [WARN ] {CONTAINER} [t/c/r/] day 20\n"
    assert logs.lines() == ["12:00:00.000 [WARN ] {CONTAINER} [t/c/r/] day 21"]


def test_an_empty_day_leaves_no_archive(tmp_path: Path) -> None:
    f = DailyFile(tmp_path / "opush.log", background=run_now)
    f.open(day(20))
    f.write("x\n", day(21))
    f.close()
    assert names(tmp_path) == ["opush.log"]


def test_unwritable_log_dir_fails_at_start(tmp_path: Path) -> None:
    import pytest
    from twisted.internet.task import Clock

    from opush.log import LoggingService

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    service = LoggingService(blocker / "log", tmp_path / "logback.xml", False, Clock())
    with pytest.raises(OSError):
        service.startService()
    assert not service.running
