"""The email Sync end to end on Cyrus IMAP (OBM's server): pyactivesync against a listening
opush whose mail backend is the local Cyrus, windows, a retried key and changes both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from pyactivesync import BodyType, EmailChange

from tests.e2e.sync.conftest import SyncServer, serving
from tests.e2e.sync.test_sync_e2e import blocking, device
from tests.support.mailcmds import attachment_mail
from tests.support.services import LocalServices
from tests.support.sync import mailbox_state, make_message, multiappend

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest_twisted.async_yield_fixture
async def cyrus_server(tmp_path: Path, cyrus: LocalServices) -> AsyncIterator[SyncServer]:
    async with serving(tmp_path, cyrus.host, cyrus.cyrus_imap_port) as server:
        yield server


def inbox_state(cyrus: LocalServices, user: str, folder: str = "INBOX") -> dict[int, Any]:
    with cyrus.imap(user, port=cyrus.cyrus_imap_port) as imap:
        return mailbox_state(imap, folder)


@pytest_twisted.ensureDeferred
async def test_sync_on_cyrus_windows_retry_and_changes_both_ways(
    cyrus_server: SyncServer, cyrus: LocalServices
) -> None:
    user = cyrus.cyrus_user()
    messages = [make_message(user, f"cyrus {i}") for i in range(60)]
    multiappend(cyrus.host, cyrus.cyrus_imap_port, user, "INBOX", messages)
    dev, folders = await device(cyrus_server, user, "SYNCCYRUS")
    c = dev.client
    inbox = str(folders["INBOX"])
    key = (await blocking(lambda: c.sync_folder(inbox, "0"))).sync_key
    seen: list[str] = []
    while True:
        previous = key
        result = await blocking(c.sync_folder, inbox, previous, window_size=25)
        seen.extend(item.server_id for item in result.added)
        key = result.sync_key
        if not result.more_available:
            break
    assert len(seen) == len(set(seen)) == 60
    assert set(seen) == {f"{inbox}:{u}" for u in inbox_state(cyrus, user)}
    again = await blocking(lambda: c.sync_folder(inbox, previous, window_size=25))
    assert again.sync_key == key
    assert [i.server_id for i in again.added] == [i.server_id for i in result.added]

    ids = sorted(seen, key=lambda s: int(s.split(":")[1]))
    changes = [EmailChange(server_id=ids[0], read=True), EmailChange(server_id=ids[1], delete=True)]
    applied = await blocking(lambda: c.apply_email_changes(inbox, key, changes))
    assert set(applied.statuses.values()) == {"1"}
    key = applied.sync_key
    mailbox = inbox_state(cyrus, user)
    assert mailbox[int(ids[0].split(":")[1])][0] is True
    assert int(ids[1].split(":")[1]) not in mailbox

    # Server side: a delivery over LMTP, a flag set and an expunge by another client, including
    # the newest message (Cyrus reports its removal only when asked up to UIDNEXT-1).
    cyrus.deliver(user, make_message(user, "cyrus new"), port=cyrus.cyrus_lmtp_port)
    top = int(ids[-1].split(":")[1])
    with cyrus.imap(user, port=cyrus.cyrus_imap_port) as imap:
        imap.select("INBOX")
        imap.uid("STORE", ids[2].split(":")[1], "+FLAGS", "(\\Seen)")
        imap.uid("STORE", str(top), "+FLAGS", "(\\Deleted)")
        imap.expunge()
    result = await blocking(lambda: c.sync_folder(inbox, key))
    assert len(result.added) == 1
    assert [i.server_id for i in result.changed] == [ids[2]]
    assert result.deleted == [ids[-1]]


@pytest_twisted.ensureDeferred
async def test_fetch_move_and_search_on_cyrus(
    cyrus_server: SyncServer, cyrus: LocalServices
) -> None:
    user = cyrus.cyrus_user()
    payload = bytes(range(256)) * 8
    cyrus.deliver(
        user,
        attachment_mail(user, "cyrus report", "Quarterly numbers\n", payload, "r.bin"),
        port=cyrus.cyrus_lmtp_port,
    )
    dev, folders = await device(cyrus_server, user, "CYRUSCMDS")
    c: Any = dev.client
    inbox, trash = str(folders["INBOX"]), str(folders["Trash"])
    (uid,) = inbox_state(cyrus, user)
    item = await blocking(
        lambda: c.fetch_item(inbox, f"{inbox}:{uid}", body_type=BodyType.PLAIN_TEXT)
    )
    assert item.body is not None and "Quarterly numbers" in str(item.body.data)
    (attachment,) = item.attachments
    assert await blocking(lambda: c.fetch_attachment(attachment.file_reference)) == payload

    results = await blocking(
        lambda: c.search_mailbox(inbox, date_received_after="2000-01-01T00:00:00.000Z")
    )
    assert [r["Email.Subject"] for r in results] == ["cyrus report"]

    new_id = await blocking(lambda: c.move_item(f"{inbox}:{uid}", inbox, trash))
    assert new_id.startswith(f"{trash}:")
    assert inbox_state(cyrus, user) == {}
    assert int(new_id.split(":")[1]) in inbox_state(cyrus, user, "Trash")
