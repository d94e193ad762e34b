# mypy: disallow-untyped-calls=False
"""The EAS endpoint (MS-ASHTTP): `/Microsoft-Server-ActiveSync`, `/opush/ActiveSyncServlet/`.

A POST goes: query string (plain or base64) and headers -> Basic authentication -> the
device's lane (one request at a time per user+device) -> device registration and
permissions -> policy gate -> the command's handler from `opush.commands.registry` -> WBXML
response.  Whatever is raised on the way is turned into the response by
`opush.http.errors.classify` and logged once here.  OPTIONS lists what is implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from lxml.etree import _Element
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from opush.commands.context import (
    SUPPORTED_VERSIONS,
    CommandContext,
    CommandResult,
    Handler,
    ProtocolVersion,
    format_version,
    parse_version,
)
from opush.http.auth import AuthGate
from opush.http.devices import DeviceLanes, check_device_allowed, check_policy
from opush.http.errors import WBXML_CONTENT_TYPE, HttpError, Outcome, classify
from opush.http.metrics import Metrics
from opush.http.query import EasQuery, parse_query
from opush.log import RequestContext, is_enabled, logger, new_request_id, request_context
from opush.runtime import Runtime, policy_fingerprint
from opush.wbxml import DEFAULT_LIMITS, Limits, WbxmlError, decode, encode
from opush.wbxml.logging import full_xml, trimmed_xml

log = logger("opush.http.activesync")
log_auth = logger("AUTHENTICATION")
log_full = logger("REQUEST.FULL")
log_trimmed = logger("REQUEST.TRIMMED")

#: Advertised in MS-Server-ActiveSync (MS-ASHTTP 2.2.2.1.1): the highest version we speak.
SERVER_VERSION = "16.1"
DEFAULT_VERSION: ProtocolVersion = (12, 1)

_REASONS = {449: b"Retry With", 507: b"Insufficient Storage"}


def options_headers(commands: Mapping[str, Any]) -> dict[str, str]:
    """MS-ASHTTP 2.2.4 / 3.2.5.1 OPTIONS response headers: versions and commands supported
    (only the registry's, so a device never tries what would fail)."""
    return {
        "MS-Server-ActiveSync": SERVER_VERSION,
        "MS-ASProtocolVersions": ",".join(format_version(v) for v in SUPPORTED_VERSIONS),
        "MS-ASProtocolCommands": ",".join(commands),
        "Allow": "OPTIONS,POST",
        "Public": "OPTIONS,POST",
        "Cache-Control": "private",
    }


@attrs.define
class _Trace:
    """What is known about the request so far, for logs and metrics."""

    context: RequestContext
    command: str = "-"
    user: str = ""
    device: str = ""
    version: ProtocolVersion = DEFAULT_VERSION
    disconnected: bool = False


def _header(request: Request, name: str) -> str | None:
    value = request.getHeader(name)
    return value if value is None else str(value)


def _content_type_base(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


class ActiveSyncResource(Resource):
    isLeaf = True

    def __init__(
        self,
        runtime: Runtime,
        registry: Mapping[str, Handler] | None = None,
        metrics: Metrics | None = None,
        auth: AuthGate | None = None,
    ) -> None:
        super().__init__()
        if registry is None:
            from opush.commands.registry import REGISTRY

            registry = REGISTRY
        self.runtime = runtime
        self.registry = registry
        self.metrics = metrics or Metrics()
        settings = runtime.settings
        self.auth = auth or AuthGate(runtime.auth, runtime.clock, settings)
        self.fingerprint = policy_fingerprint(settings.policy)
        self.lanes = DeviceLanes(
            settings.max_waiting_per_device, settings.throttle_retry_after_seconds
        )

    # ------------------------------------------------------------------ OPTIONS / GET

    def render_OPTIONS(self, request: Request) -> bytes:
        for name, value in options_headers(self.registry).items():
            request.setHeader(name, value)
        return b""

    def render_GET(self, request: Request) -> bytes:
        # EAS is POST and OPTIONS only (MS-ASHTTP 2.1).
        request.setResponseCode(405)
        request.setHeader("Allow", "OPTIONS,POST")
        return b""

    # ------------------------------------------------------------------ POST

    def render_POST(self, request: Request) -> Any:
        d = ensureDeferred(self._serve(request))
        d.addErrback(lambda f: log.failure("EAS request handling crashed", f))
        return NOT_DONE_YET

    async def _serve(self, request: Request) -> None:
        connection = getattr(request.transport, "sessionno", None)
        context = RequestContext(
            request_id=new_request_id(),
            connection=connection if isinstance(connection, int) else None,
        )
        trace = _Trace(context=context)
        interrupted: Deferred[None] = Deferred()

        def gone(_: Failure) -> None:
            trace.disconnected = True
            if not interrupted.called:
                interrupted.callback(None)

        request.notifyFinish().addErrback(gone)
        start = self.runtime.clock.seconds()
        self.metrics.active += 1
        token = request_context.set(context)
        outcome: Outcome | None = None
        try:
            try:
                result = await self._process(request, trace, interrupted)
                outcome = self._success(result, trace.version)
            except Exception as exc:  # every failure, by design: errors.py decides
                outcome = classify(exc, trace.command, trace.version)
                self._log_failure(trace, outcome, exc)
            if not trace.disconnected:
                self._write(request, outcome)
        finally:
            self.metrics.active -= 1
            code = outcome.code if outcome is not None else 500
            self.metrics.observe(trace.command, code, self.runtime.clock.seconds() - start)
            request_context.reset(token)

    def _success(self, result: CommandResult, version: ProtocolVersion) -> Outcome:
        headers = dict(result.headers)
        body = b""
        if result.tree is not None:
            log_tree("response", result.tree)
            try:
                body = encode(result.tree, format_version(version))
            except WbxmlError as e:  # the handler built a tree this version cannot carry
                raise RuntimeError(f"response not encodable: {e}") from e
            headers["Content-Type"] = WBXML_CONTENT_TYPE
        elif result.raw is not None:
            body = result.raw
            headers["Content-Type"] = result.content_type or "application/octet-stream"
        return Outcome(result.code, headers, body)

    def _log_failure(self, trace: _Trace, outcome: Outcome, exc: BaseException) -> None:
        text = (
            "{command} from {user}/{device} ({version}) -> {code}: {reason}"
            if trace.user
            else "{command} -> {code}: {reason}"
        )
        fields = dict(
            command=trace.command,
            user=trace.user,
            device=trace.device,
            version=format_version(trace.version),
            code=outcome.code,
            reason=outcome.reason,
        )
        if outcome.traceback:
            log.failure(text, Failure(exc), **fields)  # type: ignore[arg-type]
        elif outcome.level == "warn":
            log.warn(text, **fields)
        elif outcome.level == "error":
            log.error(text, **fields)
        elif outcome.level == "debug":
            log.debug(text, **fields)
        else:
            log.info(text, **fields)

    def _write(self, request: Request, outcome: Outcome) -> None:
        request.setResponseCode(outcome.code, _REASONS.get(outcome.code))
        request.setHeader("MS-Server-ActiveSync", SERVER_VERSION)
        request.setHeader("Cache-Control", "private")
        for name, value in outcome.headers.items():
            request.setHeader(name, value)
        if outcome.body:
            request.setHeader("Content-Length", str(len(outcome.body)))
            request.write(outcome.body)
        request.finish()

    # ------------------------------------------------------------------ the pipeline

    async def _process(
        self, request: Request, trace: _Trace, interrupted: Deferred[None]
    ) -> CommandResult:
        uri = request.uri
        query = parse_query(uri.split(b"?", 1)[1] if b"?" in uri else b"")
        trace.command = trace.context.command = query.command
        trace.device = trace.context.device_id = query.device_id
        trace.version = version = self._version(query, request)
        refusal = self.runtime.services.get("refuse_devices")
        if refusal:
            # Schema missing or too old (opush.storage.startup): console only until fixed.
            raise HttpError(503, str(refusal), {"Retry-After": "300"})

        header = request.getHeader("Authorization")
        address = getattr(request.getClientAddress(), "host", "") or ""
        credentials = await self.auth.authenticate(
            header.encode("latin-1") if isinstance(header, str) else header, str(address)
        )
        user_key = credentials.user.login_at_domain.lower()
        trace.user = trace.context.user = user_key

        handler = self.registry.get(query.command)
        if handler is None:
            # MS-ASHTTP 3.1.5.2: 501 Not Implemented, not the Java server's empty 200.
            raise HttpError(501, f"command {query.command} is not implemented")

        body = self._body(request)
        policy_key = self._policy_key(query, request)
        headers = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in request.requestHeaders.getAllRawHeaders()
        }
        content_type = _header(request, "Content-Type")

        async def work() -> CommandResult:
            device = await self.runtime.devices.touch_device(
                user_key,
                query.device_id,
                device_type=query.device_type,
                user_agent=_header(request, "User-Agent"),
                protocol_version=format_version(version),
            )
            check_device_allowed(self.runtime.settings, device, user_key)
            # The Java server's AUTHENTICATION line; INFO for a device seen the first time.
            (log_auth.info if device.first_seen == device.last_seen else log_auth.debug)(
                "Authentication success [login:{login}], the device [type:{type}, id:{id}] "
                "has been authorized.",
                login=user_key,
                type=device.device_type,
                id=device.device_id,
            )
            check_policy(query.command, device, policy_key, self.fingerprint)
            tree = self._tree(body, content_type)
            ctx = CommandContext(
                runtime=self.runtime,
                command=query.command,
                credentials=credentials,
                device=device,
                version=version,
                query=query,
                headers=headers,
                body=body,
                content_type=content_type,
                policy_key=policy_key,
                request_id=trace.context.request_id,
                interrupted=interrupted,
            )
            return await handler(ctx, tree)

        return await self.lanes.run((user_key, query.device_id), interrupted, work)

    def _version(self, query: EasQuery, request: Request) -> ProtocolVersion:
        text = query.protocol_version or _header(request, "MS-ASProtocolVersion")
        if not text:
            return DEFAULT_VERSION  # the Java server's choice for devices omitting it
        try:
            version = parse_version(text)
        except ValueError:
            raise HttpError(400, f"malformed protocol version {text!r}") from None
        if version not in SUPPORTED_VERSIONS:
            raise HttpError(400, f"unsupported protocol version {text}")
        return version

    def _policy_key(self, query: EasQuery, request: Request) -> int | None:
        if query.base64_form and query.policy_key is not None:
            return query.policy_key
        text = _header(request, "X-MS-PolicyKey")
        if text is None or not text.strip():
            return None
        try:
            value = int(text.strip())
        except ValueError:
            return -1  # present but garbage: a wrong key, never a match
        return value

    def _body(self, request: Request) -> bytes:
        limit = self.runtime.settings.max_request_bytes
        length = _header(request, "Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise HttpError(413, f"request body of {length} bytes exceeds {limit}")
        if request.content is None:
            return b""
        request.content.seek(0)
        data = request.content.read(limit + 1)
        if len(data) > limit:
            raise HttpError(413, f"request body exceeds {limit} bytes")
        return bytes(data)

    def _tree(self, body: bytes, content_type: str | None) -> _Element | None:
        """The WBXML body decoded; None for an empty or non-WBXML body (MIME, ...)."""
        if not body:
            return None
        ctype = _content_type_base(content_type)
        if ctype == WBXML_CONTENT_TYPE or (not ctype and body[:1] == b"\x03"):
            settings = self.runtime.settings
            limits = Limits(
                max_depth=settings.wbxml_max_depth,
                max_elements=settings.wbxml_max_elements,
                max_size=max(settings.max_request_bytes * 4, DEFAULT_LIMITS.max_size),
            )
            tree = decode(body, limits)
            log_tree("request", tree)
            return tree
        return None


def log_tree(direction: str, tree: _Element) -> None:
    """REQUEST.FULL / REQUEST.TRIMMED (debug): the decoded document, passwords masked."""
    if is_enabled("REQUEST.FULL", LogLevel.debug):
        log_full.debug("{direction}:\n{xml}", direction=direction, xml=full_xml(tree))
    if is_enabled("REQUEST.TRIMMED", LogLevel.debug):
        log_trimmed.debug("{direction}:\n{xml}", direction=direction, xml=trimmed_xml(tree))
