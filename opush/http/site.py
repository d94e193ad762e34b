# mypy: disallow-untyped-calls=False
"""The HTTP resource tree (DESIGN.md "URLs"):

- `/Microsoft-Server-ActiveSync` and `/opush/ActiveSyncServlet/` -> EAS
- `/autodiscover/...` (any case, as proxies forward it) and `/opush/Autodiscover/` -> Autodiscover
- `/opush/healthcheck/...` -> liveness answers (the Java server's probe paths included)
- `/metrics` -> Prometheus text
- anything else -> 404
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping
from typing import Any, cast

from twisted.web.pages import notFound
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

import opush
from opush.commands.context import Handler
from opush.http.activesync import ActiveSyncResource
from opush.http.auth import AuthGate
from opush.http.autodiscover import AutodiscoverResource
from opush.http.metrics import Metrics, MetricsResource
from opush.runtime import Runtime


class HealthcheckResource(Resource):
    """`/opush/healthcheck/` answers OK; the Java probe paths `java/{version,vendor,vmname,
    encoding}` answer the Python equivalents, `opush/version` the opush version."""

    isLeaf = True

    ANSWERS: Mapping[tuple[str, ...], str] = {
        (): "OK",
        ("java", "version"): platform.python_version(),
        ("java", "vendor"): platform.python_implementation(),
        ("java", "vmname"): platform.python_implementation(),
        ("java", "encoding"): sys.getdefaultencoding().upper(),
        ("python", "version"): platform.python_version(),
        ("python", "implementation"): platform.python_implementation(),
        ("opush", "version"): opush.__version__,
    }

    def render_GET(self, request: Request) -> bytes:
        path = tuple(p.decode("utf-8", "replace") for p in (request.postpath or []) if p)
        answer = self.ANSWERS.get(path)
        request.setHeader("Content-Type", "text/plain; charset=utf-8")
        if answer is None:
            request.setResponseCode(404)
            return b"not found\n"
        return answer.encode("utf-8")


class _Dispatch(Resource):
    """A node whose children are matched by name, optionally case-insensitively."""

    def __init__(
        self, children: Mapping[str, Resource], case_insensitive: frozenset[str] = frozenset()
    ) -> None:
        super().__init__()
        self._named = dict(children)
        self._folded = {name.lower(): self._named[name] for name in case_insensitive}

    def getChild(self, path: bytes, request: Request) -> IResource:
        name = path.decode("utf-8", "replace")
        found = self._named.get(name) or self._folded.get(name.lower())
        return cast(IResource, found) if found is not None else notFound()

    def render(self, request: Request) -> bytes:
        page: Any = notFound()
        return bytes(page.render(request))


class OpushSite(Site):
    """The Site plus handles on what a service needs at shutdown and for metrics."""

    activesync: ActiveSyncResource
    metrics: Metrics

    def interrupt_requests(self) -> int:
        """End waiting Pings (and other interruptible requests) early, e.g. on shutdown."""
        return self.activesync.lanes.interrupt_all()


def make_site(
    runtime: Runtime,
    registry: Mapping[str, Handler] | None = None,
    metrics: Metrics | None = None,
) -> OpushSite:
    """The opush web site for `runtime` (opush.tap listens with it)."""
    metrics = metrics or Metrics()
    auth = AuthGate(runtime.auth, runtime.clock, runtime.settings)
    eas = ActiveSyncResource(runtime, registry=registry, metrics=metrics, auth=auth)
    autodiscover = AutodiscoverResource(runtime, auth)
    opush_node = _Dispatch(
        {
            "ActiveSyncServlet": eas,
            "Autodiscover": autodiscover,
            "healthcheck": HealthcheckResource(),
        },
        case_insensitive=frozenset({"Autodiscover"}),
    )
    root = _Dispatch(
        {
            "Microsoft-Server-ActiveSync": eas,
            "autodiscover": autodiscover,
            "opush": opush_node,
            "metrics": MetricsResource(metrics),
        },
        case_insensitive=frozenset({"autodiscover"}),
    )
    # The runtime's clock drives HTTP timeouts too, so tests can run the site on a Clock.
    site = OpushSite(root, reactor=runtime.clock, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.activesync = eas
    site.metrics = metrics
    return site
