"""A real opush front door on 127.0.0.1 (in-process, real reactor) with the embedded store
and IMAP LOGIN against the local Dovecot, for the pyactivesync end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest_twisted
from twisted.internet import reactor

from opush.backends.imap.auth import ImapAuth
from opush.backends.imap.pool import ImapSettings
from opush.http.site import make_site
from opush.runtime import FrontDoorSettings, Runtime
from opush.storage.embedded import EmbeddedStore
from tests.support.services import LocalServices
from tests.support.storage import embedded_store


@attrs.define
class Server:
    port: int
    store: EmbeddedStore
    runtime: Runtime

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest_twisted.async_yield_fixture
async def frontdoor(tmp_path: Path, dovecot: LocalServices) -> AsyncIterator[Server]:
    r: Any = reactor
    store = await embedded_store(tmp_path, clock=r)
    auth = ImapAuth(
        r,
        ImapSettings(
            host="127.0.0.1", port=dovecot.imap_port, starttls=False, login_with_domain=True
        ),
    )
    runtime = Runtime(
        clock=r,
        auth=auth,
        devices=store,
        state=store,
        settings=FrontDoorSettings(external_url="mail.example.org"),
    )
    port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
    try:
        yield Server(port.getHost().port, store, runtime)
    finally:
        await port.stopListening()
        await store.close()
