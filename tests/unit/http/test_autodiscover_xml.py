"""Autodiscover: both response schemas, case-insensitive paths, hostile XML refused."""

from __future__ import annotations

import pytest
from lxml import etree

from opush.http.autodiscover import (
    MOBILESYNC_RESPONSE_NS,
    OUTLOOK_RESPONSE_NS,
    RESPONSE_NS,
    InvalidRequest,
    parse_request,
)
from opush.runtime import FrontDoorSettings
from tests.support.frontdoor import basic, front_door

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
OUTLOOK_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
AUTH = {"Authorization": basic("alice@example.org", "secret"), "Content-Type": "text/xml"}


def request_xml(schema: str = MOBILESYNC_RESPONSE_NS, ns: str = REQUEST_NS) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>'
        f'<Autodiscover xmlns="{ns}"><Request>'
        f"<EMailAddress>alice@example.org</EMailAddress>"
        f"<AcceptableResponseSchema>{schema}</AcceptableResponseSchema>"
        f"</Request></Autodiscover>"
    ).encode()


def find(body: bytes, path: str) -> str | None:
    root = etree.fromstring(body)
    el = root.find(path, namespaces={"r": RESPONSE_NS, "m": MOBILESYNC_RESPONSE_NS})
    return None if el is None else el.text


@pytest.mark.parametrize(
    "path",
    [
        "/autodiscover/autodiscover.xml",
        "/AutoDiscover/AutoDiscover.xml",
        "/Autodiscover/Autodiscover.xml",
        "/opush/Autodiscover/",
    ],
)
def test_mobilesync_response_with_external_url(path: str) -> None:
    fd = front_door(FrontDoorSettings(external_url="mail.example.org"))
    r = fd.send("POST", path, AUTH, request_xml())
    assert r.code == 200 and r.header(
        "content-type",
    ).startswith("text/xml")  # type: ignore[union-attr]
    url = "https://mail.example.org/Microsoft-Server-ActiveSync"
    assert find(r.body, "m:Response/m:Action/m:Settings/m:Server/m:Type") == "MobileSync"
    assert find(r.body, "m:Response/m:Action/m:Settings/m:Server/m:Url") == url
    assert find(r.body, "m:Response/m:User/m:EMailAddress") == "alice@example.org"
    assert find(r.body, "m:Response/m:User/m:DisplayName") == "Alice Liddell"


def test_outlook_schema_gets_provider_not_found() -> None:
    r = front_door().send(
        "POST",
        "/autodiscover/autodiscover.xml",
        AUTH,
        request_xml(OUTLOOK_RESPONSE_NS, OUTLOOK_REQUEST_NS),
    )
    assert r.code == 200
    assert find(r.body, "r:Response/r:Error/r:ErrorCode") == "601"


def test_requires_basic_auth() -> None:
    fd = front_door()
    r = fd.send(
        "POST", "/autodiscover/autodiscover.xml", {"Content-Type": "text/xml"}, request_xml()
    )
    assert r.code == 401 and r.header("WWW-Authenticate")
    assert fd.send("GET", "/autodiscover/autodiscover.xml").code == 405


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Autodiscover xmlns="%s"><Request><EMailAddress>&xxe;</EMailAddress>
<AcceptableResponseSchema>%s</AcceptableResponseSchema></Request></Autodiscover>""" % (
    REQUEST_NS.encode(),
    MOBILESYNC_RESPONSE_NS.encode(),
)

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<Autodiscover><Request><EMailAddress>&lol4;</EMailAddress>
<AcceptableResponseSchema>x</AcceptableResponseSchema></Request></Autodiscover>"""


@pytest.mark.parametrize(
    "body",
    [
        XXE,
        LAUGHS,
        b"<Autodiscover>" + b"<a>" * 10 + b"x" * 70_000,
        b"not xml at all",
        b"<Other/>",
        b'<Autodiscover xmlns="x"><Request/></Autodiscover>',
    ],
)
def test_hostile_or_malformed_requests_get_error_600(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_request(body, 64 * 1024)
    r = front_door().send("POST", "/autodiscover/autodiscover.xml", AUTH, body)
    assert r.code == 200
    assert find(r.body, "m:Response/m:Error/m:ErrorCode") == "600"
    assert b"root:" not in r.body  # nothing of /etc/passwd
