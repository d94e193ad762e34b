"""The hierarchy engine without a server: the mail tree (OP-53, OP-226), snapshots, diffs."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from opush.backends.interfaces import Folder, SpecialUse
from opush.commands.foldersync import answer
from opush.storage.interfaces import FolderKind, FolderRef
from opush.sync.hierarchy import Entry, Snapshot, diff, mail_tree
from tests.support.folders import Answer, DeviceView


def folder(name: str, sep: str = "/", **kw: object) -> Folder:
    return Folder(name=name, separator=sep, **kw)  # type: ignore[arg-type]


def shown(refs: list[FolderRef]) -> dict[str, tuple[str, int, str | None]]:
    return {r.backend_id: (r.display_name, r.folder_type, r.parent_backend_id) for r in refs}


def test_default_folders_get_their_types_and_come_first() -> None:
    refs = mail_tree(
        [
            folder("Archives"),
            folder("Sent", special_use=SpecialUse.SENT),
            folder("INBOX", special_use=SpecialUse.INBOX),
            folder("Trash", special_use=SpecialUse.TRASH),
            folder("Drafts", special_use=SpecialUse.DRAFTS),
            folder("Junk", special_use=SpecialUse.JUNK),
        ]
    )
    assert [(r.backend_id, r.display_name, r.folder_type) for r in refs] == [
        ("INBOX", "Inbox", 2),
        ("Drafts", "Drafts", 3),
        ("Trash", "Trash", 4),
        ("Sent", "Sent", 5),
        ("Archives", "Archives", 12),
        ("Junk", "Junk", 12),  # no EAS type for junk: an ordinary mail folder
    ]


def test_tree_follows_the_separator_and_hidden_levels_stay_in_the_name() -> None:
    refs = mail_tree(
        [
            folder("INBOX", ".", special_use=SpecialUse.INBOX),
            folder("INBOX.Sent", ".", special_use=SpecialUse.SENT),  # Cyrus without altnamespace
            folder("INBOX.projets/été", "."),
            folder("a", "."),
            folder("a.b", ".", subscribed=False),
            folder("a.b.c", "."),
            folder("x", ".", attributes=frozenset({"\\Noselect"})),
            folder("x.y", "."),
        ]
    )
    assert shown(refs) == {
        "INBOX": ("Inbox", 2, None),
        "INBOX.Sent": ("Sent", 5, "INBOX"),  # OP-226: a special folder may be a child
        "INBOX.projets/été": ("projets/été", 12, "INBOX"),
        "a": ("a", 12, None),
        "a.b.c": ("b.c", 12, "a"),
        "x.y": ("x.y", 12, None),
    }


def test_unsubscribed_folders_are_hidden_but_special_ones_are_not() -> None:
    refs = mail_tree(
        [
            folder("INBOX", special_use=SpecialUse.INBOX),
            folder("Old", subscribed=False),
            folder("Sent", special_use=SpecialUse.SENT, subscribed=False),
            folder("Sent Items", special_use=SpecialUse.SENT),
        ]
    )
    assert shown(refs) == {
        "INBOX": ("Inbox", 2, None),
        "Sent": ("Sent", 5, None),
        "Sent Items": ("Sent Items", 12, None),  # only one folder can be THE Sent folder
    }


names = st.text(alphabet="abcé/ ", min_size=1, max_size=6)


@st.composite
def snapshots(draw: st.DrawFn, ids: list[int] | None = None) -> Snapshot:
    """Random forests over ids 1..12 (parents always earlier ids, so no cycles)."""
    pool = ids if ids is not None else list(range(1, 13))
    chosen = sorted(draw(st.sets(st.sampled_from(pool), max_size=len(pool))))
    entries: dict[int, Entry] = {}
    for cid in chosen:
        earlier = [c for c in entries]
        parent = draw(st.sampled_from([0, *earlier]))
        name = draw(names)
        ftype = draw(st.sampled_from([2, 3, 4, 5, 12, 12, 12]))
        ref = FolderRef(FolderKind.MAIL, f"box{cid}-{name}", name, ftype, None)
        entries[cid] = Entry(cid, parent, ref)
    return Snapshot(entries)


def view_of(snapshot: Snapshot) -> dict[str, tuple[str, str, int]]:
    return {
        str(c): (str(e.parent_id), e.ref.display_name, e.ref.folder_type)
        for c, e in snapshot.entries.items()
    }


@settings(max_examples=200, deadline=None)
@given(snapshots(), snapshots())
def test_a_device_applying_the_diff_ends_with_the_new_tree(old: Snapshot, new: Snapshot) -> None:
    device = DeviceView(folders=view_of(old))
    changes = diff(old, new)
    # DeviceView refuses an Add before its parent, a change of an unknown folder, and drops
    # subfolders with their parent like a phone: the order of the answer matters.
    device.apply(Answer(200, answer("K", changes)))
    assert device.folders == view_of(new)


@settings(max_examples=100, deadline=None)
@given(snapshots())
def test_snapshots_survive_json(snapshot: Snapshot) -> None:
    data = json.loads(json.dumps(snapshot.to_json()))
    assert Snapshot.from_json(data) == snapshot
    assert diff(snapshot, Snapshot.from_json(data)) == diff(snapshot, snapshot)
    assert len(diff(snapshot, snapshot)) == 0
