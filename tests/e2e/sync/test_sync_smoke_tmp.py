from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.support.services import LocalServices
from tests.support.sync import EasDevice, append_messages, make_message, body_options

pytestmark = [pytest.mark.e2e]


@pytest_twisted.ensureDeferred
async def test_smoke(syncserver, dovecot: LocalServices, fresh_user: str) -> None:
    with dovecot.imap(fresh_user) as imap:
        append_messages(imap, "INBOX", [make_message(fresh_user, f"m{i}") for i in range(30)])
    dev = EasDevice(syncserver.host, fresh_user, "SMOKE1", "14.1")
    await deferToThread(dev.provision)
    folders = await syncserver.map_folders(fresh_user, "SMOKE1")
    inbox = folders["INBOX"]
    a = await deferToThread(dev.sync, inbox, "0")
    print(a.raw, a.status, a.sync_key)
    b = await deferToThread(dev.sync, inbox, a.sync_key, window=10, options=body_options(100))
    print(b.status, b.more, len(b.of("Add")), b.server_ids("Add"))
    from lxml import etree
    print(etree.tostring(b.of("Add")[0], pretty_print=True).decode()[:3000])
