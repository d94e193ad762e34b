# mypy: disallow-untyped-calls=False
"""The ``dashboard`` command: a frame per second of what the server is doing.

A frame reads the one-second snapshots kept by `opush.console.metrics.MetricsHistory`:
requests per second (last second) and per minute per command, average latency over the last
minute and since start, requests in progress, Pings waiting, devices, errors and the backend
timings BREAKDOWN measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from opush.console import sysinfo
from opush.console.metrics import Snapshot

if TYPE_CHECKING:
    from opush.console.commands import ConsoleApp, Terminal

CLEAR = "\x1b[H\x1b[2J"
QUIT_KEYS = frozenset({"q", "Q", "\x03", "\x04", ""})


class Dashboard:
    def __init__(self, app: ConsoleApp) -> None:
        self.app = app

    async def run(self, terminal: Terminal, count: int | None) -> None:
        clock = self.app.clock
        stopped = False
        waiting: list[Deferred[None]] = []

        def wake(_: object = None) -> None:
            pending = list(waiting)
            waiting.clear()
            for d in pending:
                if not d.called:
                    d.callback(None)

        def listen() -> None:
            def got(key: str) -> None:
                nonlocal stopped
                if key in QUIT_KEYS:
                    stopped = True
                    wake()
                elif not stopped:
                    listen()

            terminal.wait_for_key().addCallback(got)

        if terminal.interactive:
            listen()
        frames = 0
        while not stopped:
            text = await self.frame(terminal.size()[0], terminal.interactive)
            if terminal.interactive:
                terminal.write(CLEAR + text)
            else:
                terminal.write(("\n" if frames else "") + text)
            frames += 1
            if count is not None and frames >= count:
                break
            d: Deferred[None] = Deferred()
            waiting.append(d)
            call = clock.callLater(1.0, wake)
            await d
            if call.active():
                call.cancel()

    async def frame(self, width: int = 80, interactive: bool = False) -> str:
        app = self.app
        history = app.history
        last_second = history.window(1.0)
        last_minute = history.window(60.0)
        newest = last_minute[1]
        devices = await app.device_counts()
        now = app.clock.seconds()
        started = history.started_at
        lines = [
            f"opush dashboard  {sysinfo.java_date(now)}  up "
            f"{sysinfo.human_duration(now - sysinfo.process_start(started))}"
            + ("  (q to quit)" if interactive else ""),
            "",
        ]
        lines += _requests_table(last_second, last_minute)
        pings = app.pings_waiting()
        lines.append("")
        lines.append(
            f"In progress: {newest.active} requests, "
            f"{'-' if pings is None else pings} Pings waiting   "
            f"Devices: {devices.registered} registered, {devices.seen_last_hour} seen in the "
            "last hour"
        )
        older = last_minute[0]
        errors_minute = newest.count_codes(500, 599) - older.count_codes(500, 599)
        lines.append(
            f"Errors: {errors_minute} server errors (5xx) in the last minute, "
            f"{newest.count_codes(500, 599)} since start; "
            f"{newest.count_codes(400, 499) - newest.count_codes(401, 401)} refused (4xx); "
            f"{newest.auth_failures} authentication failures"
        )
        refusal = app.runtime.services.get("refuse_devices")
        if refusal:
            lines.append(f"Device requests REFUSED: {refusal}")
        lines.append("")
        lines += _backend_table(older, newest)
        return "\n".join(line[: max(width, 40)] for line in lines) + "\n"


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}" if seconds > 0 else "-"


def _avg_ms(total: float, count: int) -> str:
    return f"{total * 1000 / count:.0f}" if count else "-"


def _requests_table(
    second: tuple[Snapshot, Snapshot], minute: tuple[Snapshot, Snapshot]
) -> list[str]:
    s0, s1 = second
    m0, m1 = minute
    commands = sorted({c for c, _ in m1.requests} | set(m1.seconds_count))
    header = ("COMMAND", "REQ/S", "REQ/MIN", "TOTAL", "AVG MS (1 MIN)", "AVG MS (ALL)")
    rows: list[tuple[str, ...]] = [header]
    span = s1.at - s0.at
    for c in [*commands, "(all)"]:
        key = None if c == "(all)" else c
        per_second = s1.count(key) - s0.count(key)
        per_minute = m1.count(key) - m0.count(key)
        total = m1.count(key)
        if key is None:
            sum_min = sum(m1.seconds_sum.values()) - sum(m0.seconds_sum.values())
            n_min = sum(m1.seconds_count.values()) - sum(m0.seconds_count.values())
            sum_all, n_all = sum(m1.seconds_sum.values()), sum(m1.seconds_count.values())
        else:
            sum_min = m1.seconds_sum.get(c, 0.0) - m0.seconds_sum.get(c, 0.0)
            n_min = m1.seconds_count.get(c, 0) - m0.seconds_count.get(c, 0)
            sum_all, n_all = m1.seconds_sum.get(c, 0.0), m1.seconds_count.get(c, 0)
        rows.append(
            (
                c,
                _rate(per_second, span) if span > 0 else str(per_second),
                str(per_minute),
                str(total),
                _avg_ms(sum_min, n_min),
                _avg_ms(sum_all, n_all),
            )
        )
    if not commands:
        rows.insert(1, ("(no request yet)", "", "", "", "", ""))
    return _table(rows)


def _backend_table(older: Snapshot, newest: Snapshot) -> list[str]:
    categories = sorted(newest.backend_ms)
    if not categories:
        return ["Backend timings: none measured (BREAKDOWN logger disabled or no request yet)"]
    rows: list[tuple[str, ...]] = [
        ("BACKEND", "REQUESTS (1 MIN)", "AVG MS (1 MIN)", "AVG MS (ALL)")
    ]
    for c in categories:
        n_min = newest.backend_count.get(c, 0) - older.backend_count.get(c, 0)
        ms_min = newest.backend_ms.get(c, 0) - older.backend_ms.get(c, 0)
        n_all = newest.backend_count.get(c, 0)
        rows.append(
            (
                c,
                str(n_min),
                f"{ms_min / n_min:.0f}" if n_min else "-",
                f"{newest.backend_ms[c] / n_all:.0f}" if n_all else "-",
            )
        )
    return _table(rows)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out
