"""The mail commands on a real `twistd -n opush` (demo standalone configuration: Dovecot,
slapd), driven by pyactivesync: Fetch of a body and an attachment, MoveItems, Search of the
mailbox and of the GAL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from pyactivesync import BodyType, Client
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from opush.commands.registry import REGISTRY
from opush.storage.embedded import EmbeddedStore
from opush.storage.interfaces import FolderKind, FolderRef
from tests.support.mailcmds import STANDARD_FOLDERS, attachment_mail
from tests.support.server import OpushServer, start_server
from tests.support.services import LocalServices

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
T = TypeVar("T")
PAYLOAD = b"%PDF-1.4 not really\x00\x01\x02" * 300


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


def imap_uids(services: LocalServices, user: str, folder: str) -> list[int]:
    with services.imap(user) as imap:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        return [int(u) for u in (data[0] or b"").split()]


async def folder_ids(server: OpushServer, c: Client, user: str, device_id: str) -> dict[str, int]:
    """Collection ids as the device knows them: FolderSync when opush has it, else the same
    mapping written into the server's state file (what FolderSync would store)."""
    if "FolderSync" in REGISTRY:
        folders = await blocking(c.list_folders)
        by_type = {int(f.type): f.id for f in folders}
        return {name: int(by_type[kind]) for name, kind in STANDARD_FOLDERS.items()}
    store = EmbeddedStore(server.config_dir.parent / "data" / "opush.sqlite", clock=reactor)  # type: ignore[arg-type]
    try:
        owner = next(d.user for d in await store.list_devices() if d.device_id == device_id)
        out = {}
        for name, kind in STANDARD_FOLDERS.items():
            ref = FolderRef(FolderKind.MAIL, name, name, kind)
            out[name] = await store.allocate_collection(owner, device_id, ref)
        return out
    finally:
        await store.close()


@pytest.fixture
def server(tmp_path: Path, dovecot: LocalServices, slapd: LocalServices) -> Any:
    s = start_server(tmp_path)
    yield s
    s.stop()


@pytest_twisted.ensureDeferred
async def test_fetch_move_search_on_twistd(
    server: OpushServer, dovecot: LocalServices, fresh_user: str
) -> None:
    dovecot.deliver(
        fresh_user, attachment_mail(fresh_user, "contract", "Sign here\n", PAYLOAD, "c.pdf")
    )
    dovecot.deliver(fresh_user, dovecot.message(fresh_user, subject="second", body="later\n"))
    c = Client(f"127.0.0.1:{server.http_port}", fresh_user, "secret", device_id="TWISTDMAIL1")
    c._transport.base_url = server.url
    await blocking(c.provision)
    ids = await folder_ids(server, c, fresh_user, "TWISTDMAIL1")
    inbox, trash = ids["INBOX"], ids["Trash"]
    first, second = imap_uids(dovecot, fresh_user, "INBOX")

    item = await blocking(
        lambda: c.fetch_item(str(inbox), f"{inbox}:{first}", body_type=BodyType.PLAIN_TEXT)
    )
    assert item.body is not None and "Sign here" in str(item.body.data)
    (attachment,) = item.attachments
    assert attachment.display_name == "c.pdf"
    assert await blocking(lambda: c.fetch_attachment(attachment.file_reference)) == PAYLOAD

    found = await blocking(
        lambda: c.search_mailbox(str(inbox), date_received_after="2001-01-01T00:00:00.000Z")
    )
    assert [r["Email.Subject"] for r in found] == ["second", "contract"]

    sync_both = "Sync" in REGISTRY
    if sync_both:
        keys = {}
        for folder in (inbox, trash):
            key = (await blocking(lambda f=folder: c.sync_folder(str(f), "0"))).sync_key
            keys[folder] = (
                await blocking(lambda f=folder, k=key: c.sync_folder(str(f), k))
            ).sync_key

    moved = await blocking(lambda: c.move_item(f"{inbox}:{second}", str(inbox), str(trash)))
    assert moved.startswith(f"{trash}:")
    assert imap_uids(dovecot, fresh_user, "INBOX") == [first]
    assert imap_uids(dovecot, fresh_user, "Trash") == [int(moved.split(":")[1])]
    if sync_both:
        # The device moved it itself: no Delete in INBOX, no second copy in Trash.
        for folder in (inbox, trash):
            after = await blocking(lambda f=folder: c.sync_folder(str(f), keys[f]))
            assert (after.added, after.deleted) == ([], []), folder

    people = await blocking(lambda: c.search_gal("alice"))
    assert [(p.display_name, p.email_address) for p in people] == [
        ("Alice Martin", "alice@example.org")
    ]


@pytest_twisted.ensureDeferred
async def test_out_of_office_on_twistd(
    server: OpushServer, dovecot: LocalServices, postfix: LocalServices, fresh_user: str
) -> None:
    """Settings Oof (MS-ASCMD 2.2.3.119) with pyactivesync: Get, Set scheduled, Get again,
    and the server's Sieve vacation answering a colleague at delivery; then off again."""
    from pyactivesync import OofState

    from tests.support.services import new_address

    c = Client(f"127.0.0.1:{server.http_port}", fresh_user, "secret", device_id="TWISTDOOF1")
    c._transport.base_url = server.url
    await blocking(c.provision)
    before = await blocking(c.get_oof)
    assert before.state == OofState.DISABLED
    await blocking(
        lambda: c.set_oof(
            OofState.ENABLED_SCHEDULED,
            start_time="2020-01-01T00:00:00.000Z",
            end_time="2090-01-01T00:00:00.000Z",
            reply_message="Back in 2090.",
        )
    )
    now = await blocking(c.get_oof)
    assert now.state == OofState.ENABLED_SCHEDULED
    assert (now.start_time, now.end_time) == (
        "2020-01-01T00:00:00.000Z",
        "2090-01-01T00:00:00.000Z",
    )
    assert {(m.applies_to, m.enabled, m.reply_message) for m in now.messages} == {
        ("Internal", True, "Back in 2090."),
        ("ExternalKnown", True, "Back in 2090."),
        ("ExternalUnknown", True, "Back in 2090."),
    }
    colleague = new_address("oofpeer")
    try:
        dovecot.deliver(
            fresh_user,
            dovecot.message(fresh_user, subject="meeting?", sender=colleague),
            sender=colleague,
        )
        for _ in range(75):
            with dovecot.imap(colleague) as imap:
                imap.select("INBOX", readonly=True)
                _, data = imap.uid("SEARCH", None, "SUBJECT", '"Automatic reply"')
            if (data[0] or b"").split():
                break
            await blocking(lambda: __import__("time").sleep(0.2))
        assert (data[0] or b"").split(), "no automatic reply reached the colleague"
    finally:
        dovecot.remove_mailbox(colleague)
    await blocking(lambda: c.set_oof(OofState.DISABLED))
    assert (await blocking(c.get_oof)).state == OofState.DISABLED
