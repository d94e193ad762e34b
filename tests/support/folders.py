"""Helpers for the folder command tests (FolderSync, FolderCreate, FolderUpdate, FolderDelete).

- ``FakeImap``: an in-memory IMAP folder tree behaving like Dovecot for folder commands
  (separator, subscriptions, SPECIAL-USE, DELETE refused while children exist, RENAME moving
  children but not their subscriptions), with an ``unavailable`` switch.
- ``FolderBench``: the four handlers over a real embedded state store and a ``FakeImap``; it
  answers like the HTTP layer would (exceptions through ``opush.http.errors.classify``).
- ``DeviceView``: what a device holds after applying FolderSync answers.
- ``xml2wbxml``/``wbxml2xml``: libwbxml2 as an independent encoder/decoder for the e2e tests.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from lxml import etree
from lxml.etree import _Element
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from opush.backends.interfaces import (
    Credentials,
    Folder,
    MailBackendUnavailable,
    MailboxAlreadyExists,
    MailboxNotFound,
    MailError,
    SpecialUse,
    UserIdentity,
)
from opush.commands import foldercreate, folderdelete, foldersync, folderupdate
from opush.commands.context import CommandContext
from opush.http.errors import classify
from opush.http.query import EasQuery
from opush.runtime import Runtime
from opush.storage.interfaces import (
    Collection,
    Device,
    FolderKind,
    FolderRef,
    StateStore,
    SyncState,
)
from opush.wbxml import E, decode, encode, ns

FH = ns.FOLDERHIERARCHY
HANDLERS = {
    "FolderSync": foldersync.handle,
    "FolderCreate": foldercreate.handle,
    "FolderUpdate": folderupdate.handle,
    "FolderDelete": folderdelete.handle,
}
DOCTYPE = (
    '<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">'
)


# --------------------------------------------------------------------------- fake IMAP


@attrs.define
class Box:
    subscribed: bool = True
    special_use: SpecialUse | None = None
    selectable: bool = True


class FakeImap:
    """A MailStore's folder methods over a dict, Dovecot-like."""

    def __init__(self, separator: str = "/", standard: bool = True) -> None:
        self.separator = separator
        self.boxes: dict[str, Box] = {"INBOX": Box(special_use=SpecialUse.INBOX)}
        if standard:
            self.boxes["Drafts"] = Box(special_use=SpecialUse.DRAFTS)
            self.boxes["Sent"] = Box(special_use=SpecialUse.SENT)
            self.boxes["Trash"] = Box(special_use=SpecialUse.TRASH)
        self.unavailable = False
        self.calls: list[tuple[str, ...]] = []

    def _check(self, *call: str) -> None:
        self.calls.append(call)
        if self.unavailable:
            raise MailBackendUnavailable("IMAP server down")

    def add(
        self, name: str, subscribed: bool = True, special_use: SpecialUse | None = None
    ) -> None:
        """Another client created a folder."""
        self.boxes[name] = Box(subscribed=subscribed, special_use=special_use)

    def children(self, name: str) -> list[str]:
        return [n for n in self.boxes if n.startswith(name + self.separator)]

    async def list_folders(self) -> list[Folder]:
        self._check("LIST")
        return [
            Folder(
                name=name,
                separator=self.separator,
                attributes=frozenset() if box.selectable else frozenset({"\\Noselect"}),
                special_use=box.special_use,
                subscribed=box.subscribed or name == "INBOX",
            )
            for name, box in self.boxes.items()
        ]

    async def create_folder(self, name: str, subscribe: bool = True) -> None:
        self._check("CREATE", name)
        if name in self.boxes and self.boxes[name].selectable:
            raise MailboxAlreadyExists(f"CREATE {name}", response_code="ALREADYEXISTS")
        self.boxes[name] = Box(subscribed=subscribe)

    async def rename_folder(self, old: str, new: str) -> None:
        self._check("RENAME", old, new)
        if old not in self.boxes:
            raise MailboxNotFound(f"RENAME {old}")
        if new in self.boxes:
            raise MailboxAlreadyExists(f"RENAME {new}")
        moved = {old: new, **{c: new + c[len(old) :] for c in self.children(old)}}
        for before, after in moved.items():
            box = self.boxes.pop(before)
            # Like the real backend: the renamed folder's subscription follows, the
            # children's do not (RFC 3501 6.3.5).
            self.boxes[after] = attrs.evolve(
                box, subscribed=box.subscribed if before == old else False
            )

    async def delete_folder(self, name: str) -> None:
        self._check("DELETE", name)
        if name not in self.boxes:
            raise MailboxNotFound(f"DELETE {name}")
        if self.children(name):
            raise MailError(f"DELETE {name}: Mailbox has children, delete them first")
        del self.boxes[name]

    async def subscribe(self, name: str) -> None:
        self._check("SUBSCRIBE", name)
        if name in self.boxes:
            self.boxes[name].subscribed = True

    async def unsubscribe(self, name: str) -> None:
        self._check("UNSUBSCRIBE", name)
        if name in self.boxes:
            self.boxes[name].subscribed = False

    async def close(self) -> None:
        pass


@attrs.define
class FakeMailBackend:
    imap: FakeImap

    def store(self, credentials: Credentials) -> FakeImap:
        return self.imap

    async def shutdown(self) -> None:
        pass


# --------------------------------------------------------------------------- state


class MemoryState:
    """The StateStore methods the folder commands use, in memory, answering at once (so a
    handler over it and FakeImap runs synchronously: see `done`).  Same semantics as the
    embedded store: ids are max+1, the parent of the current state stays readable."""

    def __init__(self) -> None:
        self.collections: dict[tuple[str, str], dict[int, FolderRef]] = {}
        self.states: dict[tuple[str, str, int], dict[str, SyncState]] = {}
        self.current: dict[tuple[str, str, int], str] = {}

    def _device(self, user: str, device_id: str) -> dict[int, FolderRef]:
        return self.collections.setdefault((user, device_id), {})

    def allocate_collection(self, user: str, device_id: str, ref: FolderRef) -> Deferred[int]:
        mine = self._device(user, device_id)
        for cid in sorted(mine):
            if (mine[cid].kind, mine[cid].backend_id) == (ref.kind, ref.backend_id):
                return succeed(cid)
        cid = max(mine, default=0) + 1
        mine[cid] = ref
        self.states.pop((user, device_id, cid), None)
        return succeed(cid)

    def get_collection(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[Collection | None]:
        ref = self._device(user, device_id).get(collection_id)
        return succeed(None if ref is None else Collection(collection_id, ref))

    def find_collection(
        self, user: str, device_id: str, kind: FolderKind, backend_id: str
    ) -> Deferred[Collection | None]:
        mine = self._device(user, device_id)
        for cid in sorted(mine):
            if (mine[cid].kind, mine[cid].backend_id) == (kind, backend_id):
                return succeed(Collection(cid, mine[cid]))
        return succeed(None)

    def list_collections(self, user: str, device_id: str) -> Deferred[list[Collection]]:
        mine = self._device(user, device_id)
        return succeed([Collection(c, mine[c]) for c in sorted(mine)])

    def update_collection(
        self, user: str, device_id: str, collection_id: int, ref: FolderRef
    ) -> Deferred[bool]:
        mine = self._device(user, device_id)
        if collection_id not in mine:
            return succeed(False)
        mine[collection_id] = ref
        return succeed(True)

    def delete_collection(self, user: str, device_id: str, collection_id: int) -> Deferred[None]:
        self._device(user, device_id).pop(collection_id, None)
        self.states.pop((user, device_id, collection_id), None)
        self.current.pop((user, device_id, collection_id), None)
        return succeed(None)

    def get_sync_state(
        self, user: str, device_id: str, collection_id: int, sync_key: str
    ) -> Deferred[SyncState | None]:
        return succeed(self.states.get((user, device_id, collection_id), {}).get(sync_key))

    def current_sync_state(
        self, user: str, device_id: str, collection_id: int
    ) -> Deferred[SyncState | None]:
        key = self.current.get((user, device_id, collection_id))
        states = self.states.get((user, device_id, collection_id), {})
        return succeed(None if key is None else states.get(key))

    def put_sync_state(
        self, user: str, device_id: str, collection_id: int, state: SyncState
    ) -> Deferred[None]:
        where = (user, device_id, collection_id)
        old = self.states.get(where, {})
        kept = {state.sync_key: state}
        if state.parent_key is not None and state.parent_key in old:
            kept[state.parent_key] = old[state.parent_key]
        self.states[where] = kept
        self.current[where] = state.sync_key
        return succeed(None)


def done(work: Coroutine[Any, Any, Any] | Deferred[Any]) -> Any:
    """The result of a coroutine (or Deferred) that never waits (handlers over MemoryState
    and FakeImap)."""
    results: list[Any] = []
    d = work if isinstance(work, Deferred) else Deferred.fromCoroutine(work)
    d.addBoth(results.append)
    assert results, "the coroutine waited for something"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


# --------------------------------------------------------------------------- bench


@attrs.define
class FolderBench:
    """Runs the folder handlers like the front door would, for one user's devices."""

    imap: FakeImap = attrs.field(factory=FakeImap)
    state: StateStore | MemoryState = attrs.field(factory=MemoryState)
    user: str = "alice@example.org"
    clock: Clock = attrs.field(factory=Clock)

    def context(
        self, command: str, body: bytes, device_id: str = "DEV1", version: tuple[int, int] = (16, 1)
    ) -> CommandContext:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        runtime = Runtime(
            clock=self.clock,
            auth=None,  # type: ignore[arg-type]
            devices=None,  # type: ignore[arg-type]
            state=self.state,  # type: ignore[arg-type]
            mail=FakeMailBackend(self.imap),  # type: ignore[arg-type]
        )
        identity = UserIdentity("alice", "example.org", self.user)
        return CommandContext(
            runtime=runtime,
            command=command,
            credentials=Credentials(identity, "secret"),
            device=Device(self.user, device_id, "test", None, now, now),
            version=version,
            query=EasQuery(command, device_id, "test"),
            headers={},
            body=body,
            content_type="application/vnd.ms-sync.wbxml",
            policy_key=None,
            request_id=1,
        )

    async def run(
        self,
        command: str,
        request: _Element | None,
        device_id: str = "DEV1",
        version: tuple[int, int] = (16, 1),
    ) -> Answer:
        """The answer the device would get: HTTP code and decoded body."""
        body = encode(request) if request is not None else b""
        ctx = self.context(command, body, device_id, version)
        tree = decode(body) if body else None
        try:
            result = await HANDLERS[command](ctx, tree)
        except Exception as e:
            outcome = classify(e, command, version)
            return Answer(outcome.code, decode(outcome.body) if outcome.body else None)
        assert result.tree is not None
        # What goes on the wire, decoded again: the answer must survive our own codec.
        return Answer(200, decode(encode(result.tree, f"{version[0]}.{version[1]}")))

    async def folder_sync(self, key: str, device_id: str = "DEV1", **kw: Any) -> Answer:
        return await self.run("FolderSync", folder_sync_request(key), device_id, **kw)

    async def create(
        self, key: str, parent: int | str, name: str, folder_type: int = 12, device_id: str = "DEV1"
    ) -> Answer:
        return await self.run(
            "FolderCreate", folder_create_request(key, parent, name, folder_type), device_id
        )

    async def update(
        self, key: str, server_id: int | str, parent: int | str, name: str, device_id: str = "DEV1"
    ) -> Answer:
        return await self.run(
            "FolderUpdate", folder_update_request(key, server_id, parent, name), device_id
        )

    async def delete(self, key: str, server_id: int | str, device_id: str = "DEV1") -> Answer:
        return await self.run("FolderDelete", folder_delete_request(key, server_id), device_id)


@attrs.frozen
class Answer:
    code: int
    tree: _Element | None

    def text(self, tag: str) -> str | None:
        assert self.tree is not None
        el = self.tree.find(f"{{{FH}}}{tag}")
        return None if el is None else el.text

    @property
    def status(self) -> int:
        value = self.text("Status")
        assert value is not None, "no Status"
        return int(value)

    @property
    def key(self) -> str:
        value = self.text("SyncKey")
        assert value is not None, "no SyncKey"
        return value

    @property
    def server_id(self) -> str:
        value = self.text("ServerId")
        assert value is not None, "no ServerId"
        return value

    def changes(self) -> list[tuple[str, dict[str, str]]]:
        """[(Add|Update|Delete, {child tag: text})] in answer order."""
        assert self.tree is not None
        out: list[tuple[str, dict[str, str]]] = []
        changes = self.tree.find(f"{{{FH}}}Changes")
        if changes is None:
            return out
        for el in changes:
            tag = etree.QName(el).localname
            if tag == "Count":
                continue
            out.append((tag, {etree.QName(c).localname: c.text or "" for c in el}))
        return out

    @property
    def count(self) -> int:
        assert self.tree is not None
        el = self.tree.find(f"{{{FH}}}Changes/{{{FH}}}Count")
        return int(el.text or "0") if el is not None else 0


def folder_sync_request(key: str) -> _Element:
    return E(FH, "FolderSync", E(FH, "SyncKey", text=key))


def folder_create_request(key: str, parent: int | str, name: str, folder_type: int) -> _Element:
    return E(
        FH,
        "FolderCreate",
        E(FH, "SyncKey", text=key),
        E(FH, "ParentId", text=str(parent)),
        E(FH, "DisplayName", text=name),
        E(FH, "Type", text=folder_type),
    )


def folder_update_request(key: str, server_id: int | str, parent: int | str, name: str) -> _Element:
    return E(
        FH,
        "FolderUpdate",
        E(FH, "SyncKey", text=key),
        E(FH, "ServerId", text=str(server_id)),
        E(FH, "ParentId", text=str(parent)),
        E(FH, "DisplayName", text=name),
    )


def folder_delete_request(key: str, server_id: int | str) -> _Element:
    return E(FH, "FolderDelete", E(FH, "SyncKey", text=key), E(FH, "ServerId", text=str(server_id)))


# --------------------------------------------------------------------------- device model


@attrs.define
class DeviceView:
    """A device's folder list, maintained from FolderSync answers like a phone does."""

    key: str = "0"
    folders: dict[str, tuple[str, str, int]] = attrs.field(factory=dict)  # id -> parent, name, type

    def apply(self, answer: Answer) -> None:
        assert answer.status == 1, f"FolderSync status {answer.status}"
        for kind, fields in answer.changes():
            if kind == "Add":
                assert fields["ServerId"] not in self.folders, f"Add of known {fields}"
                parent = fields["ParentId"]
                assert parent == "0" or parent in self.folders, f"Add before its parent {fields}"
                self.folders[fields["ServerId"]] = (
                    parent,
                    fields["DisplayName"],
                    int(fields["Type"]),
                )
            elif kind == "Update":
                assert fields["ServerId"] in self.folders, f"Update of unknown {fields}"
                self.folders[fields["ServerId"]] = (
                    fields["ParentId"],
                    fields["DisplayName"],
                    int(fields["Type"]),
                )
            elif kind == "Delete":
                sid = fields["ServerId"]
                assert sid in self.folders, f"Delete of unknown {fields}"
                doomed = {sid}
                changed = True
                while changed:  # a device drops the subfolders with their parent
                    changed = False
                    for fid, (parent, _, _) in self.folders.items():
                        if parent in doomed and fid not in doomed:
                            doomed.add(fid)
                            changed = True
                for fid in doomed:
                    self.folders.pop(fid, None)
        self.key = answer.key

    def paths(self) -> dict[str, int]:
        """Full display path ("Inbox/sub") -> type: comparable with the IMAP tree."""
        out: dict[str, int] = {}
        for fid in self.folders:
            out[self.path(fid)] = self.folders[fid][2]
        return out

    def path(self, fid: str) -> str:
        parts: list[str] = []
        seen: set[str] = set()
        while fid != "0" and fid in self.folders and fid not in seen:
            seen.add(fid)
            parent, name, _ = self.folders[fid]
            parts.append(name)
            fid = parent
        return "/".join(reversed(parts))

    def find(self, path: str) -> str:
        for fid in self.folders:
            if self.path(fid) == path:
                return fid
        raise KeyError(path)


def imap_paths(imap: FakeImap) -> dict[str, int]:
    """What the device should show for a FakeImap with "/" separator and no hidden levels."""
    types = {
        SpecialUse.INBOX: 2,
        SpecialUse.DRAFTS: 3,
        SpecialUse.TRASH: 4,
        SpecialUse.SENT: 5,
    }
    out: dict[str, int] = {}
    for name, box in imap.boxes.items():
        if not box.selectable or not (box.subscribed or box.special_use or name == "INBOX"):
            continue
        shown = "Inbox" + name[5:] if name == "INBOX" or name.startswith("INBOX/") else name
        out[shown] = types.get(box.special_use, 12) if box.special_use else 12
    return out


# --------------------------------------------------------------------------- libwbxml2


XML2WBXML = shutil.which("xml2wbxml")
WBXML2XML = shutil.which("wbxml2xml")
HAVE_LIBWBXML = XML2WBXML is not None and WBXML2XML is not None


def xml2wbxml(xml: str) -> bytes:
    """Encode ActiveSync XML with libwbxml2 like a device would (WBXML 1.3, no string table,
    public id as a number): an encoder independent of ours."""
    assert XML2WBXML is not None
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.xml", Path(tmp) / "out.wbxml"
        src.write_text('<?xml version="1.0" encoding="utf-8"?>\n' + DOCTYPE + "\n" + xml, "utf-8")
        subprocess.run(
            [XML2WBXML, "-v", "1.3", "-n", "-a", "-o", str(out), str(src)],
            check=True,
            capture_output=True,
        )
        return out.read_bytes()


def wbxml2xml(data: bytes) -> _Element:
    """Decode with libwbxml2 (its namespaces are the code page names, e.g. "FolderHierarchy:")."""
    assert WBXML2XML is not None
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wbxml"
        src.write_bytes(data)
        done = subprocess.run(
            [WBXML2XML, "-l", "ACTIVESYNC", "-m", "0", "-o", "-", str(src)],
            check=True,
            capture_output=True,
        )
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(done.stdout, parser)


def local_children(el: _Element) -> Iterable[tuple[str, _Element]]:
    for child in el:
        if isinstance(child.tag, str):
            yield etree.QName(child).localname, child


def libwbxml_changes(root: _Element) -> list[tuple[str, dict[str, str]]]:
    """FolderSync Changes of a libwbxml2-decoded answer, namespace-agnostic."""
    out: list[tuple[str, dict[str, str]]] = []
    for tag, el in local_children(root):
        if tag != "Changes":
            continue
        for kind, change in local_children(el):
            if kind == "Count":
                continue
            out.append((kind, {t: (c.text or "") for t, c in local_children(change)}))
    return out


def libwbxml_text(root: _Element, tag: str) -> str | None:
    for name, el in local_children(root):
        if name == tag:
            return el.text
    return None


def mapping_of(changes: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, str]:
    """DisplayName -> ServerId of the Adds."""
    return {f["DisplayName"]: f["ServerId"] for kind, f in changes if kind == "Add"}
