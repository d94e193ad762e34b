# mypy: disallow-untyped-calls=False
"""Autodiscover (MS-ASCMD 2.2.1.1): tells a device, from the user's address, where EAS is.

POST of a small XML document, authenticated with Basic like EAS requests.  The request is
untrusted XML: it is size-limited, parsed without DTDs, entities or network access, and
any document that declares a DOCTYPE is refused (no external entities, no billion laughs).

- AcceptableResponseSchema mobilesync/responseschema/2006: the MobileSync server URL built
  from opush.ini `external-url`.
- Anything else (Outlook's outlook/responseschema/2006a): ErrorCode 601, "provider not
  found for this schema", which is what an EAS-only server answers (MS-ASCMD 2.2.3.64).
- Malformed requests: ErrorCode 600 "Invalid Request" (MS-ASCMD 4.2.3 example).
- Autodiscover v2 (``GET .../autodiscover.json``, Outlook mobile): the EAS URL as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from lxml import etree
from twisted.internet.defer import ensureDeferred
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from opush.http.auth import AuthGate
from opush.http.errors import classify
from opush.log import logger
from opush.runtime import Runtime

log = logger("opush.http.autodiscover")

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
MOBILESYNC_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)
OUTLOOK_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)


class InvalidRequest(ValueError):
    """The Autodiscover request is not a well-formed, DTD-free request document."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_request(body: bytes, max_bytes: int) -> tuple[str, str]:
    """(EMailAddress, AcceptableResponseSchema) of a request document; InvalidRequest else."""
    if len(body) > max_bytes:
        raise InvalidRequest(f"request larger than {max_bytes} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise InvalidRequest("DTDs and entity declarations are not accepted")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as e:
        raise InvalidRequest(f"malformed XML: {e}") from e
    if root.getroottree().docinfo.internalDTD is not None:
        raise InvalidRequest("DTDs are not accepted")
    if etree.QName(root).localname != "Autodiscover":
        raise InvalidRequest("root element is not Autodiscover")
    fields: dict[str, str] = {}
    for request in root:
        if not isinstance(request.tag, str) or etree.QName(request).localname != "Request":
            continue
        for child in request:
            if isinstance(child.tag, str):
                fields[etree.QName(child).localname] = (child.text or "").strip()
    email = fields.get("EMailAddress", "")
    schema = fields.get("AcceptableResponseSchema", "")
    if not email or not schema:
        raise InvalidRequest("EMailAddress and AcceptableResponseSchema are required")
    return email, schema


def _document(response: etree._Element) -> bytes:
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})  # type: ignore[dict-item]
    root.append(response)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def error_document(code: int, message: str, namespace: str = MOBILESYNC_RESPONSE_NS) -> bytes:
    response = etree.Element(f"{{{namespace}}}Response", nsmap={None: namespace})  # type: ignore[dict-item]
    error = _sub(response, namespace, "Error")
    _sub(error, namespace, "ErrorCode", str(code))
    _sub(error, namespace, "Message", message)
    _sub(error, namespace, "DebugData")
    return _document(response)


def mobilesync_document(email: str, display_name: str | None, url: str) -> bytes:
    """MS-ASCMD 2.2.1.1.2: Culture, User, Action/Settings/Server (Type MobileSync)."""
    ns = MOBILESYNC_RESPONSE_NS
    response = etree.Element(f"{{{ns}}}Response", nsmap={None: ns})  # type: ignore[dict-item]
    _sub(response, ns, "Culture", "en:us")
    user = _sub(response, ns, "User")
    if display_name:
        _sub(user, ns, "DisplayName", display_name)
    _sub(user, ns, "EMailAddress", email)
    server = _sub(_sub(_sub(response, ns, "Action"), ns, "Settings"), ns, "Server")
    _sub(server, ns, "Type", "MobileSync")
    _sub(server, ns, "Url", url)
    _sub(server, ns, "Name", url)
    return _document(response)


class AutodiscoverResource(Resource):
    isLeaf = True

    def __init__(self, runtime: Runtime, auth: AuthGate) -> None:
        super().__init__()
        self.runtime = runtime
        self.auth = auth

    def render_GET(self, request: Request) -> bytes:
        path = (request.path or b"").decode("utf-8", "replace")
        if "/autodiscover.json" in path.lower():
            return self._json(request, path)
        request.setResponseCode(405)
        request.setHeader("Allow", "POST")
        return b""

    def _json(self, request: Request, path: str) -> bytes:
        """Autodiscover v2 (what Outlook mobile asks first): ``GET
        /autodiscover/autodiscover.json?Email=<address>&Protocol=ActiveSync`` or
        ``.../autodiscover.json/v1.0/<address>?Protocol=ActiveSync``, unauthenticated, answers
        ``{"Protocol": "ActiveSync", "Url": <EAS URL>}``; other protocols get Exchange's 400
        InvalidProtocol."""
        args = {
            k.decode("utf-8", "replace").lower(): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items()
            if v
        }
        protocol = args.get("protocol", "")
        email = args.get("email", "") or path.rstrip("/").rsplit("/", 1)[-1]
        request.setHeader("Content-Type", "application/json; charset=utf-8")
        request.setHeader("Cache-Control", "private")
        if protocol.lower() != "activesync" or "@" not in email:
            request.setResponseCode(400)
            log.info("Autodiscover v2 refused: protocol {p!r}", p=protocol)
            return json.dumps(
                {
                    "ErrorCode": "InvalidProtocol",
                    "ErrorMessage": f"The given protocol value '{protocol}' is invalid. "
                    "Supported values are 'ActiveSync'",
                }
            ).encode()
        return json.dumps(
            {"Protocol": "ActiveSync", "Url": self.runtime.settings.activesync_url}
        ).encode()

    def render_POST(self, request: Request) -> Any:
        ensureDeferred(self._serve(request))
        return NOT_DONE_YET

    async def _serve(self, request: Request) -> None:
        code, headers, body = 200, {"Content-Type": "text/xml; charset=utf-8"}, b""
        try:
            header = request.getHeader("Authorization")
            address = getattr(request.getClientAddress(), "host", "") or ""
            credentials = await self.auth.authenticate(
                header.encode("latin-1") if isinstance(header, str) else header, str(address)
            )
            limit = self.runtime.settings.autodiscover_max_bytes
            data = b""
            if request.content is not None:
                request.content.seek(0)
                data = request.content.read(limit + 1)
            try:
                email, schema = parse_request(data, limit)
            except InvalidRequest as e:
                log.info("Autodiscover request refused: {why}", why=str(e))
                body = error_document(600, "Invalid Request")
            else:
                if schema == MOBILESYNC_RESPONSE_NS:
                    user = credentials.user
                    body = mobilesync_document(
                        email, user.display_name, self.runtime.settings.activesync_url
                    )
                else:
                    body = error_document(601, "Provider is not available", RESPONSE_NS)
        except Exception as exc:  # errors.py decides, as for EAS requests
            outcome = classify(exc, "Autodiscover", (14, 1))
            if outcome.traceback:
                log.failure("Autodiscover failed", Failure(exc))
            else:
                log.info("Autodiscover -> {code}: {why}", code=outcome.code, why=outcome.reason)
            code, headers, body = outcome.code, dict(outcome.headers), b""
        if request.finished or getattr(request, "_disconnected", False):
            return
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name, value)
        request.setHeader("Content-Length", str(len(body)))
        request.write(body)
        request.finish()
