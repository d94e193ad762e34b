# mypy: disallow-untyped-calls=False
"""`/metrics`: Prometheus text exposition of the front door's counters.

Kept in-process and dependency-free: request counts per command and HTTP code, latency
sums/counts per command, and requests in progress.
"""

from __future__ import annotations

from collections import defaultdict

from twisted.web.resource import Resource
from twisted.web.server import Request


class Metrics:
    def __init__(self) -> None:
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        self.seconds_sum: defaultdict[str, float] = defaultdict(float)
        self.seconds_count: defaultdict[str, int] = defaultdict(int)
        self.active = 0
        self.auth_failures = 0
        self.throttled = 0

    def observe(self, command: str, code: int, seconds: float) -> None:
        self.requests[(command, code)] += 1
        self.seconds_sum[command] += seconds
        self.seconds_count[command] += 1
        if code == 401:
            self.auth_failures += 1
        elif code == 503:
            self.throttled += 1

    def render(self) -> str:
        lines = [
            "# HELP opush_requests_total EAS requests answered, by command and HTTP code.",
            "# TYPE opush_requests_total counter",
        ]
        for (command, code), n in sorted(self.requests.items()):
            lines.append(f'opush_requests_total{{command="{_esc(command)}",code="{code}"}} {n}')
        lines += [
            "# HELP opush_request_duration_seconds Time to answer EAS requests.",
            "# TYPE opush_request_duration_seconds summary",
        ]
        for command in sorted(self.seconds_sum):
            label = f'command="{_esc(command)}"'
            lines.append(
                f"opush_request_duration_seconds_sum{{{label}}} {self.seconds_sum[command]:.6f}"
            )
            lines.append(
                f"opush_request_duration_seconds_count{{{label}}} {self.seconds_count[command]}"
            )
        lines += [
            "# HELP opush_requests_active EAS requests in progress (including waiting Pings).",
            "# TYPE opush_requests_active gauge",
            f"opush_requests_active {self.active}",
        ]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; version=0.0.4; charset=utf-8")
        return self._metrics.render().encode("utf-8")
