"""The directory (GAL) over LDAP: ldap_conf.ini's search, as the Java Opush did it, safer.

Java behaviour kept (opush-java.md §5 LDAP): anonymous bind to ``search.ldap.url``, base
``search.ldap.basedn`` with ``%d`` replaced by the user's domain, filter ``search.ldap.filter``
with ``%q`` replaced by what the user typed, subtree scope, at most ``search.ldap.limit``
entries, attributes displayName/cn/sn/givenName/mail/telephoneNumber/mobile (plus a few more
GAL fields).  Changed: the typed text is escaped (RFC 4515) before it goes into the filter, so
``*``, ``(`` or ``)`` in a query cannot rewrite the filter; the Java ``**`` -> ``*`` clean-up
is applied to the template.

One short connection per search (GAL lookups are rare and a pooled LDAP session would only
add failure modes); everything is bounded by ``timeout``.  Failures raise
``DirectoryUnavailable`` (a ``BackendUnavailable``: retry later, never "no results").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import clientFromString

from opush.backends.interfaces import BackendUnavailable, UserIdentity
from opush.log import logger

log = logger("opush.backends.ldap")


class DirectoryUnavailable(BackendUnavailable):
    """The LDAP server could not be reached, timed out, or refused the search."""


@attrs.frozen
class DirectoryEntry:
    """One person of the directory, in the GAL's terms (MS-ASCMD 2.2.3.x GAL properties)."""

    email: str | None
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    mobile_phone: str | None = None
    home_phone: str | None = None
    office: str | None = None
    title: str | None = None
    company: str | None = None
    alias: str | None = None
    #: jpegPhoto (RFC 2798), when the search asked for photos.
    photo: bytes | None = None
    #: DER X.509 certificates (userCertificate;binary, and those of userSMIMECertificate's
    #: PKCS#7), when the search asked for certificates.
    certificates: tuple[bytes, ...] = ()


class Directory(Protocol):
    """Who is in the organization: the GAL store of Search and ResolveRecipients."""

    async def search(
        self,
        user: UserIdentity,
        query: str,
        limit: int | None = None,
        *,
        photos: bool = False,
        certificates: bool = False,
    ) -> list[DirectoryEntry]:
        """Entries matching `query` (prefix of name or address), at most `limit`; with their
        photo and S/MIME certificates only when asked (they are big)."""
        ...


@attrs.frozen
class LdapSettings:
    """ldap_conf.ini, plus the timeout opush gives every search."""

    url: str
    basedn: str
    filter: str
    limit: int = 100
    timeout: float = 5.0

    @classmethod
    def from_section(cls, section: Any, timeout: float = 5.0) -> LdapSettings | None:
        """From the loaded ``config.ldap`` (None when no ``search.ldap.url``: no GAL)."""
        url = getattr(section, "search_ldap_url", None)
        if not url:
            return None
        return cls(
            url=str(url),
            basedn=str(section.search_ldap_basedn),
            filter=str(section.search_ldap_filter),
            limit=int(section.search_ldap_limit),
            timeout=timeout,
        )


def escape_filter_value(value: str) -> str:
    """RFC 4515 3: the characters that would change a filter's meaning, as \\XX."""
    out = []
    for ch in value:
        if ch in "\\*()\x00":
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def build_filter(template: str, query: str) -> str:
    """``search.ldap.filter`` with ``%q`` -> the escaped query (then ``**`` -> ``*``, the
    Java clean-up for templates such as ``(mail=*%q*)`` and an empty query)."""
    # JNDI tolerated blanks between components, as in the guide's default filter
    # "(&(objectClass=inetOrgPerson) (|(mail=%q*)...))"; RFC 4515 parsers do not.
    compact = re.sub(r"\)\s+(?=[()])", ")", template.strip())
    compact = re.sub(r"\(\s+(?=[(&|!])", "(", compact)
    text = compact.replace("%q", escape_filter_value(query.strip()))
    while "**" in text:
        text = text.replace("**", "*")
    return text


def build_base(template: str, domain: str | None) -> str:
    return template.replace("%d", domain or "")


def endpoint_description(url: str, timeout: float) -> str:
    """``ldap://host[:port]`` / ``ldaps://host[:port]`` (no scheme = ldap) -> a Twisted
    client endpoint string."""
    text = url.strip()
    if "://" not in text:
        text = f"ldap://{text}"
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    host = parts.hostname or "localhost"
    host = host.replace(":", "\\:")
    if scheme == "ldaps":
        return f"tls:host={host}:port={parts.port or 636}:timeout={max(1, int(timeout))}"
    if scheme != "ldap":
        raise ValueError(f"unsupported LDAP URL scheme {scheme!r}")
    return f"tcp:host={host}:port={parts.port or 389}:timeout={max(1, int(timeout))}"


_ATTRIBUTES = (
    "displayName",
    "cn",
    "sn",
    "givenName",
    "mail",
    "telephoneNumber",
    "mobile",
    "homePhone",
    "physicalDeliveryOfficeName",
    "title",
    "o",
    "uid",
)


def _first(attributes: Mapping[str, Iterable[bytes | str]], name: str) -> str | None:
    for key, values in attributes.items():
        if key.lower() == name.lower():
            for value in values:
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                text = text.strip()
                if text:
                    return text
    return None


def _attribute_map(entry: Any) -> dict[str, list[bytes | str]]:
    out: dict[str, list[bytes | str]] = {}
    for key, values in entry.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        out[name] = list(values)
    return out


_PHOTO_ATTRIBUTES = ("jpegPhoto",)
_CERTIFICATE_ATTRIBUTES = ("userCertificate;binary", "userSMIMECertificate")


def _binary(attributes: Mapping[str, Iterable[bytes | str]], name: str) -> list[bytes]:
    """Every value of ``name`` (``;binary`` or not) as bytes."""
    wanted = name.lower().split(";")[0]
    out: list[bytes] = []
    for key, values in attributes.items():
        if key.lower().split(";")[0] == wanted:
            for value in values:
                out.append(value if isinstance(value, bytes) else value.encode("latin-1"))
    return out


def _certificates(attributes: Mapping[str, Iterable[bytes | str]]) -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    found: list[bytes] = [c for c in _binary(attributes, "userCertificate") if c]
    for blob in _binary(attributes, "userSMIMECertificate"):
        try:
            found.extend(
                c.public_bytes(Encoding.DER) for c in pkcs7.load_der_pkcs7_certificates(blob)
            )
        except ValueError:
            continue  # not PKCS#7: nothing usable
    unique: list[bytes] = []
    for c in found:
        if c not in unique:
            unique.append(c)
    return tuple(unique)


def entry_from_attributes(attributes: Mapping[str, Iterable[bytes | str]]) -> DirectoryEntry:
    first = _first(attributes, "givenName")
    last = _first(attributes, "sn")
    display = _first(attributes, "displayName") or _first(attributes, "cn")
    if display is None and (first or last):
        display = " ".join(p for p in (first, last) if p)
    return DirectoryEntry(
        email=_first(attributes, "mail"),
        display_name=display,
        first_name=first,
        last_name=last,
        phone=_first(attributes, "telephoneNumber"),
        mobile_phone=_first(attributes, "mobile"),
        home_phone=_first(attributes, "homePhone"),
        office=_first(attributes, "physicalDeliveryOfficeName"),
        title=_first(attributes, "title"),
        company=_first(attributes, "o"),
        alias=_first(attributes, "uid"),
        photo=next(iter(_binary(attributes, "jpegPhoto")), None) or None,
        certificates=_certificates(attributes),
    )


class LdapDirectory:
    """`Directory` over ldaptor: anonymous bind, one subtree search, unbind."""

    def __init__(self, reactor: Any, settings: LdapSettings) -> None:
        self.reactor = reactor
        self.settings = settings

    async def search(
        self,
        user: UserIdentity,
        query: str,
        limit: int | None = None,
        *,
        photos: bool = False,
        certificates: bool = False,
    ) -> list[DirectoryEntry]:
        from ldaptor.protocols import pureldap
        from ldaptor.protocols.ldap import ldapclient, ldaperrors, ldapsyntax
        from ldaptor.protocols.ldap.distinguishedname import DistinguishedName

        settings = self.settings
        size = settings.limit if limit is None else min(limit, settings.limit or limit)
        filter_text = build_filter(settings.filter, query)
        base = build_base(settings.basedn, user.domain)
        description = endpoint_description(settings.url, settings.timeout)
        endpoint = clientFromString(self.reactor, description)  # type: ignore[no-untyped-call]
        client: Any = None

        async def run() -> list[DirectoryEntry]:
            nonlocal client
            from twisted.internet.endpoints import connectProtocol

            client = await connectProtocol(  # type: ignore[no-untyped-call]
                endpoint, ldapclient.LDAPClient()
            )
            await client.bind()
            found: list[DirectoryEntry] = []
            entry = ldapsyntax.LDAPEntry(client, DistinguishedName(base))
            await entry.search(
                filterText=filter_text,
                attributes=[
                    *_ATTRIBUTES,
                    *(_PHOTO_ATTRIBUTES if photos else ()),
                    *(_CERTIFICATE_ATTRIBUTES if certificates else ()),
                ],
                scope=pureldap.LDAP_SCOPE_wholeSubtree,
                sizeLimit=max(0, size),
                sizeLimitIsNonFatal=True,
                timeLimit=max(1, int(settings.timeout)),
                callback=lambda e: found.append(entry_from_attributes(_attribute_map(e))),
            )
            return found

        work: Deferred[list[DirectoryEntry]] = Deferred.fromCoroutine(run())
        work.addTimeout(settings.timeout, self.reactor)
        try:
            entries = await work
        except (TimeoutError, ConnectionError, OSError) as e:
            raise DirectoryUnavailable(f"LDAP {settings.url}: {e!r}") from None
        except ldaperrors.LDAPNoSuchObject:
            entries = []  # no such base for this domain (``%d``): nobody to find there
        except ldaperrors.LDAPException as e:
            raise DirectoryUnavailable(f"LDAP search refused: {e}") from None
        except Exception as e:  # ldaptor's parse errors, connection lost mid-search
            if type(e).__module__.startswith(("ldaptor", "twisted")):
                raise DirectoryUnavailable(f"LDAP {settings.url}: {e!r}") from None
            raise
        finally:
            if client is not None and getattr(client, "connected", False):
                try:
                    client.unbind()
                except Exception:
                    client.transport.loseConnection()
        log.debug(
            "GAL search {filter} under {base}: {n} entries",
            filter=filter_text,
            base=base,
            n=len(entries),
        )
        return entries[:size] if size else entries


def directory_for(runtime: Any) -> Directory | None:
    """The runtime's Directory: ``runtime.services["directory"]`` when the profile set one,
    else one built (once) from ``config.ldap``; None when no LDAP is configured."""
    services = runtime.services
    if "directory" in services:
        return services["directory"]  # type: ignore[no-any-return]
    config = getattr(runtime, "config", None)
    settings = LdapSettings.from_section(getattr(config, "ldap", None)) if config else None
    directory = LdapDirectory(runtime.clock, settings) if settings is not None else None
    services["directory"] = directory
    return directory
