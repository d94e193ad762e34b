"""The obm-sync client and locator over real HTTP (twisted Agent) against the double."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor

from opush.backends.interfaces import AuthenticationFailed
from opush.backends.obmsync import (
    OBM_SYNC,
    AgentTransport,
    EventAlreadyExists,
    Locator,
    ObmSyncAuth,
    ObmSyncClient,
    ObmSyncUnavailable,
    xml,
)
from tests.integration.obm.conftest import RunningDouble
from tests.support.obmsync import credentials

pytestmark = pytest.mark.integration
ALICE = credentials("alice@example.org")


@pytest_twisted.ensureDeferred
async def test_login_calendar_and_book_over_http(obm_sync: RunningDouble) -> None:
    client = obm_sync.client()
    identity = await ObmSyncAuth(client).authenticate("alice@example.org", "secret")
    assert identity.display_name == "Alice Liddell"
    event = xml.Event(
        ext_id="été-1",
        title="Réunion & café",
        owner="alice",
        date=1_800_000_000_000,
        duration=1800,
        attendees=(xml.Attendee("alice@example.org", "Alice", state="ACCEPTED"),),
    )
    event_id = await client.create_event(ALICE, "alice", event, notification=True, client_id="c")
    with pytest.raises(EventAlreadyExists):
        await client.create_event(ALICE, "alice", event, notification=True, client_id=None)
    (synced,) = (await client.get_first_sync(ALICE, "alice", 1000)).updated
    assert (synced.id, synced.title, synced.ext_id) == (event_id, "Réunion & café", "été-1")
    books = await client.list_address_books_changed(ALICE, 0)
    assert {f.name for f in books.updated} == {"contacts", "users"}
    logins = [c for c in obm_sync.double.calls if c[:2] == ("login", "doLogin")]
    assert len(logins) == 1 and logins[0][2]["origin"] == ["o-push"]
    await client.close()
    assert obm_sync.double.sessions == {}


@pytest_twisted.ensureDeferred
async def test_bad_password_over_http(obm_sync: RunningDouble) -> None:
    with pytest.raises(AuthenticationFailed):
        await ObmSyncAuth(obm_sync.client()).authenticate("alice@example.org", "nope")


@pytest_twisted.ensureDeferred
async def test_locator_over_http_finds_obm_sync(obm_sync: RunningDouble) -> None:
    r: Any = reactor
    locator = Locator(obm_sync.transport, r, "127.0.0.1", base_url=obm_sync.locator_url)
    assert await locator.locate(*OBM_SYNC, "alice@example.org") == "127.0.0.1"

    async def resolve(login: str) -> str:
        host = await locator.locate(*OBM_SYNC, login)
        return f"http://{host}:{obm_sync.port}/obm-sync/services"

    client = ObmSyncClient(obm_sync.transport, r, resolve)
    assert await client.get_user_email(ALICE) == "alice@example.org"
    response = await obm_sync.transport.request(
        b"GET", f"{obm_sync.locator_url}/sync/obm_sync", timeout_seconds=5
    )
    assert response.code == 403  # HostLocationServlet: not service/property/login


@pytest_twisted.ensureDeferred
async def test_double_answers_xml_and_reads_query_strings(obm_sync: RunningDouble) -> None:
    response = await obm_sync.transport.request(
        b"GET",
        f"{obm_sync.services_url}/login/doLogin?login=alice@example.org&password=secret&origin=x",
        timeout_seconds=5,
    )
    assert response.code == 200 and response.content_type == "text/xml;charset=UTF-8"
    assert xml.parse_token(xml.parse_document(response.body)).email == "alice@example.org"
    bad = await obm_sync.transport.request(
        b"POST", f"{obm_sync.services_url}/calendar/getSync/extra", body=b"", timeout_seconds=5
    )
    assert xml.parse_error(xml.parse_document(bad.body)) is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_obm_sync_down_is_unavailable() -> None:
    r: Any = reactor
    transport = AgentTransport(r, connect_timeout=2)
    try:
        client = ObmSyncClient(transport, r, f"http://127.0.0.1:{_free_port()}/obm-sync/services")
        with pytest.raises(ObmSyncUnavailable):
            await ObmSyncAuth(client).authenticate("alice@example.org", "secret")
    finally:
        await transport.close()


class _Silent(protocol.Protocol):
    """Accepts the connection and never answers."""


@pytest_twisted.ensureDeferred
async def test_obm_sync_timeout() -> None:
    r: Any = reactor
    factory = protocol.Factory.forProtocol(_Silent)
    port = r.listenTCP(0, factory, interface="127.0.0.1")
    transport = AgentTransport(r, connect_timeout=2)
    try:
        client = ObmSyncClient(
            transport, r, f"http://127.0.0.1:{port.getHost().port}/obm", timeout=0.3
        )
        with pytest.raises(ObmSyncUnavailable, match=r"no answer within 0\.3 s"):
            await client.login("alice@example.org", "secret")
    finally:
        await transport.close()
        await port.stopListening()
