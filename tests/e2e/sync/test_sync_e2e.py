"""Sync and GetItemEstimate end to end: pyactivesync (and raw trees at 12.1/14.1/16.1) against
a listening opush with the real Dovecot (through a cuttable proxy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import pytest_twisted
from lxml import etree
from pyactivesync import EmailChange
from twisted.internet.threads import deferToThread

from opush.wbxml import E, decode, ns
from tests.e2e.sync.conftest import SyncServer
from tests.support.services import LocalServices
from tests.support.sync import (
    DeviceView,
    EasDevice,
    as_view,
    body_options,
    change_command,
    child_text,
    delete_command,
    fetch_command,
    flag_prop,
    mailbox_state,
    make_message,
    multiappend,
    read_prop,
)

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
T = TypeVar("T")
A = ns.AIRSYNC


async def blocking(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await deferToThread(fn, *args, **kw)


async def device(
    server: SyncServer, user: str, device_id: str, version: str = "14.1"
) -> tuple[EasDevice, dict[str, int]]:
    dev = EasDevice(server.host, user, device_id, version)
    await blocking(dev.provision)
    return dev, await server.map_folders(user, device_id)


def load(services: LocalServices, user: str, count: int, folder: str = "INBOX") -> None:
    messages = [make_message(user, f"msg {i}") for i in range(count)]
    multiappend(services.host, services.imap_port, user, folder, messages)


def state_of(services: LocalServices, user: str, folder: str = "INBOX") -> dict[int, Any]:
    with services.imap(user) as imap:
        return mailbox_state(imap, folder)


@pytest_twisted.ensureDeferred
async def test_initial_sync_300_in_windows_of_25_with_pyactivesync(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    load(dovecot, fresh_user, 300)
    dev, folders = await device(syncserver, fresh_user, "SYNCE2E300")
    c = dev.client
    inbox = str(folders["INBOX"])
    result = await blocking(lambda: c.sync_folder(inbox, "0"))
    key = result.sync_key
    seen: list[str] = []
    rounds = 0
    previous = key
    while True:
        previous = key
        result = await blocking(c.sync_folder, inbox, previous, window_size=25)
        rounds += 1
        assert len(result.added) <= 25
        seen.extend(item.server_id for item in result.added)
        key = result.sync_key
        if not result.more_available:
            break
    assert rounds == 12
    assert len(seen) == len(set(seen)) == 300  # each exactly once
    assert set(seen) == {f"{inbox}:{u}" for u in state_of(dovecot, fresh_user)}
    # A retried SyncKey (the last answer was lost): the same answer again.
    again = await blocking(lambda: c.sync_folder(inbox, previous, window_size=25))
    assert again.sync_key == key
    assert [i.server_id for i in again.added] == [i.server_id for i in result.added]
    nothing = await blocking(lambda: c.sync_folder(inbox, key, window_size=25))
    assert not nothing.added and not nothing.changed and not nothing.deleted
    key = nothing.sync_key

    # Incremental, both ways: the device marks read, flags and deletes; the server delivers,
    # flags and expunges.
    ids = sorted(seen, key=lambda s: int(s.split(":")[1]))
    changes = [
        EmailChange(server_id=ids[0], read=True),
        EmailChange(server_id=ids[1], flagged=True),
        EmailChange(server_id=ids[2], delete=True),
    ]
    applied = await blocking(lambda: c.apply_email_changes(inbox, key, changes))
    assert set(applied.statuses.values()) == {"1"}
    key = applied.sync_key
    mailbox = state_of(dovecot, fresh_user)
    uid0, uid1, uid2 = (int(i.split(":")[1]) for i in ids[:3])
    assert mailbox[uid0] == (True, False) and mailbox[uid1] == (False, True)
    assert uid2 not in mailbox
    assert len(state_of(dovecot, fresh_user, "Trash")) == 1  # DeletesAsMoves
    # Our own changes are not echoed back.
    echo = await blocking(lambda: c.sync_folder(inbox, key))
    assert not echo.added and not echo.changed and not echo.deleted
    key = echo.sync_key
    load(dovecot, fresh_user, 2)
    uid3 = int(ids[3].split(":")[1])
    uid4 = int(ids[4].split(":")[1])
    with dovecot.imap(fresh_user) as imap:
        imap.select("INBOX")
        imap.uid("STORE", str(uid3), "+FLAGS", "(\\Seen)")
        imap.uid("STORE", str(uid4), "+FLAGS", "(\\Deleted)")
        imap.expunge()
    result = await blocking(lambda: c.sync_folder(inbox, key))
    assert len(result.added) == 2
    assert [i.server_id for i in result.changed] == [ids[3]]
    assert result.changed[0].fields.get("Email.Read") == "1"
    assert result.deleted == [ids[4]]


@pytest_twisted.ensureDeferred
async def test_retry_answers_identically_and_unknown_key_restarts(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    load(dovecot, fresh_user, 10)
    dev, folders = await device(syncserver, fresh_user, "SYNCE2ERETRY")
    inbox = folders["INBOX"]
    k0 = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key
    assert k0
    first = await blocking(lambda: dev.sync(inbox, k0, window=4, options=body_options()))
    load(dovecot, fresh_user, 1)
    retry = await blocking(lambda: dev.sync(inbox, k0, window=4, options=body_options()))
    assert retry.raw == first.raw  # byte for byte
    unknown = await blocking(lambda: dev.sync(inbox, "not-a-key", window=4))
    assert unknown.status == 3
    view = DeviceView()
    key = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key or ""
    while True:
        a = await blocking(dev.sync, inbox, key, window=4)
        view.apply(a)
        key = a.sync_key or ""
        if not a.more:
            break
    assert len(view.items) == 11 and not view.duplicates


@pytest_twisted.ensureDeferred
async def test_imap_dropped_mid_sync_is_retryable_and_loses_nothing(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    load(dovecot, fresh_user, 12)
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EDROP")
    inbox = folders["INBOX"]
    k0 = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key or ""
    view = DeviceView()
    a = await blocking(lambda: dev.sync(inbox, k0, window=5, options=body_options()))
    view.apply(a)
    key = a.sync_key or ""
    # The IMAP connection dies while opush fetches the window's bodies.
    syncserver.proxy.trigger = b"BODY.PEEK["
    dropped = await blocking(lambda: dev.sync(inbox, key, window=5))
    assert syncserver.proxy.tripped == 1
    assert dropped.http_status == 200 and dropped.status == 16  # MS-ASCMD Sync Status 16 Retry
    syncserver.proxy.refuse = False  # the server is back
    # The next Sync with the same key completes: nothing lost, nothing twice.
    while True:
        a = await blocking(dev.sync, inbox, key, window=5)
        assert a.status == 1
        view.apply(a)
        key = a.sync_key or ""
        if not a.more:
            break
    assert not view.duplicates
    assert set(view.items) == set(as_view(inbox, state_of(dovecot, fresh_user)))


@pytest_twisted.ensureDeferred
async def test_get_item_estimate(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    load(dovecot, fresh_user, 9)
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EGIE")
    inbox = folders["INBOX"]
    assert (await blocking(lambda: dev.estimate(inbox, "0")))[0] == 3  # not primed
    k0 = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key or ""
    assert await blocking(lambda: dev.estimate(inbox, k0)) == (1, 9)
    a = await blocking(lambda: dev.sync(inbox, k0, window=4))
    load(dovecot, fresh_user, 2)
    assert await blocking(lambda: dev.estimate(inbox, a.sync_key or "")) == (1, 7)
    assert (await blocking(lambda: dev.estimate(inbox, "stale")))[0] == 4
    # The previous key stays valid (a Sync retry with it is answered): so is its estimate.
    assert (await blocking(lambda: dev.estimate(inbox, k0)))[0] == 1
    assert (await blocking(lambda: dev.estimate(99, a.sync_key or "")))[0] == 2
    # pyactivesync's own request (16.1).
    est = await blocking(lambda: dev.client.get_item_estimate(str(inbox), a.sync_key or ""))
    assert est == 7


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
async def test_version_shaping_fetch_and_invalid_ids(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str, version: str
) -> None:
    load(dovecot, fresh_user, 2)
    dev, folders = await device(syncserver, fresh_user, f"SYNCE2EV{version[:2]}", version)
    inbox = folders["INBOX"]
    k0 = (await blocking(lambda: dev.sync(inbox, "0", item_class="Email"))).sync_key or ""
    a = await blocking(lambda: dev.sync(inbox, k0, options=body_options(200), item_class="Email"))
    assert a.collection is not None
    has_class = a.collection.find(f"{{{A}}}Class") is not None
    assert has_class == (version < "14.0")  # Class only before 14.0
    add = a.of("Add")[0]
    data = add.find(f"{{{A}}}ApplicationData")
    assert data is not None
    assert (data.find(f"{{{ns.EMAIL2}}}ConversationId") is not None) == (version >= "14.0")
    assert (data.find(f"{{{ns.EMAIL2}}}IsDraft") is not None) == (version >= "16.0")
    sid = child_text(add, "ServerId") or ""
    b = await blocking(
        lambda: dev.sync(
            inbox,
            a.sync_key or "",
            commands=[
                change_command("junk", read_prop(True)),
                delete_command(f"{inbox}:99999"),
                fetch_command(sid),
                change_command(sid, read_prop(True), flag_prop(True)),
            ],
        )
    )
    assert b.status == 1
    statuses = {
        (etree.QName(r).localname, child_text(r, "ServerId")): child_text(r, "Status")
        for r in b.responses()
    }
    assert statuses == {
        ("Change", "junk"): "8",
        ("Delete", f"{inbox}:99999"): "8",
        ("Fetch", sid): "1",
    }
    tags = [etree.QName(c).localname for c in b.collection]  # type: ignore[union-attr]
    assert "Commands" not in tags or tags.index("Responses") < tags.index("Commands")
    uid = int(sid.split(":")[1])
    assert state_of(dovecot, fresh_user)[uid] == (True, True)


@pytest_twisted.ensureDeferred
async def test_drafts_add_16(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EDRAFT", "16.1")
    drafts = folders["Drafts"]
    c = dev.client
    key = (await blocking(lambda: c.sync_folder(str(drafts), "0"))).sync_key
    key = (await blocking(lambda: c.sync_folder(str(drafts), key))).sync_key
    message = make_message("bob@example.org", "a draft", "draft body\n")
    import email

    added = await blocking(
        lambda: c.create_email_draft(str(drafts), key, email.message_from_bytes(message))
    )
    assert added.status == "1" and added.server_id
    with dovecot.imap(fresh_user) as imap:
        imap.select("Drafts", readonly=True)
        _, data = imap.uid("FETCH", added.server_id.split(":")[1], "(FLAGS BODY.PEEK[])")
    raw = b"".join(p[1] for p in data if isinstance(p, tuple))
    assert b"a draft" in raw and b"\\Draft" in (data[0][0] if isinstance(data[0], tuple) else b"")
    after = await blocking(lambda: c.sync_folder(str(drafts), added.sync_key))
    assert not after.added  # not echoed


@pytest_twisted.ensureDeferred
async def test_no_change_sync_is_an_empty_response_and_the_key_stays_current(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """MS-ASCMD 2.2.1.21.2 / 4.5.10: nothing to report -> HTTP 200 without a body; the device
    keeps its SyncKey, and the next change arrives with it, also after an empty request."""
    load(dovecot, fresh_user, 2)
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EEMPTY")
    inbox = folders["INBOX"]
    k0 = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key or ""
    first = await blocking(lambda: dev.sync(inbox, k0))
    assert len(first.of("Add")) == 2
    key = first.sync_key or ""
    idle = await blocking(lambda: dev.sync(inbox, key))
    assert (idle.http_status, idle.raw, idle.root) == (200, b"", None)
    load(dovecot, fresh_user, 1)
    news = await blocking(lambda: dev.sync(inbox, key))
    assert len(news.of("Add")) == 1 and news.sync_key not in (None, key)
    # An empty request (the cached one) with nothing new: empty again.
    response = await blocking(lambda: dev.post("Sync", None))
    assert (response.status_code, response.content) == (200, b"")


@pytest_twisted.ensureDeferred
async def test_a_changed_draft_keeps_its_server_id_16(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """MS-ASCMD 2.2.3.24 / 16.0 drafts: a device Change of a draft replaces the IMAP message
    (new UID), yet the device keeps its ServerId: no Delete+Add comes back, later server
    changes arrive under that ServerId, and a Delete of it removes the new message."""
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EDRAFT2", "16.1")
    drafts = folders["Drafts"]
    k = (await blocking(lambda: dev.sync(drafts, "0"))).sync_key or ""
    k = (await blocking(lambda: dev.sync(drafts, k))).sync_key or k
    b = ns.AIRSYNCBASE

    def draft(subject: str, text: str) -> list[Any]:
        return [
            E(ns.EMAIL, "To", text="bob@example.org"),
            E(ns.EMAIL, "Subject", text=subject),
            E(b, "Body", E(b, "Type", text=1), E(b, "Data", text=text)),
        ]

    add = E(
        A, "Add", E(A, "ClientId", text="draft-1"), E(A, "ApplicationData", *draft("v1", "one"))
    )
    added = await blocking(lambda: dev.sync(drafts, k, commands=[add]))
    (response,) = added.responses()
    sid = child_text(response, "ServerId") or ""
    assert child_text(response, "Status") == "1" and sid
    changed = await blocking(
        lambda: dev.sync(
            drafts, added.sync_key or "", commands=[change_command(sid, *draft("v2", "two"))]
        )
    )
    assert changed.status == 1 and not list(changed.commands())
    with dovecot.imap(fresh_user) as imap:
        imap.select("Drafts")
        _, data = imap.uid("SEARCH", None, "ALL")
        uids = (data[0] or b"").split()
        assert len(uids) == 1 and uids[0].decode() != sid.split(":")[1]
        _, body = imap.uid("FETCH", uids[0].decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"v2" in body[0][1]
        imap.uid("STORE", uids[0].decode(), "+FLAGS", "(\\Flagged)")
    later = await blocking(lambda: dev.sync(drafts, changed.sync_key or ""))
    assert [(etree.QName(c).localname, child_text(c, "ServerId")) for c in later.commands()] == [
        ("Change", sid)
    ]
    gone = await blocking(
        lambda: dev.sync(drafts, later.sync_key or "", commands=[delete_command(sid)])
    )
    assert gone.status == 1
    with dovecot.imap(fresh_user) as imap:
        imap.select("Drafts", readonly=True)
        _, data = imap.uid("SEARCH", "UNDELETED")
    assert not (data[0] or b"").split()


def _flag_of(answer: Any, sid: str) -> list[tuple[str, str]]:
    for cmd in answer.commands():
        if child_text(cmd, "ServerId") == sid:
            flag = cmd.find(f"{{{A}}}ApplicationData/{{{ns.EMAIL}}}Flag")
            assert flag is not None
            return [(etree.QName(c).localname, c.text or "") for c in flag]
    raise AssertionError(f"{sid} not in the answer")


@pytest_twisted.ensureDeferred
async def test_flag_dates_reach_every_device_until_imap_changes_the_flag(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """MS-ASEMAIL 2.2.2.35: a follow-up flag with its dates set on one device is what another
    device gets; complete flags keep their completion time; IMAP (\\Flagged only) wins when
    another client changes the flag."""
    load(dovecot, fresh_user, 2)
    phone, folders = await device(syncserver, fresh_user, "SYNCE2EFLAG1", "14.1")
    inbox = folders["INBOX"]
    k = (await blocking(lambda: phone.sync(inbox, "0"))).sync_key or ""
    first = await blocking(lambda: phone.sync(inbox, k, options=body_options(100)))
    sids = [child_text(c, "ServerId") or "" for c in first.commands()]
    t = ns.TASKS
    follow_up = E(
        ns.EMAIL,
        "Flag",
        E(ns.EMAIL, "Status", text=2),
        E(ns.EMAIL, "FlagType", text="Follow up"),
        E(t, "StartDate", text="2026-11-23T00:00:00.000Z"),
        E(t, "UtcStartDate", text="2026-11-23T00:00:00.000Z"),
        E(t, "DueDate", text="2026-11-30T00:00:00.000Z"),
        E(t, "UtcDueDate", text="2026-11-30T00:00:00.000Z"),
    )
    done = E(
        ns.EMAIL,
        "Flag",
        E(ns.EMAIL, "Status", text=1),
        E(ns.EMAIL, "CompleteTime", text="2026-11-22T10:00:00.000Z"),
        E(t, "DateCompleted", text="2026-11-22T10:00:00.000Z"),
    )
    changed = await blocking(
        lambda: phone.sync(
            inbox,
            first.sync_key or "",
            commands=[change_command(sids[0], follow_up), change_command(sids[1], done)],
        )
    )
    assert changed.status == 1
    assert state_of(dovecot, fresh_user)[int(sids[0].split(":")[1])][1] is True

    tablet, folders2 = await device(syncserver, fresh_user, "SYNCE2EFLAG2", "16.1")
    k2 = (await blocking(lambda: tablet.sync(folders2["INBOX"], "0"))).sync_key or ""
    seen = await blocking(lambda: tablet.sync(folders2["INBOX"], k2, options=body_options(100)))
    other = {child_text(c, "ServerId") or "" for c in seen.commands()}
    s0, s1 = (f"{folders2['INBOX']}:{sid.split(':')[1]}" for sid in sids)
    assert other == {s0, s1}
    assert _flag_of(seen, s0) == [
        ("Status", "2"),
        ("FlagType", "Follow up"),
        ("StartDate", "2026-11-23T00:00:00.000Z"),
        ("UtcStartDate", "2026-11-23T00:00:00.000Z"),
        ("DueDate", "2026-11-30T00:00:00.000Z"),
        ("UtcDueDate", "2026-11-30T00:00:00.000Z"),
    ]
    assert _flag_of(seen, s1) == [
        ("Status", "1"),
        ("CompleteTime", "2026-11-22T10:00:00.000Z"),
        ("DateCompleted", "2026-11-22T10:00:00.000Z"),
    ]

    # MoveItems takes the details along (MOVE keeps INTERNALDATE and size).
    mv = ns.MOVE
    moved = await blocking(
        lambda: tablet.post(
            "MoveItems",
            E(
                mv,
                "MoveItems",
                E(
                    mv,
                    "Move",
                    E(mv, "SrcMsgId", text=s1),
                    E(mv, "SrcFldId", text=str(folders2["INBOX"])),
                    E(mv, "DstFldId", text=str(folders2["Trash"])),
                ),
            ),
        )
    )
    assert moved.status_code == 200
    k3 = (await blocking(lambda: tablet.sync(folders2["Trash"], "0"))).sync_key or ""
    trash = await blocking(lambda: tablet.sync(folders2["Trash"], k3, options=body_options(100)))
    (moved_sid,) = [child_text(c, "ServerId") or "" for c in trash.commands()]
    assert _flag_of(trash, moved_sid) == [
        ("Status", "1"),
        ("CompleteTime", "2026-11-22T10:00:00.000Z"),
        ("DateCompleted", "2026-11-22T10:00:00.000Z"),
    ]

    # Another IMAP client clears the flag: the dates no longer apply.
    with dovecot.imap(fresh_user) as imap:
        imap.select("INBOX")
        imap.uid("STORE", sids[0].split(":")[1], "-FLAGS", "(\\Flagged)")
    again = await blocking(lambda: tablet.sync(folders2["INBOX"], seen.sync_key or ""))
    assert _flag_of(again, s0) == []


def _unused(*_: Any) -> None:
    E(A, "Sync")


@pytest_twisted.ensureDeferred
async def test_an_edited_draft_can_be_fetched_and_moved_16(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """After a 16.x draft Change (new IMAP UID, same ServerId), ItemOperations Fetch and
    MoveItems find the draft by the ServerId the device holds."""
    dev, folders = await device(syncserver, fresh_user, "SYNCE2EDRAFT3", "16.1")
    drafts, inbox = folders["Drafts"], folders["INBOX"]
    k = (await blocking(lambda: dev.sync(drafts, "0"))).sync_key or ""
    k = (await blocking(lambda: dev.sync(drafts, k))).sync_key or k
    b = ns.AIRSYNCBASE
    data = [E(ns.EMAIL, "To", text="bob@example.org"), E(ns.EMAIL, "Subject", text="v1"),
            E(b, "Body", E(b, "Type", text=1), E(b, "Data", text="one"))]  # fmt: skip
    add = E(A, "Add", E(A, "ClientId", text="d-1"), E(A, "ApplicationData", *data))
    added = await blocking(lambda: dev.sync(drafts, k, commands=[add]))
    sid = child_text(added.responses()[0], "ServerId") or ""
    edit = change_command(sid, E(ns.EMAIL, "Subject", text="v2"))
    await blocking(lambda: dev.sync(drafts, added.sync_key or "", commands=[edit]))
    io = ns.ITEMOPERATIONS
    fetch = E(io, "ItemOperations", E(io, "Fetch", E(io, "Store", text="Mailbox"),
              E(A, "CollectionId", text=drafts), E(A, "ServerId", text=sid)))  # fmt: skip
    got = decode((await blocking(lambda: dev.post("ItemOperations", fetch))).content)
    assert got.findtext(f".//{{{io}}}Fetch/{{{io}}}Status") == "1"
    assert got.findtext(f".//{{{io}}}Properties/{{{ns.EMAIL}}}Subject") == "v2"
    mv = ns.MOVE
    move = E(mv, "MoveItems", E(mv, "Move", E(mv, "SrcMsgId", text=sid),
             E(mv, "SrcFldId", text=drafts), E(mv, "DstFldId", text=inbox)))  # fmt: skip
    moved = decode((await blocking(lambda: dev.post("MoveItems", move))).content)
    assert moved.findtext(f".//{{{mv}}}Status") == "3"
    with dovecot.imap(fresh_user) as imap:
        imap.select("INBOX", readonly=True)
        _, hits = imap.uid("SEARCH", None, "SUBJECT", '"v2"')
        assert len((hits[0] or b"").split()) == 1
        imap.select("Drafts", readonly=True)
        _, left = imap.uid("SEARCH", None, "UNDELETED")
        assert not (left[0] or b"").split()


def _thread_message(to: str, subject: str, msgid: str, refs: str = "") -> bytes:
    headers = f"References: {refs}\r\nIn-Reply-To: {refs.split()[-1]}\r\n" if refs else ""
    return (
        f"From: Bob <bob@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: {msgid}\r\n{headers}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
    ).encode()


@pytest_twisted.ensureDeferred
async def test_conversation_search_and_move(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """A ConversationId from a synced mail finds the whole thread across folders (Search,
    MS-ASCMD 2.2.3.35.2), also after a restart (nothing remembered), and ItemOperations
    Move (2.2.3.117.1) moves it, leaving Sent Items alone."""
    from opush.content.email.conversations import THREADS

    root = "<root-1@example.org>"
    with dovecot.imap(fresh_user) as imap:
        imap.create('"Archive"')
        imap.subscribe('"Archive"')
    inbox_mails = [
        _thread_message(fresh_user, "Plan", root),
        _thread_message(fresh_user, "Re: Plan", "<r2@example.org>", root),
        _thread_message(fresh_user, "Other", "<other@example.org>"),
    ]
    archived = _thread_message(fresh_user, "Re: Plan", "<r3@x.org>", f"{root} <r2@example.org>")
    sent = _thread_message("bob@example.org", "Re: Plan", "<r4@example.org>", root)
    multiappend(dovecot.host, dovecot.imap_port, fresh_user, "INBOX", inbox_mails)
    multiappend(dovecot.host, dovecot.imap_port, fresh_user, "Archive", [archived])
    multiappend(dovecot.host, dovecot.imap_port, fresh_user, "Sent", [sent])
    dev = EasDevice(syncserver.host, fresh_user, "CONV1", "14.1")
    await blocking(dev.provision)
    fh = ns.FOLDERHIERARCHY
    folder_sync = E(fh, "FolderSync", E(fh, "SyncKey", text="0"))
    listing = decode((await blocking(lambda: dev.post("FolderSync", folder_sync))).content)
    ids = {
        a.findtext(f"{{{fh}}}DisplayName"): int(a.findtext(f"{{{fh}}}ServerId") or 0)
        for a in listing.iter(f"{{{fh}}}Add")
    }
    inbox, archive = ids["Inbox"], ids["Archive"]
    k = (await blocking(lambda: dev.sync(inbox, "0"))).sync_key or ""
    first = await blocking(lambda: dev.sync(inbox, k))
    conv = next(
        add.find(f"{{{A}}}ApplicationData/{{{ns.EMAIL2}}}ConversationId")
        for add in first.of("Add")
        if add.findtext(f"{{{A}}}ApplicationData/{{{ns.EMAIL}}}Subject") == "Plan"
    )
    assert conv is not None
    s = ns.SEARCH

    def search() -> list[str]:
        query = E(s, "Search", E(s, "Store", E(s, "Name", text="Mailbox"),
                  E(s, "Query", E(s, "And", E(A, "Class", text="Email"), _conversation(s, conv))),
                  E(s, "Options", E(s, "Range", text="0-9"))))  # fmt: skip
        answer = decode(dev.post("Search", query).content)
        return sorted(
            r.findtext(f"{{{s}}}Properties/{{{ns.EMAIL}}}Subject") or ""
            for r in answer.iter(f"{{{s}}}Result")
            if r.find(f"{{{s}}}Properties") is not None
        )

    assert await blocking(search) == ["Plan", "Re: Plan", "Re: Plan", "Re: Plan"]
    THREADS._threads.clear()  # as after a restart: the thread is found among recent mail
    assert await blocking(search) == ["Plan", "Re: Plan", "Re: Plan", "Re: Plan"]

    io = ns.ITEMOPERATIONS
    move = E(io, "ItemOperations", E(io, "Move", _conversation(io, conv),
             E(io, "DstFldId", text=archive), E(io, "Options", E(io, "MoveAlways"))))  # fmt: skip
    answer = decode((await blocking(lambda: dev.post("ItemOperations", move))).content)
    assert answer.findtext(f".//{{{io}}}Move/{{{io}}}Status") == "1"
    with dovecot.imap(fresh_user) as imap:
        counts = {}
        for folder in ("INBOX", "Archive", "Sent"):
            imap.select(f'"{folder}"', readonly=True)
            _, data = imap.uid("SEARCH", None, "UNDELETED")
            counts[folder] = len((data[0] or b"").split())
    assert counts == {"INBOX": 1, "Archive": 3, "Sent": 1}


def _conversation(namespace: str, conv: Any) -> Any:
    """The Email2:ConversationId a device got, as another code page's ConversationId."""
    from opush.wbxml import opaque, set_opaque

    el = E(namespace, "ConversationId")
    set_opaque(el, opaque(conv))
    return el


@pytest_twisted.ensureDeferred
async def test_notes_folder_both_ways(
    syncserver: SyncServer, dovecot: LocalServices, fresh_user: str
) -> None:
    """MS-ASNOTE over the IMAP Notes folder: a note Apple Notes stored reaches the device, the
    device's Add is stored the Apple way, a Change keeps the ServerId and what it leaves out,
    a Delete removes it; a 12.1 device does not see the folder (MS-ASNOTE is 14.0+)."""
    from opush.content.notes import Note, note_to_mime

    mac_note = Note(subject="From the Mac", body="<p>hello</p>", html=True)
    multiappend(
        dovecot.host, dovecot.imap_port, fresh_user, "Notes", [note_to_mime(mac_note, None)]
    )
    dev = EasDevice(syncserver.host, fresh_user, "NOTES141", "14.1")
    await blocking(dev.provision)
    fh = ns.FOLDERHIERARCHY
    folder_sync = E(fh, "FolderSync", E(fh, "SyncKey", text="0"))
    listing = decode((await blocking(lambda: dev.post("FolderSync", folder_sync))).content)
    notes = next(
        int(a.findtext(f"{{{fh}}}ServerId") or 0)
        for a in listing.iter(f"{{{fh}}}Add")
        if a.findtext(f"{{{fh}}}Type") == "10"
    )
    N, B = ns.NOTES, ns.AIRSYNCBASE
    k = (await blocking(lambda: dev.sync(notes, "0"))).sync_key or ""
    first = await blocking(lambda: dev.sync(notes, k))
    (add,) = first.of("Add")
    assert add.findtext(f"{{{A}}}ApplicationData/{{{N}}}Subject") == "From the Mac"
    assert add.findtext(f"{{{A}}}ApplicationData/{{{N}}}MessageClass") == "IPM.StickyNote"
    assert add.findtext(f"{{{A}}}ApplicationData/{{{B}}}Body/{{{B}}}Data") == "hello"
    new = E(A, "Add", E(A, "ClientId", text="n1"), E(A, "ApplicationData",
            E(N, "Subject", text="Groceries"),
            E(B, "Body", E(B, "Type", text=1), E(B, "Data", text="milk, eggs"))))  # fmt: skip
    added = await blocking(lambda: dev.sync(notes, first.sync_key or "", commands=[new]))
    sid = child_text(added.responses()[0], "ServerId") or ""
    assert child_text(added.responses()[0], "Status") == "1"
    edit = change_command(sid, E(N, "Subject", text="Shopping"))
    changed = await blocking(lambda: dev.sync(notes, added.sync_key or "", commands=[edit]))
    assert changed.status == 1 and not list(changed.commands())
    with dovecot.imap(fresh_user) as imap:
        imap.select("Notes", readonly=True)
        _, data = imap.uid("SEARCH", None, "UNDELETED", "SUBJECT", '"Shopping"')
        (uid,) = (data[0] or b"").split()
        _, raw = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    body = raw[0][1]
    assert b"com.apple.mail-note" in body and b"milk, eggs" in body
    gone = await blocking(
        lambda: dev.sync(notes, changed.sync_key or "", commands=[delete_command(sid)])
    )
    assert gone.status == 1
    with dovecot.imap(fresh_user) as imap:
        imap.select("Notes", readonly=True)
        _, data = imap.uid("SEARCH", None, "UNDELETED")
        assert len((data[0] or b"").split()) == 1  # the Mac's note stays
    old = EasDevice(syncserver.host, fresh_user, "NOTES121", "12.1")
    await blocking(old.provision)
    old_listing = decode((await blocking(lambda: old.post("FolderSync", folder_sync))).content)
    assert "10" not in {a.findtext(f"{{{fh}}}Type") for a in old_listing.iter(f"{{{fh}}}Add")}
