"""An in-process opush site with the IMAP mail backend (Dovecot) and the GAL (slapd)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor

from opush.backends.imap import ImapAuth, ImapMailBackend, ImapSettings
from opush.backends.ldap import LdapDirectory, LdapSettings
from opush.http.site import make_site
from opush.runtime import FrontDoorSettings, Runtime
from tests.support.mailcmds import LDAP_FILTER, MailServer
from tests.support.services import LocalServices
from tests.support.storage import embedded_store


@pytest_twisted.async_yield_fixture
async def mailserver(
    tmp_path: Path, dovecot: LocalServices, slapd: LocalServices
) -> AsyncIterator[MailServer]:
    r: Any = reactor
    store = await embedded_store(tmp_path, clock=r)
    settings = ImapSettings(
        host=dovecot.host, port=dovecot.imap_port, starttls=False, login_with_domain=True
    )
    mail = ImapMailBackend(r, settings)
    runtime = Runtime(
        clock=r,
        auth=ImapAuth(r, settings),
        devices=store,
        state=store,
        mail=mail,
        settings=FrontDoorSettings(external_url="mail.example.org"),
    )
    runtime.services["directory"] = LdapDirectory(
        r, LdapSettings(url=slapd.ldap_url, basedn=slapd.ldap_base, filter=LDAP_FILTER)
    )
    port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
    try:
        yield MailServer(port.getHost().port, store, runtime)
    finally:
        await port.stopListening()
        await mail.shutdown()
        await store.close()
