# mypy: disallow-untyped-calls=False
"""A small WebDAV client for CalDAV (RFC 4791) and CardDAV (RFC 6352) on twisted.web.

Only what opush needs: PROPFIND of the user's collections, REPORT sync-collection (RFC 6578)
for O(changes) change detection, multiget to fetch many resources in one request, GET, PUT
with If-Match / If-None-Match, DELETE, and the extended MKCOL (RFC 5689) for a default
collection.  Requests carry the device user's own credentials (Basic), which never reach a
log.  Connection failures and 5xx answers raise ``BackendUnavailable`` so that a Sync answers
a retryable status and advances nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from io import BytesIO
from typing import Any, cast
from urllib.parse import unquote, urljoin, urlsplit

import attrs
from lxml import etree
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.http_headers import Headers

from opush.backends.interfaces import BackendUnavailable
from opush.backends.obmsync.transport import _read_body
from opush.log import logger

log = logger("opush.backends.dav")

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
NS = {"d": DAV, "c": CALDAV, "a": CARDDAV, "cs": CS}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class DavError(Exception):
    """The DAV server refused a request (4xx other than the ones callers handle)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class InvalidSyncToken(DavError):
    """RFC 6578 3.2: the token is no longer valid; list everything again."""


@attrs.frozen
class DavResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@attrs.frozen
class Collection:
    href: str
    display_name: str
    kind: str  # "calendar" | "addressbook"
    components: tuple[str, ...] = ()  # VEVENT, VTODO... for calendars
    sync_token: str | None = None
    ctag: str | None = None


@attrs.frozen
class Resource:
    href: str
    etag: str | None
    data: str | None = None


@attrs.frozen
class SyncResult:
    token: str | None
    changed: tuple[Resource, ...]
    removed: tuple[str, ...]


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _xml(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def _status_code(text: str | None) -> int:
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def basename(href: str) -> str:
    return unquote(href.rstrip("/").rsplit("/", 1)[-1])


class DavClient:
    """One user's view of the DAV server (``root``: dav.url)."""

    def __init__(
        self,
        reactor: Any,
        root: str,
        login: str,
        password: str,
        *,
        timeout: float = 15.0,
        pool: HTTPConnectionPool | None = None,
    ) -> None:
        self.reactor = reactor
        self.root = root if root.endswith("/") else root + "/"
        self.login = login
        self._auth = b"Basic " + base64.b64encode(f"{login}:{password}".encode())
        self.timeout = timeout
        self._agent = Agent(reactor, pool=pool, connectTimeout=timeout)

    def url(self, href: str) -> str:
        return urljoin(self.root, href)

    @property
    def home(self) -> str:
        """The user's collections (Radicale, and the usual layout: ``<root><login>/``)."""
        return urlsplit(self.url(f"{self.login}/")).path

    async def request(
        self,
        method: bytes,
        href: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> DavResponse:
        h = Headers({b"User-Agent": [b"opush"], b"Authorization": [self._auth]})
        for name, value in (headers or {}).items():
            h.addRawHeader(name.encode("ascii"), value.encode("utf-8"))
        url = self.url(href)
        for attempt in (1, 2):
            producer = FileBodyProducer(BytesIO(body)) if body is not None else None
            try:
                d = self._agent.request(method, url.encode("utf-8"), h, cast(Any, producer))
                d.addTimeout(self.timeout, self.reactor)
                response = await d
                read = _read_body(response)
                read.addTimeout(self.timeout, self.reactor)
                data = await read
                break
            except ResponseNeverReceived as e:
                # A pooled connection the server had closed: every request opush sends is
                # safe to repeat (reads, conditional PUTs, DELETE, MKCOL), so once more.
                if attempt == 2:
                    raise BackendUnavailable(f"DAV server {self.root}: no response") from e
            except (CancelledError, ConnectError, ConnectionLost, DNSLookupError) as e:
                raise BackendUnavailable(f"DAV server {self.root}: {type(e).__name__}") from e
            except Exception as e:
                raise BackendUnavailable(f"DAV server {self.root}: {type(e).__name__}: {e}") from e
        if response.code >= 500:
            raise BackendUnavailable(f"DAV server {self.root}: HTTP {response.code}")
        if response.code == 401:
            raise BackendUnavailable(f"DAV server {self.root} refused the login of {self.login}")
        headers_out = {
            k.decode("latin-1").lower(): v[-1].decode("latin-1")
            for k, v in response.headers.getAllRawHeaders()
        }
        return DavResponse(response.code, headers_out, data)

    async def _multistatus(
        self, method: bytes, href: str, body: bytes, depth: str
    ) -> etree._Element:
        r = await self.request(
            method,
            href,
            body,
            {"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status in (403, 409) and b"valid-sync-token" in r.body:
            raise InvalidSyncToken(r.status, "sync token no longer valid")
        if r.status != 207:
            raise DavError(r.status, f"{method.decode()} {href}")
        try:
            return etree.fromstring(r.body, _PARSER)
        except etree.XMLSyntaxError as e:
            raise DavError(r.status, f"unreadable multistatus: {e}") from e

    # ------------------------------------------------------------------ discovery

    async def collections(self, home: str | None = None) -> list[Collection]:
        """The user's calendars and address books (PROPFIND Depth 1 on the home; ``home``:
        another user's, for free/busy)."""
        prop = etree.Element(_q(DAV, "propfind"), nsmap={"d": DAV, "c": CALDAV, "cs": CS})
        p = etree.SubElement(prop, _q(DAV, "prop"))
        for ns, tag in (
            (DAV, "resourcetype"),
            (DAV, "displayname"),
            (DAV, "sync-token"),
            (CS, "getctag"),
            (CALDAV, "supported-calendar-component-set"),
        ):
            etree.SubElement(p, _q(ns, tag))
        try:
            root = await self._multistatus(b"PROPFIND", home or self.home, _xml(prop), "1")
        except DavError as e:
            if e.status == 404:
                return []
            raise
        out: list[Collection] = []
        for resp in root.findall("d:response", NS):
            href = resp.findtext("d:href", namespaces=NS) or ""
            props = resp.find("d:propstat/d:prop", NS)
            if props is None:
                continue
            rtype = props.find("d:resourcetype", NS)
            if rtype is None:
                continue
            if rtype.find("c:calendar", NS) is not None:
                kind = "calendar"
            elif rtype.find("a:addressbook", NS) is not None:
                kind = "addressbook"
            else:
                continue
            comps = tuple(
                c.get("name", "")
                for c in props.findall("c:supported-calendar-component-set/c:comp", NS)
            )
            out.append(
                Collection(
                    href=href,
                    display_name=(props.findtext("d:displayname", namespaces=NS) or "").strip()
                    or basename(href),
                    kind=kind,
                    components=comps,
                    sync_token=props.findtext("d:sync-token", namespaces=NS),
                    ctag=props.findtext("cs:getctag", namespaces=NS),
                )
            )
        return out

    async def free_busy(self, href: str, start: str, end: str) -> str:
        """RFC 4791 7.10 free-busy-query REPORT on a calendar: its VFREEBUSY (``start``,
        ``end``: UTC ``YYYYMMDDTHHMMSSZ``)."""
        query = etree.Element(_q(CALDAV, "free-busy-query"), nsmap={"c": CALDAV})
        etree.SubElement(query, _q(CALDAV, "time-range"), start=start, end=end)
        r = await self.request(
            b"REPORT",
            href,
            _xml(query),
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
        )
        if r.status != 200:
            raise DavError(r.status, f"free-busy-query {href}")
        return r.body.decode("utf-8", "replace")

    async def make_collection(
        self, name: str, kind: str, display_name: str, components: Sequence[str] = ("VEVENT",)
    ) -> str:
        """Extended MKCOL (RFC 5689) of a calendar (holding ``components``) or address book
        under the home."""
        href = f"{self.home}{name}/"
        mk = etree.Element(_q(DAV, "mkcol"), nsmap={"d": DAV, "c": CALDAV, "a": CARDDAV})
        p = etree.SubElement(etree.SubElement(mk, _q(DAV, "set")), _q(DAV, "prop"))
        rtype = etree.SubElement(p, _q(DAV, "resourcetype"))
        etree.SubElement(rtype, _q(DAV, "collection"))
        if kind == "calendar":
            etree.SubElement(rtype, _q(CALDAV, "calendar"))
            comps = etree.SubElement(p, _q(CALDAV, "supported-calendar-component-set"))
            for comp in components:
                etree.SubElement(comps, _q(CALDAV, "comp"), name=comp)
        else:
            etree.SubElement(rtype, _q(CARDDAV, "addressbook"))
        etree.SubElement(p, _q(DAV, "displayname")).text = display_name
        r = await self.request(
            b"MKCOL", href, _xml(mk), {"Content-Type": "application/xml; charset=utf-8"}
        )
        if r.status not in (200, 201, 405):  # 405: it exists already
            raise DavError(r.status, f"MKCOL {href}")
        return href

    async def set_display_name(self, href: str, name: str) -> None:
        """PROPPATCH DAV:displayname (RFC 4918 9.2)."""
        update = etree.Element(_q(DAV, "propertyupdate"), nsmap={"d": DAV})
        prop = etree.SubElement(etree.SubElement(update, _q(DAV, "set")), _q(DAV, "prop"))
        etree.SubElement(prop, _q(DAV, "displayname")).text = name
        r = await self.request(
            b"PROPPATCH", href, _xml(update), {"Content-Type": "application/xml; charset=utf-8"}
        )
        if r.status not in (200, 207):
            raise DavError(r.status, f"PROPPATCH {href}")

    # ------------------------------------------------------------------ changes

    async def sync_collection(self, href: str, token: str | None) -> SyncResult:
        """RFC 6578 sync-collection: every member (no token) or what changed since ``token``."""
        report = etree.Element(_q(DAV, "sync-collection"), nsmap={"d": DAV})
        etree.SubElement(report, _q(DAV, "sync-token")).text = token or ""
        etree.SubElement(report, _q(DAV, "sync-level")).text = "1"
        etree.SubElement(etree.SubElement(report, _q(DAV, "prop")), _q(DAV, "getetag"))
        root = await self._multistatus(b"REPORT", href, _xml(report), "0")
        changed: list[Resource] = []
        removed: list[str] = []
        base = href.rstrip("/")
        for resp in root.findall("d:response", NS):
            rhref = resp.findtext("d:href", namespaces=NS) or ""
            if rhref.rstrip("/") == base:
                continue
            status = _status_code(resp.findtext("d:status", namespaces=NS))
            if status == 404:
                removed.append(rhref)
                continue
            etag = resp.findtext("d:propstat/d:prop/d:getetag", namespaces=NS)
            changed.append(Resource(rhref, etag))
        return SyncResult(
            root.findtext("d:sync-token", namespaces=NS), tuple(changed), tuple(removed)
        )

    async def etags(self, href: str) -> dict[str, str]:
        """PROPFIND Depth 1 getetag of every member (the fallback without sync-collection)."""
        prop = etree.Element(_q(DAV, "propfind"), nsmap={"d": DAV})
        etree.SubElement(etree.SubElement(prop, _q(DAV, "prop")), _q(DAV, "getetag"))
        root = await self._multistatus(b"PROPFIND", href, _xml(prop), "1")
        out: dict[str, str] = {}
        base = href.rstrip("/")
        for resp in root.findall("d:response", NS):
            rhref = resp.findtext("d:href", namespaces=NS) or ""
            if rhref.rstrip("/") == base:
                continue
            out[rhref] = resp.findtext("d:propstat/d:prop/d:getetag", namespaces=NS) or ""
        return out

    async def multiget(self, href: str, kind: str, members: Sequence[str]) -> list[Resource]:
        """calendar-multiget / addressbook-multiget: many resources in one REPORT."""
        if not members:
            return []
        ns, tag, data = (
            (CALDAV, "calendar-multiget", "calendar-data")
            if kind == "calendar"
            else (CARDDAV, "addressbook-multiget", "address-data")
        )
        report = etree.Element(_q(ns, tag), nsmap={"d": DAV, "x": ns})
        p = etree.SubElement(report, _q(DAV, "prop"))
        etree.SubElement(p, _q(DAV, "getetag"))
        etree.SubElement(p, _q(ns, data))
        for m in members:
            etree.SubElement(report, _q(DAV, "href")).text = m
        root = await self._multistatus(b"REPORT", href, _xml(report), "1")
        out: list[Resource] = []
        for resp in root.findall("d:response", NS):
            rhref = resp.findtext("d:href", namespaces=NS) or ""
            props = resp.find("d:propstat/d:prop", NS)
            if props is None:
                continue
            text = props.findtext(f"{{{ns}}}{data}")
            if text is None:
                continue
            out.append(Resource(rhref, props.findtext("d:getetag", namespaces=NS), text))
        return out

    # ------------------------------------------------------------------ resources

    async def get(self, href: str) -> Resource | None:
        r = await self.request(b"GET", href)
        if r.status == 404:
            return None
        if r.status != 200:
            raise DavError(r.status, f"GET {href}")
        return Resource(href, r.headers.get("etag"), r.body.decode("utf-8", "replace"))

    async def put(
        self, href: str, data: str, content_type: str, *, etag: str | None = None
    ) -> str | None:
        """PUT: create (If-None-Match: *) or replace the version ``etag`` (If-Match).
        Returns the new ETag; DavError 412 when the resource changed meanwhile."""
        headers = {"Content-Type": content_type}
        if etag is None:
            headers["If-None-Match"] = "*"
        else:
            headers["If-Match"] = etag
        r = await self.request(b"PUT", href, data.encode("utf-8"), headers)
        if r.status not in (200, 201, 204):
            raise DavError(r.status, f"PUT {href}")
        return r.headers.get("etag")

    async def delete(self, href: str) -> None:
        r = await self.request(b"DELETE", href)
        if r.status not in (200, 204, 404):
            raise DavError(r.status, f"DELETE {href}")
