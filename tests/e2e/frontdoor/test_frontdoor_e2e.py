"""pyactivesync against a listening opush (embedded store, IMAP LOGIN on the local Dovecot):
Provision, Settings, wrong password, missing policy key, OPTIONS, Autodiscover."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
import pytest_twisted
import requests
from lxml import etree
from pyactivesync import Client, _http
from pyactivesync.exceptions import StatusError
from twisted.internet.threads import deferToThread

from opush.storage.interfaces import WipeState
from opush.wbxml import E, decode, encode, ns
from tests.e2e.frontdoor.conftest import Server

pytestmark = pytest.mark.e2e
T = TypeVar("T")
EAS = "/Microsoft-Server-ActiveSync"


def client(server: Server, device_id: str, password: str = "secret") -> Client:
    c = Client(server.host, "alice@example.org", password, device_id=device_id, timeout=10)
    c._transport.base_url = f"{server.url}{EAS}"
    return c


@contextmanager
def eas_version(version: str) -> Iterator[None]:
    """pyactivesync reads this module global on every request."""
    old = _http._EAS_PROTOCOL_VERSION
    _http._EAS_PROTOCOL_VERSION = version
    try:
        yield
    finally:
        _http._EAS_PROTOCOL_VERSION = old


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


def user_information(c: Client) -> etree._Element:
    """Settings UserInformation Get (pyactivesync has no call for it): our encoder, its HTTP."""
    body = encode(
        E(ns.SETTINGS, "Settings", E(ns.SETTINGS, "UserInformation", E(ns.SETTINGS, "Get")))
    )
    return decode(c._post("Settings", body))


@pytest_twisted.ensureDeferred
async def test_provision_then_settings(frontdoor: Server) -> None:
    c = client(frontdoor, "E2EPROV01")
    key = await blocking(c.provision)
    device = await frontdoor.store.get_device("alice@example.org", "E2EPROV01")
    assert device is not None and device.policy_key == int(key)
    assert device.device_type == "pyactivesync" and device.information.model == "pyactivesync"
    assert device.wipe is WipeState.NONE

    info = await blocking(lambda: user_information(c))
    ns = {"s": "Settings:"}
    assert info.findtext("s:Status", namespaces=ns) == "1"
    assert info.findtext(".//s:PrimarySmtpAddress", namespaces=ns) == "alice@example.org"

    with pytest.raises(StatusError) as oof:
        await blocking(c.get_oof)
    assert oof.value.code == "7"  # Oof not offered (no backend for it yet)


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_401(frontdoor: Server) -> None:
    c = client(frontdoor, "E2EBADPW01", password="not-the-password")
    with pytest.raises(requests.HTTPError) as err:
        await blocking(c.provision)
    assert err.value.response.status_code == 401
    assert err.value.response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert await frontdoor.store.get_device("alice@example.org", "E2EBADPW01") is None


@pytest_twisted.ensureDeferred
async def test_missing_policy_key_12_1_is_449(frontdoor: Server) -> None:
    c = client(frontdoor, "E2E121")
    c._provisioned = True  # skip Provision: no X-MS-PolicyKey is sent

    def run() -> None:
        with eas_version("12.1"):
            c.get_oof()

    with pytest.raises(requests.HTTPError) as err:
        await blocking(run)
    assert err.value.response.status_code == 449


@pytest.mark.parametrize("version", ["14.1", "16.1"])
@pytest_twisted.ensureDeferred
async def test_missing_policy_key_14_is_status_142(frontdoor: Server, version: str) -> None:
    c = client(frontdoor, f"E2E{version.replace('.', '')}")
    c._provisioned = True

    def run() -> None:
        with eas_version(version):
            c.get_oof()

    with pytest.raises(StatusError) as err:
        await blocking(run)
    assert err.value.code == "142"


@pytest_twisted.ensureDeferred
async def test_options_and_autodiscover(frontdoor: Server) -> None:
    options = await blocking(lambda: requests.options(f"{frontdoor.url}{EAS}", timeout=10))
    assert options.status_code == 200
    assert "14.1" in options.headers["MS-ASProtocolVersions"].split(",")
    assert "Provision" in options.headers["MS-ASProtocolCommands"].split(",")

    body = (
        b'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
        b'exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>'
        b"alice@example.org</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/"
        b"exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema>"
        b"</Request></Autodiscover>"
    )
    reply = await blocking(
        lambda: requests.post(
            f"{frontdoor.url}/AutoDiscover/AutoDiscover.xml",
            data=body,
            auth=("alice@example.org", "secret"),
            headers={"Content-Type": "text/xml"},
            timeout=10,
        )
    )
    assert reply.status_code == 200
    assert b"https://mail.example.org/Microsoft-Server-ActiveSync" in reply.content
    health = await blocking(lambda: requests.get(f"{frontdoor.url}/opush/healthcheck/", timeout=10))
    assert health.status_code == 200


@pytest_twisted.ensureDeferred
async def test_autodiscover_v2_json(frontdoor: Server) -> None:
    """Outlook mobile's first question: GET autodiscover.json, no credentials."""
    for url in (
        f"{frontdoor.url}/autodiscover/autodiscover.json?Email=alice@example.org&Protocol=ActiveSync",
        f"{frontdoor.url}/Autodiscover/Autodiscover.json/v1.0/alice@example.org?Protocol=activesync",
    ):
        reply = await blocking(lambda url=url: requests.get(url, timeout=10))  # type: ignore[misc]
        assert reply.status_code == 200, url
        assert reply.json() == {
            "Protocol": "ActiveSync",
            "Url": "https://mail.example.org/Microsoft-Server-ActiveSync",
        }
    bad = await blocking(
        lambda: requests.get(
            f"{frontdoor.url}/autodiscover/autodiscover.json?Email=alice@example.org&Protocol=Ews",
            timeout=10,
        )
    )
    assert bad.status_code == 400 and bad.json()["ErrorCode"] == "InvalidProtocol"
