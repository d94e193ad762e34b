"""An in-process opush site (real reactor) with the embedded store, IMAP login and the IMAP
mail backend on the local Dovecot reached through a cuttable `ImapProxy`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest_twisted
from twisted.internet import reactor

from opush.backends.imap import ImapAuth, ImapMailBackend, ImapSettings
from opush.http.site import make_site
from opush.runtime import FrontDoorSettings, Runtime
from opush.storage.embedded import EmbeddedStore
from opush.storage.interfaces import FolderKind, FolderRef
from tests.support.services import LocalServices
from tests.support.storage import embedded_store
from tests.support.sync import ImapProxy

STANDARD_FOLDERS = {"INBOX": 2, "Drafts": 3, "Trash": 4, "Sent": 5}


@attrs.define
class SyncServer:
    port: int
    store: EmbeddedStore
    runtime: Runtime
    proxy: ImapProxy

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def map_folders(self, user: str, device_id: str) -> dict[str, int]:
        """Collection ids for the standard folders, as FolderSync allocates them."""
        out: dict[str, int] = {}
        for name, folder_type in STANDARD_FOLDERS.items():
            ref = FolderRef(FolderKind.MAIL, name, name, folder_type, None)
            out[name] = await self.store.allocate_collection(user.lower(), device_id, ref)
        return out


@asynccontextmanager
async def serving(tmp_path: Path, host: str, imap_port: int) -> AsyncIterator[SyncServer]:
    """An opush site whose IMAP login goes to host:imap_port and whose mail backend reaches
    it through a cuttable proxy (the server under test stays up for everyone else)."""
    r: Any = reactor
    store = await embedded_store(tmp_path, clock=r)
    proxy = ImapProxy(r, (host, imap_port))
    proxy_port = proxy.start()
    auth_settings = ImapSettings(host=host, port=imap_port, starttls=False, login_with_domain=True)
    mail_settings = ImapSettings(
        host="127.0.0.1", port=proxy_port, starttls=False, login_with_domain=True, timeout=10
    )
    mail = ImapMailBackend(r, mail_settings)
    runtime = Runtime(
        clock=r,
        auth=ImapAuth(r, auth_settings),
        devices=store,
        state=store,
        mail=mail,
        settings=FrontDoorSettings(external_url="mail.example.org"),
    )
    port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
    try:
        yield SyncServer(port.getHost().port, store, runtime, proxy)
    finally:
        await port.stopListening()
        await mail.shutdown()
        await proxy.stop()
        await store.close()


@pytest_twisted.async_yield_fixture
async def syncserver(tmp_path: Path, dovecot: LocalServices) -> AsyncIterator[SyncServer]:
    async with serving(tmp_path, dovecot.host, dovecot.imap_port) as server:
        yield server
