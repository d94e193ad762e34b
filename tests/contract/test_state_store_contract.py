"""Contract of StateStore: every backend behaves exactly like this."""

from __future__ import annotations

import pytest_twisted

from opush.storage.interfaces import (
    HIERARCHY,
    Collection,
    FolderKind,
    FolderRef,
    MappingKind,
    PingFolder,
    PingParameters,
    SyncState,
)
from tests.support.storage import Backend

INBOX = FolderRef(FolderKind.MAIL, "INBOX", "Inbox", 2)
SENT = FolderRef(FolderKind.MAIL, "Sent", "Sent", 5)
WORK = FolderRef(FolderKind.MAIL, "INBOX/Work", "Work", 12, parent_backend_id="INBOX")
CALENDAR = FolderRef(FolderKind.CALENDAR, "alice@example.org", "alice", 8)
DEV = "ANDROID1"


def state(key: str, parent: str | None = None, **data: object) -> SyncState:
    return SyncState(key, data or {"n": key}, parent_key=parent)


# ----------------------------------------------------------------------------- collections


@pytest_twisted.ensureDeferred
async def test_collection_ids_start_at_one_and_are_stable(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    assert await s.allocate_collection(alice, DEV, INBOX) == 1
    assert await s.allocate_collection(alice, DEV, SENT) == 2
    assert await s.allocate_collection(alice, DEV, INBOX) == 1
    assert await s.allocate_collection(alice, DEV, CALENDAR) == 3
    assert await s.list_collections(alice, DEV) == [
        Collection(1, INBOX),
        Collection(2, SENT),
        Collection(3, CALENDAR),
    ]


@pytest_twisted.ensureDeferred
async def test_collection_lookup_both_ways(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    cid = await s.allocate_collection(alice, DEV, WORK)
    assert await s.get_collection(alice, DEV, cid) == Collection(cid, WORK)
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "INBOX/Work") == Collection(
        cid, WORK
    )
    assert await s.get_collection(alice, DEV, cid + 1) is None
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "Nope") is None
    # the kind is part of the key
    assert await s.find_collection(alice, DEV, FolderKind.CONTACTS, "INBOX/Work") is None


@pytest_twisted.ensureDeferred
async def test_out_of_range_collection_ids_name_nothing(backend: Backend) -> None:
    """Devices send any digits as a CollectionId: beyond what a store can hold (SQLite 64-bit,
    Cassandra int) it is an unknown collection, never an overflow error."""
    s, alice = backend.store, backend.user("alice")
    await s.allocate_collection(alice, DEV, INBOX)
    for cid in (2**31, 2**63, 10**20, -1):
        assert await s.get_collection(alice, DEV, cid) is None
        assert await s.get_sync_state(alice, DEV, cid, "k") is None
        assert await s.current_sync_state(alice, DEV, cid) is None
        assert await s.get_mapping(alice, DEV, cid, MappingKind.CLIENT_ID, "c") is None


@pytest_twisted.ensureDeferred
async def test_same_backend_id_in_two_kinds_gets_two_ids(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    a = await s.allocate_collection(alice, DEV, FolderRef(FolderKind.CALENDAR, "x", "x", 8))
    b = await s.allocate_collection(alice, DEV, FolderRef(FolderKind.TASKS, "x", "x", 7))
    assert a != b


@pytest_twisted.ensureDeferred
async def test_rename_keeps_the_id(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    cid = await s.allocate_collection(alice, DEV, WORK)
    moved = FolderRef(FolderKind.MAIL, "Archive/Work", "Work 2025", 12, "Archive")
    assert await s.update_collection(alice, DEV, cid, moved) is True
    assert await s.get_collection(alice, DEV, cid) == Collection(cid, moved)
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "Archive/Work") == Collection(
        cid, moved
    )
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "INBOX/Work") is None
    assert await s.allocate_collection(alice, DEV, moved) == cid
    assert await s.update_collection(alice, DEV, 99, moved) is False
    assert await s.get_collection(alice, DEV, 99) is None


@pytest_twisted.ensureDeferred
async def test_delete_collection_drops_its_state(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    inbox = await s.allocate_collection(alice, DEV, INBOX)
    sent = await s.allocate_collection(alice, DEV, SENT)
    for cid in (inbox, sent):
        await s.put_sync_state(alice, DEV, cid, state("k1"))
        await s.put_mapping(alice, DEV, cid, MappingKind.CLIENT_ID, "c1", f"{cid}:1")
    await s.delete_collection(alice, DEV, inbox)
    assert await s.get_collection(alice, DEV, inbox) is None
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "INBOX") is None
    assert await s.get_sync_state(alice, DEV, inbox, "k1") is None
    assert await s.current_sync_state(alice, DEV, inbox) is None
    assert await s.get_mapping(alice, DEV, inbox, MappingKind.CLIENT_ID, "c1") is None
    # the other collection is untouched
    assert await s.list_collections(alice, DEV) == [Collection(sent, SENT)]
    assert await s.get_sync_state(alice, DEV, sent, "k1") == state("k1")
    assert await s.get_mapping(alice, DEV, sent, MappingKind.CLIENT_ID, "c1") == f"{sent}:1"
    # a new folder never inherits the deleted collection's state
    again = await s.allocate_collection(alice, DEV, INBOX)
    assert await s.current_sync_state(alice, DEV, again) is None


@pytest_twisted.ensureDeferred
async def test_collections_are_per_user_and_device(backend: Backend) -> None:
    s, alice, bob = backend.store, backend.user("alice"), backend.user("bob")
    assert await s.allocate_collection(alice, "D1", SENT) == 1
    assert await s.allocate_collection(alice, "D2", INBOX) == 1
    assert await s.allocate_collection(bob, "D1", INBOX) == 1
    assert await s.allocate_collection(alice, "D1", INBOX) == 2
    assert await s.find_collection(alice, "D2", FolderKind.MAIL, "Sent") is None
    await s.delete_collection(alice, "D2", 1)
    assert await s.get_collection(bob, "D1", 1) == Collection(1, INBOX)
    assert await s.get_collection(alice, "D1", 1) == Collection(1, SENT)


# ----------------------------------------------------------------------------- sync keys


@pytest_twisted.ensureDeferred
async def test_unknown_sync_key(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    assert await s.get_sync_state(alice, DEV, 1, "nope") is None
    assert await s.current_sync_state(alice, DEV, 1) is None


@pytest_twisted.ensureDeferred
async def test_sync_state_round_trip(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    data = {
        "uidvalidity": 1700000000,
        "highestmodseq": 2**40,
        "uids": [1, 2, 3, 500],
        "window": [{"uid": 7, "change": "add"}],
        "options": {"FilterType": "3", "MIMESupport": None, "deep": {"ok": True}},
        "name": "Boîte de réception ✉",
        "ratio": 0.5,
    }
    first = SyncState("k1", data)
    await s.put_sync_state(alice, DEV, 1, first)
    second = SyncState("k2", {"n": 2}, parent_key="k1", response=b"\x03\x01j\x00\x00\xff")
    await s.put_sync_state(alice, DEV, 1, second)
    assert await s.get_sync_state(alice, DEV, 1, "k1") == first
    assert await s.get_sync_state(alice, DEV, 1, "k2") == second
    assert await s.current_sync_state(alice, DEV, 1) == second


@pytest_twisted.ensureDeferred
async def test_previous_key_stays_valid_until_the_new_one_is_used(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, 1, state("k1"))
    await s.put_sync_state(alice, DEV, 1, state("k2", "k1"))
    assert await s.get_sync_state(alice, DEV, 1, "k1") is not None
    assert await s.get_sync_state(alice, DEV, 1, "k2") is not None
    await s.put_sync_state(alice, DEV, 1, state("k3", "k2"))
    assert await s.get_sync_state(alice, DEV, 1, "k1") is None
    assert await s.get_sync_state(alice, DEV, 1, "k2") == state("k2", "k1")
    current = await s.current_sync_state(alice, DEV, 1)
    assert current == state("k3", "k2")


@pytest_twisted.ensureDeferred
async def test_retry_with_previous_key_replaces_the_unused_key(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, 1, state("k1"))
    await s.put_sync_state(alice, DEV, 1, state("k2", "k1"))
    # the device never saw k2 and retries with k1
    await s.put_sync_state(alice, DEV, 1, state("k2b", "k1"))
    assert await s.get_sync_state(alice, DEV, 1, "k2") is None
    assert await s.get_sync_state(alice, DEV, 1, "k1") == state("k1")
    assert await s.current_sync_state(alice, DEV, 1) == state("k2b", "k1")


@pytest_twisted.ensureDeferred
async def test_cached_response_lets_a_retry_be_answered_identically(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, 1, state("k1"))
    answer = SyncState("k2", {"n": 2}, parent_key="k1", response=b"<wbxml answer>")
    await s.put_sync_state(alice, DEV, 1, answer)
    # a request carrying k1 again: the engine finds the answer it gave
    assert await s.get_sync_state(alice, DEV, 1, "k1") is not None
    current = await s.current_sync_state(alice, DEV, 1)
    assert current is not None and current.parent_key == "k1"
    assert current.response == b"<wbxml answer>"


@pytest_twisted.ensureDeferred
async def test_key_zero_resets_the_collection(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, 1, state("k1"))
    await s.put_sync_state(alice, DEV, 1, state("k2", "k1"))
    await s.put_sync_state(alice, DEV, 1, state("fresh"))
    assert await s.get_sync_state(alice, DEV, 1, "k1") is None
    assert await s.get_sync_state(alice, DEV, 1, "k2") is None
    assert await s.current_sync_state(alice, DEV, 1) == state("fresh")


@pytest_twisted.ensureDeferred
async def test_parent_that_is_not_kept_is_ignored(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, 1, state("k2", "gone"))
    assert await s.get_sync_state(alice, DEV, 1, "gone") is None
    assert await s.current_sync_state(alice, DEV, 1) == state("k2", "gone")


@pytest_twisted.ensureDeferred
async def test_hierarchy_state_is_separate_from_collections(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    await s.put_sync_state(alice, DEV, HIERARCHY, state("f1", folders=[1, 2]))
    await s.put_sync_state(alice, DEV, 1, state("s1"))
    assert await s.get_sync_state(alice, DEV, HIERARCHY, "s1") is None
    assert await s.get_sync_state(alice, DEV, 1, "f1") is None
    assert await s.current_sync_state(alice, DEV, HIERARCHY) == state("f1", folders=[1, 2])


@pytest_twisted.ensureDeferred
async def test_sync_state_isolation(backend: Backend) -> None:
    s, alice, bob = backend.store, backend.user("alice"), backend.user("bob")
    await s.put_sync_state(alice, "D1", 1, state("k", mine="alice-d1-1"))
    await s.put_sync_state(alice, "D1", 2, state("k", mine="alice-d1-2"))
    await s.put_sync_state(alice, "D2", 1, state("k", mine="alice-d2-1"))
    await s.put_sync_state(bob, "D1", 1, state("k", mine="bob-d1-1"))
    # a reset of one collection touches nothing else
    await s.put_sync_state(alice, "D1", 1, state("z", mine="reset"))
    assert await s.get_sync_state(alice, "D1", 2, "k") == state("k", mine="alice-d1-2")
    assert await s.get_sync_state(alice, "D2", 1, "k") == state("k", mine="alice-d2-1")
    assert await s.get_sync_state(bob, "D1", 1, "k") == state("k", mine="bob-d1-1")
    assert await s.get_sync_state(alice, "D1", 1, "k") is None


# ----------------------------------------------------------------------------- mappings


@pytest_twisted.ensureDeferred
async def test_mappings(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    assert await s.get_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1") is None
    await s.put_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1", "1:42")
    await s.put_mapping(alice, DEV, 1, MappingKind.CONTENT_HASH, "c1", "1:43")
    await s.put_mapping(alice, DEV, HIERARCHY, MappingKind.SENDMAIL, "m1", "")
    assert await s.get_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1") == "1:42"
    assert await s.get_mapping(alice, DEV, 1, MappingKind.CONTENT_HASH, "c1") == "1:43"
    assert await s.get_mapping(alice, DEV, HIERARCHY, MappingKind.SENDMAIL, "m1") == ""
    await s.put_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1", "1:44")
    assert await s.get_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1") == "1:44"


@pytest_twisted.ensureDeferred
async def test_mapping_isolation(backend: Backend) -> None:
    s, alice, bob = backend.store, backend.user("alice"), backend.user("bob")
    await s.put_mapping(alice, DEV, 1, MappingKind.CLIENT_ID, "c1", "1:1")
    assert await s.get_mapping(alice, DEV, 2, MappingKind.CLIENT_ID, "c1") is None
    assert await s.get_mapping(alice, "OTHER", 1, MappingKind.CLIENT_ID, "c1") is None
    assert await s.get_mapping(bob, DEV, 1, MappingKind.CLIENT_ID, "c1") is None


# ----------------------------------------------------------------------------- ping


@pytest_twisted.ensureDeferred
async def test_ping_parameters(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    assert await s.get_ping(alice, DEV) is None
    params = PingParameters(470, (PingFolder(1, "Email"), PingFolder(3, "Calendar")))
    await s.put_ping(alice, DEV, params)
    assert await s.get_ping(alice, DEV) == params
    assert await s.get_ping(alice, "OTHER") is None
    assert await s.get_ping(backend.user("bob"), DEV) is None
    shorter = PingParameters(60, ())
    await s.put_ping(alice, DEV, shorter)
    assert await s.get_ping(alice, DEV) == shorter


# ----------------------------------------------------------------------------- whole device


@pytest_twisted.ensureDeferred
async def test_forget_device(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    for device in ("GONE", "KEPT"):
        cid = await s.allocate_collection(alice, device, INBOX)
        await s.put_sync_state(alice, device, cid, state("k1"))
        await s.put_sync_state(alice, device, HIERARCHY, state("f1"))
        await s.put_mapping(alice, device, cid, MappingKind.CLIENT_ID, "c", "1:1")
        await s.put_mapping(alice, device, HIERARCHY, MappingKind.SENDMAIL, "m", "")
        await s.put_ping(alice, device, PingParameters(60, (PingFolder(cid, "Email"),)))
    await s.forget_device(alice, "GONE")
    assert await s.list_collections(alice, "GONE") == []
    assert await s.current_sync_state(alice, "GONE", 1) is None
    assert await s.current_sync_state(alice, "GONE", HIERARCHY) is None
    assert await s.get_mapping(alice, "GONE", 1, MappingKind.CLIENT_ID, "c") is None
    assert await s.get_mapping(alice, "GONE", HIERARCHY, MappingKind.SENDMAIL, "m") is None
    assert await s.get_ping(alice, "GONE") is None
    assert await s.list_collections(alice, "KEPT") == [Collection(1, INBOX)]
    assert await s.current_sync_state(alice, "KEPT", 1) == state("k1")
    assert await s.current_sync_state(alice, "KEPT", HIERARCHY) == state("f1")
    assert await s.get_mapping(alice, "KEPT", HIERARCHY, MappingKind.SENDMAIL, "m") == ""
    assert await s.get_ping(alice, "KEPT") is not None
    # forgetting twice is harmless
    await s.forget_device(alice, "GONE")


# ----------------------------------------------------------------------------- expiry


@pytest_twisted.ensureDeferred
async def test_everything_expires_unless_touched(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    cid = await s.allocate_collection(alice, DEV, INBOX)
    await s.put_sync_state(alice, DEV, cid, state("k1"))
    await s.put_mapping(alice, DEV, cid, MappingKind.CLIENT_ID, "c", "1:1")
    await s.put_ping(alice, DEV, PingParameters(60, ()))
    await backend.advance(backend.ttl * 0.6)
    assert await s.get_collection(alice, DEV, cid) is not None
    assert await s.get_sync_state(alice, DEV, cid, "k1") is not None
    await backend.advance(backend.ttl * 0.6)
    assert await s.get_collection(alice, DEV, cid) is None
    assert await s.list_collections(alice, DEV) == []
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "INBOX") is None
    assert await s.get_sync_state(alice, DEV, cid, "k1") is None
    assert await s.current_sync_state(alice, DEV, cid) is None
    assert await s.get_mapping(alice, DEV, cid, MappingKind.CLIENT_ID, "c") is None
    assert await s.get_ping(alice, DEV) is None
    assert await s.update_collection(alice, DEV, cid, SENT) is False
    # an expired folder gets a collection id again, with no state
    new = await s.allocate_collection(alice, DEV, INBOX)
    assert await s.current_sync_state(alice, DEV, new) is None


@pytest_twisted.ensureDeferred
async def test_syncing_touches_the_state_its_parent_and_the_collection(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    cid = await s.allocate_collection(alice, DEV, INBOX)
    await s.put_sync_state(alice, DEV, cid, state("k1"))
    await backend.advance(backend.ttl * 0.6)
    await s.put_sync_state(alice, DEV, cid, state("k2", "k1"))
    await backend.advance(backend.ttl * 0.6)
    assert await s.get_collection(alice, DEV, cid) == Collection(cid, INBOX)
    assert await s.get_sync_state(alice, DEV, cid, "k1") == state("k1")
    assert await s.current_sync_state(alice, DEV, cid) == state("k2", "k1")


@pytest_twisted.ensureDeferred
async def test_allocating_an_existing_folder_touches_it(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    cid = await s.allocate_collection(alice, DEV, INBOX)
    await backend.advance(backend.ttl * 0.6)
    assert await s.allocate_collection(alice, DEV, INBOX) == cid  # a FolderSync
    await backend.advance(backend.ttl * 0.6)
    assert await s.get_collection(alice, DEV, cid) == Collection(cid, INBOX)


@pytest_twisted.ensureDeferred
async def test_two_ids_for_one_folder_find_the_lowest(backend: Backend) -> None:
    s, alice = backend.store, backend.user("alice")
    inbox = await s.allocate_collection(alice, DEV, INBOX)
    sent = await s.allocate_collection(alice, DEV, SENT)
    assert await s.update_collection(alice, DEV, sent, INBOX) is True
    assert await s.find_collection(alice, DEV, FolderKind.MAIL, "INBOX") == Collection(inbox, INBOX)
    assert await s.get_collection(alice, DEV, sent) == Collection(sent, INBOX)
    assert await s.allocate_collection(alice, DEV, INBOX) == inbox
