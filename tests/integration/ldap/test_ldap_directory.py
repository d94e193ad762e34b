"""LdapDirectory against the local slapd (ldap://127.0.0.1:3389, dc=example,dc=org)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from opush.backends.interfaces import UserIdentity
from opush.backends.ldap import (
    DirectoryUnavailable,
    LdapDirectory,
    LdapSettings,
    directory_for,
)
from opush.config.sections import DEFAULT_LDAP_FILTER
from opush.runtime import Runtime
from tests.support.services import LocalServices

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
ALICE = UserIdentity("alice", "example.org", "alice@example.org")


def directory(slapd: LocalServices, **changes: Any) -> LdapDirectory:
    settings = LdapSettings(url=slapd.ldap_url, basedn=slapd.ldap_base, filter=DEFAULT_LDAP_FILTER)
    return LdapDirectory(reactor, attrs.evolve(settings, **changes))


@pytest_twisted.ensureDeferred
async def test_prefix_search_on_names_and_addresses(slapd: LocalServices) -> None:
    d = directory(slapd)
    (bob,) = await d.search(ALICE, "dur")  # surname prefix
    assert (bob.display_name, bob.email, bob.first_name, bob.last_name) == (
        "Bob Durand",
        "bob@example.org",
        "Bob",
        "Durand",
    )
    assert bob.phone == "+33 1 23 45 67 02" and bob.alias == "bob"
    assert [e.email for e in await d.search(ALICE, "carol@")] == ["carol@example.org"]
    assert await d.search(ALICE, "nobody-like-this") == []


@pytest_twisted.ensureDeferred
async def test_limit_and_domain_in_base(slapd: LocalServices) -> None:
    d = directory(slapd, limit=2)
    assert len(await d.search(ALICE, "")) == 2
    # %d is the user's domain: "dc=%d,dc=org" is dc=example.org,dc=org, which this
    # directory does not have: no entries (not an error).
    per_domain = directory(slapd, basedn="dc=%d,dc=org")
    assert await per_domain.search(ALICE, "") == []


@pytest_twisted.ensureDeferred
async def test_filter_characters_are_data(slapd: LocalServices) -> None:
    d = directory(slapd)
    # Unescaped, "*)(mail=*" would list everybody (the Java behaviour); here it matches none.
    assert await d.search(ALICE, "*)(mail=*") == []


@pytest_twisted.ensureDeferred
async def test_unreachable_and_silent_servers(slapd: LocalServices) -> None:
    refused = directory(slapd, url="ldap://127.0.0.1:1", timeout=2)
    with pytest.raises(DirectoryUnavailable):
        await refused.search(ALICE, "bob")

    class Silent(Protocol):
        pass

    port: Any = reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        silent = directory(slapd, url=f"ldap://127.0.0.1:{port.getHost().port}", timeout=0.5)
        with pytest.raises(DirectoryUnavailable):
            await silent.search(ALICE, "bob")
    finally:
        await port.stopListening()


def test_directory_from_config() -> None:
    @attrs.frozen
    class Ldap:
        search_ldap_url: str | None
        search_ldap_basedn: str = "dc=example,dc=org"
        search_ldap_filter: str = DEFAULT_LDAP_FILTER
        search_ldap_limit: int = 20

    @attrs.frozen
    class Config:
        ldap: Ldap

    def runtime(url: str | None) -> Runtime:
        return Runtime(
            clock=reactor,  # type: ignore[arg-type]
            auth=None,  # type: ignore[arg-type]
            devices=None,  # type: ignore[arg-type]
            state=None,  # type: ignore[arg-type]
            config=Config(Ldap(url)),
        )

    configured = runtime("ldap://127.0.0.1:3389")
    found = directory_for(configured)
    assert isinstance(found, LdapDirectory) and found.settings.limit == 20
    assert directory_for(configured) is found  # built once
    assert directory_for(runtime(None)) is None


@pytest.fixture
def photo_person(slapd: LocalServices) -> Any:
    """A directory entry with a jpegPhoto and a userSMIMECertificate (PKCS#7, RFC 2798),
    removed afterwards."""
    import base64
    import subprocess
    import uuid

    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    from tests.support.pki import Authority, der

    cert = Authority().signer("photo@example.org")
    bundle = pkcs7.serialize_certificates([cert], Encoding.DER)
    photo = b"\xff\xd8\xff\xe0" + uuid.uuid4().bytes
    cn = f"Photo Person {uuid.uuid4().hex[:6]}"
    dn = f"cn={cn},{slapd.ldap_users_base}"
    ldif = (
        f"dn: {dn}\nobjectClass: inetOrgPerson\ncn: {cn}\nsn: Zphoto\n"
        f"mail: photo-{cn[-6:]}@example.org\n"
        f"jpegPhoto:: {base64.b64encode(photo).decode()}\n"
        f"userSMIMECertificate:: {base64.b64encode(bundle).decode()}\n"
    )
    auth = ["-x", "-H", slapd.ldap_url, "-D", slapd.ldap_admin_dn, "-w", slapd.ldap_admin_password]
    subprocess.run(["ldapadd", *auth], input=ldif.encode(), check=True, capture_output=True)
    yield photo, der(cert)
    subprocess.run(["ldapdelete", *auth, dn], check=False, capture_output=True)


@pytest_twisted.ensureDeferred
async def test_photos_and_certificates_only_when_asked(
    slapd: LocalServices, photo_person: Any
) -> None:
    """jpegPhoto and the certificates of userSMIMECertificate come back when the search asks
    for them (GAL pictures, ResolveRecipients certificates), not otherwise."""
    photo, cert = photo_person
    d = directory(slapd)
    (plain,) = await d.search(ALICE, "Zphoto")
    assert plain.photo is None and plain.certificates == ()
    (full,) = await d.search(ALICE, "Zphoto", photos=True, certificates=True)
    assert full.photo == photo
    assert full.certificates == (cert,)
