"""access.log: Apache common log format from a real twisted.web Site, rotated, no passwords."""

from __future__ import annotations

import calendar
import gzip
import re

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from opush.log import install_access_log

COMMON = re.compile(
    r'^(?P<host>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r"(?P<status>\d{3}) (?P<size>\d+|-)$"
)


class Hello(Resource):
    isLeaf = True

    def render_POST(self, request: Request) -> bytes:
        return b"hello"

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(404)
        return b""


def _request(site: Site, raw: bytes) -> bytes:
    channel = site.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000))
    assert channel is not None
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    channel.connectionLost(None)  # type: ignore[arg-type]
    return transport.value()


def test_site_writes_common_log_format_without_passwords(logs) -> None:
    logs.clock.advance(calendar.timegm((2026, 11, 22, 8, 11, 16)))
    site = Site(Hello(), reactor=logs.clock)  # built elsewhere, without a formatter
    install_access_log(site, logs.service.access_log)
    site.startFactory()
    basic = b"Basic YWxpY2VAZXhhbXBsZS5vcmc6c2VjcmV0"  # alice@example.org:secret
    reply = _request(
        site,
        b"POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=ABC&DeviceType=iPhone"
        b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + basic + b"\r\nContent-Length: 0\r\n\r\n",
    )
    assert reply.startswith(b"HTTP/1.1 200")
    _request(site, b"GET /x?password=hunter2 HTTP/1.1\r\nHost: x\r\n\r\n")
    site.stopFactory()  # a Site closing its log (port stopped) must not close ours
    site.startFactory()
    _request(site, b"GET /y HTTP/1.1\r\nHost: x\r\n\r\n")
    site.stopFactory()

    lines = (logs.dir / "access.log").read_text().splitlines()
    assert lines[0] == (
        "192.0.2.7 - alice@example.org [22/Nov/2026:08:11:16 +0000] "
        '"POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=ABC&DeviceType=iPhone '
        'HTTP/1.1" 200 5'
    )
    assert (
        lines[1] == '192.0.2.7 - - [22/Nov/2026:08:11:16 +0000] "GET /x?password=* HTTP/1.1" 404 -'
    )
    assert len(lines) == 3
    assert all(COMMON.match(line) for line in lines)
    text = "\n".join(lines)
    assert "secret" not in text and "hunter2" not in text and "YWxp" not in text


def test_access_log_rotates_daily(logs) -> None:
    start = calendar.timegm((2026, 11, 21, 23, 59, 59))
    logs.clock.advance(start)
    logs.service.access_log.write("first\n")
    logs.clock.advance(1)
    logs.service.access_log.write("second\n")
    logs.service.access_log.close()
    with gzip.open(logs.dir / "access.log.2026-11-21.gz", "rt") as gz:
        assert gz.read() == "first\n"
    assert (logs.dir / "access.log").read_text() == "second\n"
