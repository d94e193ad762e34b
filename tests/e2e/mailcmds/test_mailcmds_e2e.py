"""pyactivesync against a listening opush with the real Dovecot and slapd: ItemOperations Fetch
(body, attachment, multipart, Range), GetAttachment (12.1), EmptyFolderContents, MoveItems,
Search (Mailbox and GAL)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from pyactivesync import BodyType
from pyactivesync.exceptions import StatusError
from twisted.internet.threads import deferToThread

from opush.commands.itemoperations import MULTIPART_CONTENT_TYPE, parse_multipart
from opush.wbxml import E, decode, ns
from tests.support.mailcmds import (
    MailServer,
    attachment_mail,
    client,
    map_mail_folders,
    post,
    post_tree,
)
from tests.support.services import LocalServices

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
T = TypeVar("T")
NS = {
    "io": "ItemOperations:",
    "a": "AirSync:",
    "b": "AirSyncBase:",
    "e": "Email:",
    "s": "Search:",
    "m": "Move:",
    "g": "GAL:",
}
PAYLOAD = bytes(range(256)) * 40  # 10 KiB, every byte value


async def blocking(fn: Callable[[], T]) -> T:
    return await deferToThread(fn)


def uids(services: LocalServices, user: str, folder: str) -> list[int]:
    with services.imap(user) as imap:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        return [int(u) for u in (data[0] or b"").split()]


def seen(services: LocalServices, user: str, folder: str, uid: int) -> bool:
    with services.imap(user) as imap:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("FETCH", str(uid), "(FLAGS)")
        return b"\\Seen" in (data[0] or b"")


async def setup(
    server: MailServer, services: LocalServices, user: str, device: str, messages: int = 1
) -> tuple[object, dict[str, int]]:
    for i in range(messages):
        services.deliver(
            user,
            attachment_mail(user, f"report {i}", f"Quarterly numbers {i}\n", PAYLOAD, "r.bin"),
        )
    c = client(server, user, device)
    await blocking(c.provision)
    folders = await map_mail_folders(server, user, device)
    return c, folders


@pytest_twisted.ensureDeferred
async def test_fetch_body_and_attachment(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDFETCH1")
    inbox = folders["INBOX"]
    (uid,) = uids(dovecot, fresh_user, "INBOX")
    item = await blocking(
        lambda: c.fetch_item(str(inbox), f"{inbox}:{uid}", body_type=BodyType.PLAIN_TEXT)  # type: ignore[attr-defined]
    )
    assert item.body is not None and "Quarterly numbers 0" in str(item.body.data)
    assert item.fields.get("Email.Subject") == "report 0"
    assert len(item.attachments) == 1
    attachment = item.attachments[0]
    assert attachment.display_name == "r.bin"
    data = await blocking(lambda: c.fetch_attachment(attachment.file_reference))  # type: ignore[attr-defined]
    assert data == PAYLOAD
    # Fetch reads with BODY.PEEK: the mail stays unread.
    assert not seen(dovecot, fresh_user, "INBOX", uid)

    # A ServerId that does not exist: the Fetch's own status, not a failed request.
    with pytest.raises(StatusError) as err:
        await blocking(lambda: c.fetch_item(str(inbox), f"{inbox}:{uid + 100}"))  # type: ignore[attr-defined]
    assert err.value.code == "6"
    # An attachment that is not there: Fetch Status 15 (pyactivesync reads only the
    # command's Status, so look at the Fetch's own).
    io, b = ns.ITEMOPERATIONS, ns.AIRSYNCBASE
    missing = E(
        io,
        "ItemOperations",
        E(
            io,
            "Fetch",
            E(io, "Store", text="Mailbox"),
            E(b, "FileReference", text=f"{inbox}%3a{uid}%3a9"),
        ),
    )
    answer = await blocking(lambda: post_tree(c, "ItemOperations", missing))  # type: ignore[arg-type]
    assert answer.findtext("io:Status", namespaces=NS) == "1"
    assert answer.findtext("io:Response/io:Fetch/io:Status", namespaces=NS) == "15"


@pytest_twisted.ensureDeferred
async def test_fetch_multipart_with_range_and_getattachment(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDMULTI1")
    inbox = folders["INBOX"]
    (uid,) = uids(dovecot, fresh_user, "INBOX")
    reference = f"{inbox}%3a{uid}%3a2"
    io, a, b = ns.ITEMOPERATIONS, ns.AIRSYNC, ns.AIRSYNCBASE
    request = E(
        io,
        "ItemOperations",
        E(
            io,
            "Fetch",
            E(io, "Store", text="Mailbox"),
            E(a, "CollectionId", text=str(inbox)),
            E(a, "ServerId", text=f"{inbox}:{uid}"),
            E(io, "Options", E(b, "BodyPreference", E(b, "Type", text=1))),
        ),
        E(
            io,
            "Fetch",
            E(io, "Store", text="Mailbox"),
            E(b, "FileReference", text=reference),
            E(io, "Options", E(io, "Range", text="100-1099")),
        ),
    )
    response = await blocking(
        lambda: post(c, "ItemOperations", request, headers={"MS-ASAcceptMultiPart": "T"})  # type: ignore[arg-type]
    )
    assert response.headers["Content-Type"] == MULTIPART_CONTENT_TYPE
    parts = parse_multipart(response.content)
    tree = decode(parts[0])
    fetches = tree.findall("io:Response/io:Fetch", NS)
    assert [f.findtext("io:Status", namespaces=NS) for f in fetches] == ["1", "1"]
    body_part = int(fetches[0].findtext("io:Properties/b:Body/io:Part", namespaces=NS) or "0")
    assert b"Quarterly numbers 0" in parts[body_part]
    props = fetches[1].find("io:Properties", NS)
    assert props is not None
    assert props.findtext("io:Range", namespaces=NS) == "100-1099"
    assert props.findtext("io:Total", namespaces=NS) == str(len(PAYLOAD))
    assert parts[int(props.findtext("io:Part", namespaces=NS) or "0")] == PAYLOAD[100:1100]

    # The same without multipart: base64 inline.
    inline = await blocking(lambda: post_tree(c, "ItemOperations", request))  # type: ignore[arg-type]
    data = inline.findtext("io:Response/io:Fetch[2]/io:Properties/io:Data", namespaces=NS)
    assert base64.b64decode(data or "") == PAYLOAD[100:1100]

    # GetAttachment (12.1): the raw attachment with its content type.
    raw = await blocking(
        lambda: post(c, "GetAttachment", None, version="12.1", params={"AttachmentName": reference})  # type: ignore[arg-type]
    )
    assert raw.content == PAYLOAD
    assert raw.headers["Content-Type"] == "application/octet-stream"


@pytest_twisted.ensureDeferred
async def test_move_items_then_empty_trash(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDMOVE1", messages=2)
    inbox, trash = folders["INBOX"], folders["Trash"]
    first, second = uids(dovecot, fresh_user, "INBOX")
    new_id = await blocking(lambda: c.move_item(f"{inbox}:{first}", str(inbox), str(trash)))  # type: ignore[attr-defined]
    collection, _, new_uid = new_id.partition(":")
    assert collection == str(trash)
    assert uids(dovecot, fresh_user, "INBOX") == [second]
    assert uids(dovecot, fresh_user, "Trash") == [int(new_uid)]
    # The old id is gone now: Status 1 (invalid source), nothing moves.
    with pytest.raises(StatusError) as gone:
        await blocking(lambda: c.move_item(f"{inbox}:{first}", str(inbox), str(trash)))  # type: ignore[attr-defined]
    assert gone.value.code == "1"
    with pytest.raises(StatusError) as same:
        await blocking(lambda: c.move_item(f"{inbox}:{second}", str(inbox), str(inbox)))  # type: ignore[attr-defined]
    assert same.value.code == "4"
    with pytest.raises(StatusError) as nowhere:
        await blocking(lambda: c.move_item(f"{inbox}:{second}", str(inbox), "999"))  # type: ignore[attr-defined]
    assert nowhere.value.code == "2"
    assert uids(dovecot, fresh_user, "INBOX") == [second]

    io, a = ns.ITEMOPERATIONS, ns.AIRSYNC
    emptied = await blocking(
        lambda: post_tree(
            c,  # type: ignore[arg-type]
            "ItemOperations",
            E(
                io,
                "ItemOperations",
                E(io, "EmptyFolderContents", E(a, "CollectionId", text=str(trash))),
            ),
        )
    )
    assert emptied.findtext("io:Response/io:EmptyFolderContents/io:Status", namespaces=NS) == "1"
    assert uids(dovecot, fresh_user, "Trash") == []
    assert uids(dovecot, fresh_user, "INBOX") == [second]


@pytest_twisted.ensureDeferred
async def test_search_mailbox_and_gal(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDSEARCH1", messages=3)
    dovecot.deliver(
        fresh_user, dovecot.message(fresh_user, subject="lunch plans", body="pizza at noon\n")
    )
    inbox = folders["INBOX"]
    results = await blocking(
        lambda: c.search_mailbox(str(inbox), date_received_after="2000-01-01T00:00:00.000Z")  # type: ignore[attr-defined]
    )
    assert len(results) == 4
    assert results[0]["Email.Subject"] == "lunch plans"  # newest first
    assert all(r["AirSync.CollectionId"] == str(inbox) for r in results)
    none_yet = await blocking(
        lambda: c.search_mailbox(str(inbox), date_received_after="2999-01-01T00:00:00.000Z")  # type: ignore[attr-defined]
    )
    assert none_yet == [{}]  # the spec's single empty Result

    s, a = ns.SEARCH, ns.AIRSYNC
    free_text = E(
        s,
        "Search",
        E(
            s,
            "Store",
            E(s, "Name", text="Mailbox"),
            E(
                s,
                "Query",
                E(
                    s,
                    "And",
                    E(a, "Class", text="Email"),
                    E(a, "CollectionId", text=str(inbox)),
                    E(s, "FreeText", text="pizza"),
                ),
            ),
            E(s, "Options", E(s, "Range", text="0-9"), E(s, "DeepTraversal")),
        ),
    )
    answer = await blocking(lambda: post_tree(c, "Search", free_text, version="14.1"))  # type: ignore[arg-type]
    store = answer.find("s:Response/s:Store", NS)
    assert store.findtext("s:Status", namespaces=NS) == "1"
    found = store.findall("s:Result", NS)
    assert len(found) == 1 and store.findtext("s:Total", namespaces=NS) == "1"
    assert found[0].findtext("s:Properties/e:Subject", namespaces=NS) == "lunch plans"
    long_id = found[0].findtext("s:LongId", namespaces=NS)
    assert long_id is not None and long_id.startswith(f"{inbox}:")

    people = await blocking(lambda: c.search_gal("bo"))  # type: ignore[attr-defined]
    assert [(p.display_name, p.email_address) for p in people] == [
        ("Bob Durand", "bob@example.org")
    ]
    everyone = await blocking(lambda: c.search_gal("e", max_results=2))  # type: ignore[attr-defined]
    assert len(everyone) <= 2

    (carol,) = await blocking(lambda: c.resolve_recipients("carol@example.org"))  # type: ignore[attr-defined]
    assert (carol.type, carol.display_name, carol.email_address) == (
        "1",
        "Carol Petit",
        "carol@example.org",
    )


@pytest_twisted.ensureDeferred
async def test_find_mailbox_and_gal_16_1(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """MS-ASCMD 2.2.1.2 Find (16.1): the mailbox with FreeText in one collection, DeepTraversal
    over every collection, paging with Range, the GAL; an unknown collection is Status 3."""
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDFIND1", messages=2)
    dovecot.deliver(
        fresh_user,
        dovecot.message(
            fresh_user, subject="lunch plans", body="pizza at noon\n", Cc="carol@example.org"
        ),
    )
    f, a = ns.FIND, ns.AIRSYNC
    inbox = folders["INBOX"]
    ids = {"f": f, "a": a, "e": ns.EMAIL, "e2": ns.EMAIL2, "io": ns.ITEMOPERATIONS, "g": ns.GAL}

    def find(criterion: Any) -> Any:
        tree = E(
            f,
            "Find",
            E(f, "SearchId", text="1b2c3d4e-0000-4000-8000-00000000abcd"),
            E(f, "ExecuteSearch", criterion),
        )
        return post_tree(c, "Find", tree, version="16.1")  # type: ignore[arg-type]

    pizza = await blocking(
        lambda: find(
            E(
                f,
                "MailBoxSearchCriterion",
                E(
                    f,
                    "Query",
                    E(a, "Class", text="Email"),
                    E(a, "CollectionId", text=str(inbox)),
                    E(f, "FreeText", text="pizza"),
                ),
                E(f, "Options", E(f, "Range", text="0-9")),
            )
        )
    )
    assert pizza.findtext("f:Status", namespaces=ids) == "1"
    response = pizza.find("f:Response", ids)
    assert response.findtext("io:Store", namespaces=ids) == "Mailbox"
    assert response.findtext("f:Status", namespaces=ids) == "1"
    (hit,) = response.findall("f:Result", ids)
    assert hit.findtext("a:Class", namespaces=ids) == "Email"
    assert (hit.findtext("a:ServerId", namespaces=ids) or "").startswith(f"{inbox}:")
    assert hit.findtext("a:CollectionId", namespaces=ids) == str(inbox)
    props = hit.find("f:Properties", ids)
    assert props.findtext("e:Subject", namespaces=ids) == "lunch plans"
    assert props.findtext("f:Preview", namespaces=ids) == "pizza at noon"
    assert props.findtext("f:HasAttachments", namespaces=ids) == "0"
    assert props.findtext("f:DisplayCc", namespaces=ids) == "carol@example.org"
    assert props.findtext("e2:IsDraft", namespaces=ids) == "0"
    assert response.findtext("f:Range", namespaces=ids) == "0-0"
    assert response.findtext("f:Total", namespaces=ids) == "1"

    everything = await blocking(
        lambda: find(
            E(
                f,
                "MailBoxSearchCriterion",
                E(f, "Query", E(a, "Class", text="Email"), E(f, "FreeText", text="numbers")),
                E(f, "Options", E(f, "Range", text="0-0"), E(f, "DeepTraversal")),
            )
        )
    )
    page = everything.find("f:Response", ids)
    assert len(page.findall("f:Result", ids)) == 1
    assert page.findtext("f:Total", namespaces=ids) == "2"
    first = page.find("f:Result/f:Properties", ids)
    assert first.findtext("f:HasAttachments", namespaces=ids) == "1"

    unknown = await blocking(
        lambda: find(
            E(
                f,
                "MailBoxSearchCriterion",
                E(f, "Query", E(a, "CollectionId", text="999"), E(f, "FreeText", text="x")),
            )
        )
    )
    assert unknown.findtext("f:Response/f:Status", namespaces=ids) == "3"

    people = await blocking(
        lambda: find(E(f, "GalSearchCriterion", E(f, "Query", text="bo"), E(f, "Options")))
    )
    gal = people.find("f:Response", ids)
    assert gal.findtext("io:Store", namespaces=ids) == "GAL"
    names = [
        r.findtext("f:Properties/g:DisplayName", namespaces=ids)
        for r in gal.findall("f:Result", ids)
    ]
    assert names == ["Bob Durand"]

    # pyactivesync's own Find requests (16.1).
    mine = await blocking(lambda: c.find_mailbox("pizza", folder_id=str(inbox)))  # type: ignore[attr-defined]
    assert [i.fields.get("Email.Subject") for i in mine.items] == ["lunch plans"]
    deep = await blocking(lambda: c.find_mailbox("numbers", deep_traversal=True))  # type: ignore[attr-defined]
    assert len(deep.items) == 2
    directory = await blocking(lambda: c.find_gal("carol"))  # type: ignore[attr-defined]
    assert [i.fields.get("GAL.EmailAddress") for i in directory.items] == ["carol@example.org"]


def _engine_records_moves() -> bool:
    from opush.commands.registry import REGISTRY

    try:
        from opush.sync import moves  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        return False
    return "Sync" in REGISTRY and hasattr(moves, "record_move")


@pytest_twisted.ensureDeferred
async def test_moved_mail_is_neither_duplicated_nor_lost_by_sync(
    mailserver: MailServer, dovecot: LocalServices, fresh_user: str
) -> None:
    if not _engine_records_moves():
        pytest.skip("Sync or opush.sync.moves.record_move not available in this build")
    c, folders = await setup(mailserver, dovecot, fresh_user, "MAILCMDMOVESYNC", messages=2)
    inbox, trash = str(folders["INBOX"]), str(folders["Trash"])

    async def sync(folder: str, key: str) -> Any:
        return await blocking(lambda: c.sync_folder(folder, key))  # type: ignore[attr-defined]

    inbox_key = (await sync(inbox, "0")).sync_key
    first_sync = await sync(inbox, inbox_key)
    assert len(first_sync.added) == 2
    trash_key = (await sync(trash, "0")).sync_key
    trash_sync = await sync(trash, trash_key)
    assert trash_sync.added == []
    moved_from = first_sync.added[0].server_id
    moved_to = await blocking(lambda: c.move_item(moved_from, inbox, trash))  # type: ignore[attr-defined]

    after_inbox = await sync(inbox, first_sync.sync_key)
    assert after_inbox.added == [] and after_inbox.deleted == []
    after_trash = await sync(trash, trash_sync.sync_key)
    assert after_trash.added == [] and after_trash.deleted == []  # not sent twice

    # Not lost either: the device's copy in Trash follows later changes.
    with dovecot.imap(fresh_user) as imap:
        imap.select('"Trash"')
        imap.uid("STORE", moved_to.split(":")[1], "+FLAGS", "(\\Flagged)")
    later = await sync(trash, after_trash.sync_key)
    assert [i.server_id for i in later.changed] == [moved_to]
