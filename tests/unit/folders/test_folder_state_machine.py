"""Hypothesis state machine: devices' commands and other IMAP clients' changes in any order;
after every FolderSync the device's tree is the IMAP tree (DeviceView also checks that no
answer adds a known id, changes an unknown one or adds a folder before its parent)."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.support.folders import DeviceView, FolderBench, done, imap_paths

NAMES = st.sampled_from(["a", "b", "Été", "x y", "&amp", "Work"])


class Folders(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.bench = FolderBench()
        self.device = DeviceView()
        self.device.apply(done(self.bench.folder_sync("0")))
        self.sync()

    def user_folders(self) -> list[str]:
        return sorted(
            n for n in self.bench.imap.boxes if n not in ("INBOX", "Drafts", "Sent", "Trash")
        )

    def user_ids(self) -> list[str]:
        return sorted(f for f, (_, _, t) in self.device.folders.items() if t == 12)

    def sync(self) -> None:
        self.device.apply(done(self.bench.folder_sync(self.device.key)))
        assert self.device.paths() == imap_paths(self.bench.imap)

    # -- other clients
    @rule(parent=st.integers(0, 20), name=NAMES)
    def other_creates(self, parent: int, name: str) -> None:
        parents = ["", "INBOX", *self.user_folders()]
        base = parents[parent % len(parents)]
        full = f"{base}/{name}" if base else name
        if full not in self.bench.imap.boxes:
            self.bench.imap.add(full)

    @precondition(lambda self: self.user_folders())
    @rule(pick=st.integers(0, 20))
    def other_deletes(self, pick: int) -> None:
        names = self.user_folders()
        name = names[pick % len(names)]
        for doomed in [name, *self.bench.imap.children(name)]:
            self.bench.imap.boxes.pop(doomed, None)

    @precondition(lambda self: self.user_folders())
    @rule(pick=st.integers(0, 20))
    def other_toggles_subscription(self, pick: int) -> None:
        names = self.user_folders()
        box = self.bench.imap.boxes[names[pick % len(names)]]
        box.subscribed = not box.subscribed

    # -- the device
    @rule()
    def folder_sync(self) -> None:
        self.sync()

    @rule(parent=st.integers(0, 20), name=NAMES)
    def device_creates(self, parent: int, name: str) -> None:
        ids = ["0", *self.user_ids()]
        answer = done(self.bench.create(self.device.key, ids[parent % len(ids)], name))
        assert answer.status in (1, 2, 5), answer.status
        if answer.status == 1:
            self.device.key = answer.key
            self.device.folders[answer.server_id] = (ids[parent % len(ids)], name, 12)
            self.sync()

    @precondition(lambda self: self.user_ids())
    @rule(pick=st.integers(0, 20), parent=st.integers(0, 20), name=NAMES)
    def device_renames(self, pick: int, parent: int, name: str) -> None:
        ids = self.user_ids()
        fid = ids[pick % len(ids)]
        parents = ["0", *ids]
        target = parents[parent % len(parents)]
        answer = done(self.bench.update(self.device.key, fid, target, name))
        assert answer.status in (1, 2, 4, 5), answer.status
        if answer.status == 1:
            self.device.key = answer.key
            self.device.folders[fid] = (target, name, 12)
            self.sync()

    @precondition(lambda self: self.user_ids())
    @rule(pick=st.integers(0, 20))
    def device_deletes(self, pick: int) -> None:
        ids = self.user_ids()
        fid = ids[pick % len(ids)]
        answer = done(self.bench.delete(self.device.key, fid))
        assert answer.status in (1, 4), answer.status
        if answer.status == 1:
            self.device.key = answer.key
            doomed = {fid}
            grew = True
            while grew:  # the device drops the subfolders with the folder
                grew = False
                for other, (parent, _, _) in self.device.folders.items():
                    if parent in doomed and other not in doomed:
                        doomed.add(other)
                        grew = True
            for d in doomed:
                self.device.folders.pop(d)
            self.sync()

    @invariant()
    def ids_are_small_and_unique(self) -> None:
        assert all(fid.isdigit() and int(fid) >= 1 for fid in self.device.folders)


Folders.TestCase.settings = settings(max_examples=100, stateful_step_count=25, deadline=None)
TestFolders = Folders.TestCase
