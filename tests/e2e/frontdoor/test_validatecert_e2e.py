"""ValidateCert over HTTP (12.1, 14.1, 16.1): a device asks about signers of S/MIME mail;
the server builds the path to its trusted root and reads revocation lists from a real HTTP
server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from opush.backends.pki import CertificateValidator, http_crl_fetcher
from opush.wbxml import E, decode, encode, ns
from tests.e2e.frontdoor.conftest import Server
from tests.e2e.frontdoor.test_frontdoor_e2e import blocking, client, eas_version
from tests.support.pki import Authority, crl, der

pytestmark = pytest.mark.e2e
VC = ns.VALIDATECERT


@pytest.fixture
def crl_server() -> Iterator[tuple[str, Resource]]:
    root = Resource()
    r: Any = reactor
    port = r.listenTCP(0, Site(root), interface="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port.getHost().port}", root
    finally:
        port.stopListening()


def request(certs: list[bytes], chain: list[bytes], check_crl: bool | None) -> Any:
    tree = E(VC, "ValidateCert")
    if chain:
        tree.append(
            E(
                VC,
                "CertificateChain",
                *[E(VC, "Certificate", text=base64.b64encode(c).decode()) for c in chain],
            )
        )
    tree.append(
        E(
            VC,
            "Certificates",
            *[E(VC, "Certificate", text=base64.b64encode(c).decode()) for c in certs],
        )
    )
    if check_crl is not None:
        tree.append(E(VC, "CheckCRL", text=int(check_crl)))
    return tree


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
@pytest_twisted.ensureDeferred
async def test_validatecert_statuses(
    frontdoor: Server, crl_server: tuple[str, Resource], version: str
) -> None:
    base, files = crl_server
    ca = Authority(crl_base=base)
    good, revoked = ca.signer("bob@example.org"), ca.signer("eve@example.org")
    expired = ca.signer(
        "old@example.org",
        not_before=ca.root.not_valid_before_utc,
        not_after=ca.root.not_valid_before_utc,
    )
    files.putChild(
        b"mail.crl",
        Data(crl(ca.intermediate, ca.inter_key, [revoked.serial_number]), "application/pkix-crl"),
    )
    files.putChild(b"root.crl", Data(crl(ca.root, ca.root_key), "application/pkix-crl"))
    r: Any = reactor
    frontdoor.runtime.services["validatecert"] = CertificateValidator(
        [ca.root], fetch_crl=http_crl_fetcher(r, 5)
    )
    c = client(frontdoor, f"E2EVC{version.replace('.', '')}")

    def ask(tree: Any) -> Any:
        with eas_version(version):
            return decode(c._post("ValidateCert", encode(tree, version)))

    await blocking(c.provision)
    body = request([der(good), der(revoked), der(expired), b"junk"], [der(ca.intermediate)], True)
    answer = await blocking(lambda: ask(body))
    assert answer.findtext(f"{{{VC}}}Status") == "1"
    statuses = [el.findtext(f"{{{VC}}}Status") for el in answer.findall(f"{{{VC}}}Certificate")]
    assert statuses == ["1", "13", "7", "10"]

    # Without the chain the intermediate is unknown: untrusted source.
    answer = await blocking(lambda: ask(request([der(good)], [], None)))
    assert [el.findtext(f"{{{VC}}}Status") for el in answer.findall(f"{{{VC}}}Certificate")] == [
        "4"
    ]

    # The CRL server goes away: with CheckCRL the status cannot be established (14), without
    # it the certificate is accepted (MS-ASCMD 2.2.3.26); a fresh validator has no cache.
    frontdoor.runtime.services["validatecert"] = CertificateValidator(
        [ca.root], fetch_crl=http_crl_fetcher(r, 5)
    )
    files.delEntity(b"mail.crl")
    answer = await blocking(lambda: ask(request([der(good)], [der(ca.intermediate)], True)))
    assert [el.findtext(f"{{{VC}}}Status") for el in answer.findall(f"{{{VC}}}Certificate")] == [
        "14"
    ]
    answer = await blocking(lambda: ask(request([der(good)], [der(ca.intermediate)], False)))
    assert [el.findtext(f"{{{VC}}}Status") for el in answer.findall(f"{{{VC}}}Certificate")] == [
        "1"
    ]

    # No certificate at all: protocol error.
    answer = await blocking(lambda: ask(E(VC, "ValidateCert", E(VC, "CheckCRL", text=0))))
    assert answer.findtext(f"{{{VC}}}Status") == "2"
    assert answer.find(f"{{{VC}}}Certificate") is None


@pytest_twisted.ensureDeferred
async def test_options_advertise_validatecert(frontdoor: Server) -> None:
    import requests

    options = await blocking(
        lambda: requests.options(f"{frontdoor.url}/Microsoft-Server-ActiveSync", timeout=10)
    )
    assert "ValidateCert" in options.headers["MS-ASProtocolCommands"].split(",")
