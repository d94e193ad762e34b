"""FolderSync, FolderCreate, FolderUpdate, FolderDelete over a fake IMAP tree: what a device
sees (statuses, keys, Adds/Updates/Deletes) and what happens on the IMAP side."""

from __future__ import annotations

import pytest

from opush.backends.interfaces import SpecialUse
from opush.storage.interfaces import HIERARCHY
from opush.sync.hierarchy import Hierarchy, MailFolderSource
from tests.support.folders import (
    Answer,
    DeviceView,
    FolderBench,
    done,
    folder_sync_request,
    imap_paths,
)

STANDARD = {"Inbox": 2, "Drafts": 3, "Trash": 4, "Sent": 5}


def synced(bench: FolderBench, device: DeviceView | None = None, dev: str = "DEV1") -> DeviceView:
    device = device or DeviceView()
    device.apply(done(bench.folder_sync(device.key, dev)))
    return device


def test_first_foldersync_lists_the_default_folders(bench: FolderBench) -> None:
    answer = done(bench.folder_sync("0"))
    assert answer.code == 200 and answer.status == 1
    assert answer.changes() == [
        ("Add", {"ServerId": "1", "ParentId": "0", "DisplayName": "Inbox", "Type": "2"}),
        ("Add", {"ServerId": "2", "ParentId": "0", "DisplayName": "Drafts", "Type": "3"}),
        ("Add", {"ServerId": "3", "ParentId": "0", "DisplayName": "Trash", "Type": "4"}),
        ("Add", {"ServerId": "4", "ParentId": "0", "DisplayName": "Sent", "Type": "5"}),
    ]
    assert answer.count == 4
    assert answer.key != "0"


def test_nothing_changed_keeps_the_key(bench: FolderBench) -> None:
    device = synced(bench)
    again = done(bench.folder_sync(device.key))
    assert (again.status, again.key, again.count, again.changes()) == (1, device.key, 0, [])


def test_changes_made_by_other_clients_arrive_as_add_update_delete(bench: FolderBench) -> None:
    device = synced(bench)
    bench.imap.add("Work")
    bench.imap.add("Work/Q1")
    bench.imap.add("Hidden", subscribed=False)
    answer = done(bench.folder_sync(device.key))
    device.apply(answer)
    assert [k for k, _ in answer.changes()] == ["Add", "Add"]
    assert device.paths() == {**STANDARD, "Work": 12, "Work/Q1": 12}

    bench.imap.boxes["Work/Q1"].subscribed = False  # unsubscribed elsewhere
    bench.imap.add("INBOX/Clients")
    device = synced(bench, device)
    assert device.paths() == {**STANDARD, "Work": 12, "Inbox/Clients": 12}

    del bench.imap.boxes["Work/Q1"]
    del bench.imap.boxes["Work"]
    answer = done(bench.folder_sync(device.key))
    assert [k for k, _ in answer.changes()] == ["Delete"]
    device.apply(answer)
    assert device.paths() == {**STANDARD, "Inbox/Clients": 12}


def test_a_type_change_from_configuration_is_an_update(bench: FolderBench) -> None:
    device = synced(bench)
    bench.imap.add("Corbeille")
    device = synced(bench, device)
    bench.imap.boxes["Trash"].special_use = None  # imap.mailbox.trash=Corbeille now
    bench.imap.boxes["Corbeille"].special_use = SpecialUse.TRASH
    answer = done(bench.folder_sync(device.key))
    assert sorted(f["Type"] for k, f in answer.changes() if k == "Update") == ["12", "4"]
    device.apply(answer)
    assert device.paths() == {**STANDARD, "Trash": 12, "Corbeille": 4}


def test_unknown_key_is_status_9_and_zero_starts_again_with_the_same_ids(
    bench: FolderBench,
) -> None:
    bench.imap.add("Work")
    first = synced(bench)
    assert done(bench.folder_sync("not-a-key")).status == 9
    again = synced(bench)  # the device's answer to Status 9: SyncKey 0
    assert again.folders == first.folders
    assert done(bench.folder_sync(first.key)).status == 9  # reset: the old chain is gone


def test_collection_ids_are_per_device(bench: FolderBench) -> None:
    bench.imap.add("Work")
    one = synced(bench, dev="DEV1")
    bench.imap.add("Alpha")
    two = synced(bench, dev="DEV2")
    assert one.find("Work") == "5"
    assert two.find("Alpha") == "5" and two.find("Work") == "6"


def test_the_previous_key_stays_valid_for_a_retry(bench: FolderBench) -> None:
    device = synced(bench)
    k1 = device.key
    bench.imap.add("Work")
    first = done(bench.folder_sync(k1))
    bench.imap.add("Later")  # arrives between the lost answer and the retry
    retry = done(bench.folder_sync(k1))
    assert (retry.key, retry.changes()) == (first.key, first.changes())
    device.apply(retry)
    device = synced(bench, device)  # the new key works, and brings "Later"
    assert device.paths() == {**STANDARD, "Work": 12, "Later": 12}
    assert done(bench.folder_sync(k1)).status == 9  # two steps back: gone


def test_create_makes_a_subscribed_imap_folder_and_advances_the_key(bench: FolderBench) -> None:
    device = synced(bench)
    created = done(bench.create(device.key, 0, "Projets été"))
    assert (created.status, created.server_id) == (1, "5")
    assert bench.imap.boxes["Projets été"].subscribed
    sub = done(bench.create(created.key, 5, "2026"))
    assert (sub.status, sub.server_id) == (1, "6")
    assert "Projets été/2026" in bench.imap.boxes
    # The device already knows both: nothing to add on the next FolderSync.
    after = done(bench.folder_sync(sub.key))
    assert (after.count, after.key) == (0, sub.key)
    # A device that lost the FolderCreate answers but kept syncing sees them as Adds.
    fresh = synced(bench)
    assert fresh.paths() == {**STANDARD, "Projets été": 12, "Projets été/2026": 12}


def test_create_statuses(bench: FolderBench) -> None:
    device = synced(bench)
    key = device.key
    bench.imap.add("Old", subscribed=False)
    assert done(bench.create(key, 0, "Drafts")).status == 2
    assert done(bench.create(key, 42, "x")).status == 5
    assert done(bench.create(key, 0, "a/b")).status == 10  # would create two levels
    assert done(bench.create(key, 0, "Agenda", folder_type=13)).status == 10  # no calendar yet
    assert done(bench.create("bogus", 0, "x")).status == 9
    assert done(bench.create("0", 0, "x")).status == 9
    assert not [c for c in bench.imap.calls if c[0] == "CREATE"]
    # OP-233: an existing unsubscribed folder is subscribed instead.
    old = done(bench.create(key, 0, "Old"))
    assert old.status == 1 and bench.imap.boxes["Old"].subscribed
    assert done(bench.create(old.key, 0, "Old")).status == 2


def test_create_under_a_folder_deleted_meanwhile_is_status_5(bench: FolderBench) -> None:
    bench.imap.add("Work")
    device = synced(bench)
    del bench.imap.boxes["Work"]
    assert done(bench.create(device.key, device.find("Work"), "x")).status == 5


def test_a_repeated_create_gets_the_same_answer_and_creates_once(bench: FolderBench) -> None:
    device = synced(bench)
    first = done(bench.create(device.key, 0, "Once"))
    retry = done(bench.create(device.key, 0, "Once"))
    assert (retry.status, retry.key, retry.server_id) == (1, first.key, first.server_id)
    assert [c for c in bench.imap.calls if c[0] == "CREATE"] == [("CREATE", "Once")]
    # A different request with that key is not a retry: the name is taken now.
    assert done(bench.create(device.key, 0, "Once")).status == 1
    assert done(bench.create(first.key, 0, "Once")).status == 2


def test_update_renames_and_moves_keeping_ids_and_subfolders(bench: FolderBench) -> None:
    bench.imap.add("Work")
    bench.imap.add("Work/Q1")
    bench.imap.add("Work/Q1/deep")
    bench.imap.add("Archive")
    device = synced(bench)
    work, q1, deep = device.find("Work"), device.find("Work/Q1"), device.find("Work/Q1/deep")
    renamed = done(bench.update(device.key, work, device.find("Archive"), "Travail"))
    assert renamed.status == 1
    assert {"Archive/Travail", "Archive/Travail/Q1", "Archive/Travail/Q1/deep"} <= set(
        bench.imap.boxes
    )
    assert "Work" not in bench.imap.boxes
    assert bench.imap.boxes["Archive/Travail/Q1/deep"].subscribed  # subscriptions follow
    # Ids stay; the device, told nothing more, agrees with the server.
    device.key = renamed.key
    device.folders[work] = (device.find("Archive"), "Travail", 12)
    after = done(bench.folder_sync(renamed.key))
    assert after.count == 0, after.changes()
    fresh = synced(bench)
    assert (fresh.find("Archive/Travail"), fresh.find("Archive/Travail/Q1")) == (work, q1)
    assert fresh.find("Archive/Travail/Q1/deep") == deep
    # Sync (and the other commands) find the folder under its new name.
    collection = done(bench.state.get_collection(bench.user, "DEV1", int(q1)))
    assert collection.ref.backend_id == "Archive/Travail/Q1"


def test_update_statuses(bench: FolderBench) -> None:
    bench.imap.add("Work")
    bench.imap.add("Work/Q1")
    bench.imap.add("Other")
    device = synced(bench)
    key, work = device.key, device.find("Work")
    assert done(bench.update(key, device.find("Inbox"), 0, "Boîte")).status == 2
    assert done(bench.update(key, device.find("Trash"), 0, "Bin")).status == 2
    assert done(bench.update(key, work, 0, "Other")).status == 2
    assert done(bench.update(key, 99, 0, "x")).status == 4
    assert done(bench.update(key, work, 99, "x")).status == 5
    assert done(bench.update(key, work, device.find("Work/Q1"), "x")).status == 5
    assert done(bench.update(key, work, work, "x")).status == 5
    assert done(bench.update("bogus", work, 0, "x")).status == 9
    assert not [c for c in bench.imap.calls if c[0] == "RENAME"]
    del bench.imap.boxes["Other"]
    assert done(bench.update(key, device.find("Other"), 0, "x")).status == 4


def test_delete_removes_the_folder_its_subfolders_and_their_state(bench: FolderBench) -> None:
    bench.imap.add("Work")
    bench.imap.add("Work/Q1")
    bench.imap.add("Work/hidden", subscribed=False)
    device = synced(bench)
    work, q1 = int(device.find("Work")), int(device.find("Work/Q1"))
    deleted = done(bench.delete(device.key, work))
    assert deleted.status == 1
    assert not [n for n in bench.imap.boxes if n.startswith("Work")]
    assert done(bench.state.get_collection(bench.user, "DEV1", work)) is None
    assert done(bench.state.get_collection(bench.user, "DEV1", q1)) is None
    after = done(bench.folder_sync(deleted.key))
    assert after.count == 0


def test_delete_statuses(bench: FolderBench) -> None:
    bench.imap.add("Work")
    device = synced(bench)
    for name in STANDARD:
        assert done(bench.delete(device.key, device.find(name))).status == 3
    assert done(bench.delete(device.key, 99)).status == 4
    assert done(bench.delete("bogus", device.find("Work"))).status == 9
    del bench.imap.boxes["Work"]
    assert done(bench.delete(device.key, device.find("Work"))).status == 4
    assert not [c for c in bench.imap.calls if c[0] == "DELETE"]


@pytest.mark.parametrize("version", [(12, 1), (14, 1), (16, 1)])
def test_imap_down_is_status_6_retry(bench: FolderBench, version: tuple[int, int]) -> None:
    bench.imap.add("Work")
    device = synced(bench)
    bench.imap.unavailable = True
    answers: list[Answer] = [
        done(bench.folder_sync(device.key, version=version)),
        done(bench.run("FolderCreate", _create(device.key), version=version)),
        done(bench.update(device.key, device.find("Work"), 0, "x")),
        done(bench.delete(device.key, device.find("Work"))),
    ]
    assert [(a.code, a.status) for a in answers] == [(200, 6)] * 4
    bench.imap.unavailable = False
    assert done(bench.folder_sync(device.key)).status == 1  # the key survived


def _create(key: str) -> object:
    from tests.support.folders import folder_create_request

    return folder_create_request(key, 0, "x", 12)


def test_malformed_requests_are_status_10(bench: FolderBench) -> None:
    from opush.wbxml import E, ns

    fh = ns.FOLDERHIERARCHY
    assert done(bench.run("FolderSync", E(fh, "FolderSync"))).status == 10
    assert done(bench.run("FolderSync", E(fh, "FolderCreate"))).status == 10
    device = synced(bench)
    no_name = E(fh, "FolderCreate", E(fh, "SyncKey", text=device.key), E(fh, "ParentId", text="0"))
    assert done(bench.run("FolderCreate", no_name)).status == 10
    bad_id = E(fh, "FolderDelete", E(fh, "SyncKey", text=device.key), E(fh, "ServerId", text="x"))
    assert done(bench.run("FolderDelete", bad_id)).status == 10


def test_ping_can_ask_whether_the_hierarchy_changed(bench: FolderBench) -> None:
    def changed() -> bool:
        hierarchy = Hierarchy(bench.state, bench.user, "DEV1", [MailFolderSource(bench.imap)])  # type: ignore[arg-type]
        return bool(done(hierarchy.changed_since()))

    assert changed()  # never synced: the device must FolderSync first
    device = synced(bench)
    assert not changed()
    calls = len(bench.imap.calls)
    assert not changed() and len(bench.imap.calls) == calls + 1  # one LIST, nothing written
    created = done(bench.create(device.key, 0, "Mine"))
    assert created.status == 1 and not changed()  # the device made that change itself
    bench.imap.add("Theirs")
    assert changed()
    device.key = created.key
    device = synced(bench, device)
    assert not changed()


def test_our_own_request_encoding_round_trips(bench: FolderBench) -> None:
    answer = done(bench.run("FolderSync", folder_sync_request("0"), version=(12, 1)))
    assert answer.status == 1 and answer.count == 4
    state = done(bench.state.current_sync_state(bench.user, "DEV1", HIERARCHY))
    assert state.sync_key == answer.key and state.parent_key is None


def test_state_machine_matches_imap_after_every_foldersync(bench: FolderBench) -> None:
    """A scripted mix of device commands and other clients' changes; after each FolderSync
    the device's tree equals the IMAP tree."""
    device = synced(bench)
    steps = [
        lambda: bench.imap.add("A"),
        lambda: done(bench.create(device.key, 0, "B")),
        lambda: bench.imap.add("A/x"),
        lambda: bench.imap.add("INBOX/y"),
    ]
    for step in steps:
        result = step()
        if isinstance(result, Answer):
            assert result.status == 1
            device.key = result.key
            device.folders[result.server_id] = ("0", "B", 12)
        device = synced(bench, device)
        assert device.paths() == imap_paths(bench.imap)


def test_a_generic_folder_is_filed_as_mail_and_the_device_is_told(bench: FolderBench) -> None:
    device = synced(bench)
    created = done(bench.create(device.key, 0, "Misc", folder_type=1))
    assert created.status == 1
    device.key = created.key
    device.folders[created.server_id] = ("0", "Misc", 1)
    answer = done(bench.folder_sync(device.key))
    assert [(k, f["Type"]) for k, f in answer.changes()] == [("Update", "12")]


def test_a_refusal_of_the_imap_server_is_status_11(bench: FolderBench) -> None:
    from opush.backends.interfaces import MailError

    device = synced(bench)

    async def refuse(name: str, subscribe: bool = True) -> None:
        raise MailError(f"CREATE {name}: [CANNOT] Invalid mailbox name")

    bench.imap.create_folder = refuse  # type: ignore[method-assign]
    answer = done(bench.create(device.key, 0, "*bad%"))
    assert (answer.code, answer.status) == (200, 11)
    assert done(bench.folder_sync(device.key)).status == 1


def test_a_folder_holding_a_default_folder_can_be_neither_renamed_nor_deleted(
    bench: FolderBench,
) -> None:
    bench.imap.boxes["Trash"].special_use = None
    bench.imap.add("Work")
    bench.imap.add("Work/Corbeille", special_use=SpecialUse.TRASH)  # imap.mailbox.trash
    device = synced(bench)
    assert device.paths()["Work/Corbeille"] == 4
    work = device.find("Work")
    assert done(bench.update(device.key, work, 0, "Job")).status == 2
    assert done(bench.delete(device.key, work)).status == 3
    assert "Work/Corbeille" in bench.imap.boxes
