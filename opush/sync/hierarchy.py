"""The folder hierarchy a device sees (FolderSync, FolderCreate/Update/Delete, Ping Status 7).

A *folder source* lists one backend's folders as `FolderRef`s (backend id, display name, parent
backend id, EAS type) and creates/renames/deletes them.  Mail over IMAP is `MailFolderSource`;
calendar and contacts sources plug in later through `SOURCE_FACTORIES` (one line each).

What a device knows is a `Snapshot`: collection id -> `Entry` (its parent's collection id, its
`FolderRef`).  FolderSync keys name snapshots stored under the pseudo collection
`HIERARCHY` of the state store; a new listing is turned into a snapshot by giving every folder
its stable collection id (`Hierarchy.snapshot`), and `diff` of two snapshots is what the device
is told (Add/Update/Delete).  Snapshots keep backend ids, so `Hierarchy.changed_since` answers
"did the hierarchy change since this device's last FolderSync" with one listing and one state
read, writing nothing (Ping Status 7).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs

from opush.backends.interfaces import (
    BackendUnavailable,
    Credentials,
    Folder,
    MailboxAlreadyExists,
    MailboxNotFound,
    MailStore,
    SpecialUse,
)
from opush.storage.interfaces import HIERARCHY, FolderKind, FolderRef, Json, StateStore


class FolderType(enum.IntEnum):
    """FolderHierarchy Type (MS-ASCMD 2.2.3.186.3)."""

    USER_GENERIC = 1
    INBOX = 2
    DRAFTS = 3
    DELETED_ITEMS = 4
    SENT_ITEMS = 5
    OUTBOX = 6
    TASKS = 7
    CALENDAR = 8
    CONTACTS = 9
    NOTES = 10
    JOURNAL = 11
    USER_MAIL = 12
    USER_CALENDAR = 13
    USER_CONTACTS = 14
    USER_TASKS = 15
    USER_JOURNAL = 16
    USER_NOTES = 17
    UNKNOWN = 18
    RECIPIENT_INFORMATION_CACHE = 19


#: Default folders (types 2-11) and the recipient information cache: a device may neither
#: rename nor delete them (MS-ASCMD 2.2.3.177.4 FolderDelete Status 3, 2.2.3.177.6
#: FolderUpdate Status 2).
SPECIAL_TYPES: Final = frozenset(range(2, 12)) | {19}

#: The root's ParentId (MS-ASCMD 2.2.3.123).
ROOT: Final = 0

_SNAPSHOT_VERSION: Final = 1


class HierarchyError(Exception):
    """A folder operation the backend cannot do as asked; the command picks the Status."""


class FolderExists(HierarchyError):
    """The target name is taken."""


class FolderNotFound(HierarchyError):
    """The folder is not (any more) in the backend."""


class ParentNotFound(HierarchyError):
    """The new parent does not exist, or cannot hold this folder."""


class InvalidFolderName(HierarchyError):
    """Empty, or containing the hierarchy separator (it would create intermediate folders)."""


class FolderSource(Protocol):
    """One backend's folders.  Backend ids are unique within `kind`."""

    @property
    def kind(self) -> FolderKind: ...

    #: EAS types a device may create in this source (FolderCreate Type).
    @property
    def creatable_types(self) -> frozenset[int]: ...

    async def list_folders(self) -> list[FolderRef]:
        """Every folder the device should see, parents referenced by backend id."""
        ...

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        """Create `name` under `parent` (None: the top level).  FolderExists, ParentNotFound,
        InvalidFolderName."""
        ...

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> Mapping[str, str]:
        """Rename/move; returns old backend id -> new backend id for the folder and each
        descendant that moved with it.  FolderExists, FolderNotFound, ParentNotFound,
        InvalidFolderName."""
        ...

    async def delete(self, folder: FolderRef) -> list[str]:
        """Delete the folder and its descendants; returns the backend ids removed.
        FolderNotFound."""
        ...


#: Builds the sources of one request: (runtime, credentials) -> source or None when the
#: backend is not configured.  Calendar and contacts add theirs here.
SourceFactory = Callable[[Any, Credentials], FolderSource | None]


def _mail_source(runtime: Any, credentials: Credentials) -> FolderSource | None:
    if getattr(runtime, "mail", None) is None:
        return None
    return MailFolderSource(runtime.mail.store(credentials))


SOURCE_FACTORIES: list[SourceFactory] = [_mail_source]


def sources_for(
    runtime: Any, credentials: Credentials, version: tuple[int, int] | None = None
) -> list[FolderSource]:
    """The request's folder sources; with the device's ``version``, folders of a class that
    version lacks are left out (Notes, MS-ASNOTE: 14.0+)."""
    # Profiles add theirs as runtime.services["folder_sources"] (obm: calendar, contacts).
    extra = getattr(runtime, "services", {}).get("folder_sources") or []
    factories = [*SOURCE_FACTORIES, *extra]
    sources = [s for f in factories if (s := f(runtime, credentials)) is not None]
    return for_version(sources, version)


def for_version(sources: list[Any], version: tuple[int, int] | None) -> list[Any]:
    """``sources`` as a device of ``version`` sees them (no Notes folder before 14.0)."""
    if version is not None and version < (14, 0):
        return [_Without(s, frozenset({int(FolderType.NOTES)})) for s in sources]
    return sources


class _Without:
    """A folder source whose listing leaves out some folder types."""

    def __init__(self, source: FolderSource, hidden: frozenset[int]) -> None:
        self.inner = source
        self.hidden = hidden

    @property
    def kind(self) -> FolderKind:
        return self.inner.kind

    @property
    def creatable_types(self) -> frozenset[int]:
        return self.inner.creatable_types - self.hidden

    async def list_folders(self) -> list[FolderRef]:
        return [r for r in await self.inner.list_folders() if r.folder_type not in self.hidden]

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        return await self.inner.create(parent, name, folder_type)

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> Mapping[str, str]:
        return await self.inner.rename(folder, parent, name)

    async def delete(self, folder: FolderRef) -> list[str]:
        return await self.inner.delete(folder)

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()


# ------------------------------------------------------------------------------ snapshots


@attrs.frozen
class Entry:
    """One folder as the device knows it."""

    collection_id: int
    parent_id: int
    ref: FolderRef

    @property
    def visible(self) -> tuple[int, str, int]:
        """What the device sees of it besides its id: an Update is due when this changes."""
        return (self.parent_id, self.ref.display_name, self.ref.folder_type)


@attrs.frozen
class Snapshot:
    """Collection id -> Entry: what one FolderSync key stands for."""

    entries: Mapping[int, Entry] = attrs.field(factory=dict)

    def __contains__(self, collection_id: object) -> bool:
        return collection_id in self.entries

    def get(self, collection_id: int) -> Entry | None:
        return self.entries.get(collection_id)

    def refs(self) -> frozenset[FolderRef]:
        return frozenset(e.ref for e in self.entries.values())

    def depth(self, collection_id: int) -> int:
        """Distance from the root (cycles and dangling parents stop the walk)."""
        seen: set[int] = set()
        depth = 0
        current = self.entries.get(collection_id)
        while current is not None and current.parent_id != ROOT and current.parent_id not in seen:
            seen.add(current.parent_id)
            depth += 1
            current = self.entries.get(current.parent_id)
        return depth

    def descendants(self, collection_id: int) -> list[int]:
        """Ids below `collection_id`, deepest first."""
        below = [
            cid
            for cid in self.entries
            if cid != collection_id and collection_id in self._ancestors(cid)
        ]
        return sorted(below, key=lambda c: (-self.depth(c), c))

    def holds_special(self, collection_id: int) -> bool:
        """A default folder is somewhere below (mail_conf.ini may put Trash in "Work/")."""
        return any(
            self.entries[c].ref.folder_type in SPECIAL_TYPES
            for c in self.descendants(collection_id)
        )

    def _ancestors(self, collection_id: int) -> set[int]:
        out: set[int] = set()
        current = self.entries.get(collection_id)
        while current is not None and current.parent_id != ROOT and current.parent_id not in out:
            out.add(current.parent_id)
            current = self.entries.get(current.parent_id)
        return out

    def with_entries(self, entries: Iterable[Entry]) -> Snapshot:
        merged = dict(self.entries)
        merged.update({e.collection_id: e for e in entries})
        return Snapshot(merged)

    def without(self, collection_ids: Iterable[int]) -> Snapshot:
        drop = set(collection_ids)
        return Snapshot({c: e for c, e in self.entries.items() if c not in drop})

    def to_json(self) -> dict[str, Any]:
        return {
            "v": _SNAPSHOT_VERSION,
            "folders": [
                {
                    "id": e.collection_id,
                    "parent": e.parent_id,
                    "kind": e.ref.kind.value,
                    "backend": e.ref.backend_id,
                    "pbackend": e.ref.parent_backend_id,
                    "name": e.ref.display_name,
                    "type": e.ref.folder_type,
                }
                for e in sorted(self.entries.values(), key=lambda e: e.collection_id)
            ],
        }

    @classmethod
    def from_json(cls, data: Json) -> Snapshot:
        """Raises ValueError for a record this version cannot read."""
        if data.get("v") != _SNAPSHOT_VERSION:
            raise ValueError(f"unknown hierarchy snapshot version {data.get('v')!r}")
        entries: dict[int, Entry] = {}
        for item in data.get("folders", []):
            ref = FolderRef(
                kind=FolderKind(item["kind"]),
                backend_id=str(item["backend"]),
                display_name=str(item["name"]),
                folder_type=int(item["type"]),
                parent_backend_id=item.get("pbackend"),
            )
            entry = Entry(int(item["id"]), int(item["parent"]), ref)
            entries[entry.collection_id] = entry
        return cls(entries)


@attrs.frozen
class Changes:
    """What FolderSync tells a device: adds parents first, deletes children first."""

    adds: tuple[Entry, ...] = ()
    updates: tuple[Entry, ...] = ()
    deletes: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.adds) + len(self.updates) + len(self.deletes)


def diff(old: Snapshot, new: Snapshot) -> Changes:
    """The changes that turn a device holding `old` into one holding `new`."""
    adds = [e for c, e in new.entries.items() if c not in old.entries]
    updates = [
        e
        for c, e in new.entries.items()
        if c in old.entries and old.entries[c].visible != e.visible
    ]
    deletes = [c for c in old.entries if c not in new.entries]
    return Changes(
        adds=tuple(sorted(adds, key=lambda e: (new.depth(e.collection_id), e.collection_id))),
        updates=tuple(sorted(updates, key=lambda e: e.collection_id)),
        deletes=tuple(sorted(deletes, key=lambda c: (-old.depth(c), c))),
    )


# ------------------------------------------------------------------------------ hierarchy


class Hierarchy:
    """One device's view of the hierarchy over the request's sources and the state store."""

    def __init__(
        self, state: StateStore, user: str, device_id: str, sources: Sequence[FolderSource]
    ) -> None:
        self.state = state
        self.user = user
        self.device_id = device_id
        self.sources = list(sources)

    def source(self, kind: FolderKind) -> FolderSource | None:
        return next((s for s in self.sources if s.kind is kind), None)

    def source_creating(self, folder_type: int) -> FolderSource | None:
        return next((s for s in self.sources if folder_type in s.creatable_types), None)

    async def listing(self) -> list[FolderRef]:
        refs: list[FolderRef] = []
        for source in self.sources:
            try:
                refs.extend(await source.list_folders())
            except BackendUnavailable as e:
                if source.kind is FolderKind.MAIL:
                    raise
                # A calendar/contacts server down must not cost the device its mail folders,
                # nor make it drop that kind's folders: they stay as the device knows them.
                from opush.log import logger

                logger("opush.sync.hierarchy").warn(
                    "{kind} folders unavailable, kept as they were: {error}",
                    kind=source.kind.value,
                    error=e,
                )
                known = await self.state.list_collections(self.user, self.device_id)
                refs.extend(c.ref for c in known if c.ref.kind is source.kind)
        return refs

    async def snapshot(self, refs: Sequence[FolderRef]) -> Snapshot:
        """Give each listed folder its collection id (allocating new ones, repointing ids
        whose folder changed name or type), then link parents."""
        known = {
            (c.ref.kind, c.ref.backend_id): c
            for c in await self.state.list_collections(self.user, self.device_id)
        }
        ids: dict[tuple[FolderKind, str], int] = {}
        for ref in refs:
            # allocate_collection also touches the mapping: folders in use never expire.
            cid = await self.state.allocate_collection(self.user, self.device_id, ref)
            previous = known.get((ref.kind, ref.backend_id))
            if previous is not None and previous.collection_id == cid and previous.ref != ref:
                await self.state.update_collection(self.user, self.device_id, cid, ref)
            ids[(ref.kind, ref.backend_id)] = cid
        entries: dict[int, Entry] = {}
        for ref in refs:
            cid = ids[(ref.kind, ref.backend_id)]
            parent = (
                ids.get((ref.kind, ref.parent_backend_id), ROOT)
                if ref.parent_backend_id is not None
                else ROOT
            )
            entries[cid] = Entry(cid, parent if parent != cid else ROOT, ref)
        return Snapshot(entries)

    async def forget_missing(self, refs: Sequence[FolderRef]) -> list[int]:
        """Drop the collections (and their sync state) of this device whose folder is gone
        from a source that answered; returns their ids."""
        kinds = {s.kind for s in self.sources}
        present = {(r.kind, r.backend_id) for r in refs}
        gone = [
            c.collection_id
            for c in await self.state.list_collections(self.user, self.device_id)
            if c.collection_id != HIERARCHY
            and c.ref.kind in kinds
            and (c.ref.kind, c.ref.backend_id) not in present
        ]
        for cid in gone:
            await self.state.delete_collection(self.user, self.device_id, cid)
        return gone

    async def changed_since(self, sync_key: str | None = None) -> bool:
        """True if the backends' folders differ from what the device's newest FolderSync
        state (or `sync_key`'s) records, or the device never ran FolderSync: Ping Status 7.
        One listing per source, one state read, no writes."""
        if sync_key is None:
            state = await self.state.current_sync_state(self.user, self.device_id, HIERARCHY)
        else:
            state = await self.state.get_sync_state(self.user, self.device_id, HIERARCHY, sync_key)
        if state is None:
            return True
        try:
            known = Snapshot.from_json(state.data)
        except (ValueError, KeyError, TypeError):
            return True
        kinds = {s.kind for s in self.sources}
        mine = frozenset(r for r in known.refs() if r.kind in kinds)
        return mine != frozenset(await self.listing())


async def hierarchy_changed(
    runtime: Any, credentials: Credentials, user: str, device_id: str
) -> bool:
    """For Ping: has the folder hierarchy changed since this device's last FolderSync?"""
    hierarchy = Hierarchy(runtime.state, user, device_id, sources_for(runtime, credentials))
    try:
        return await hierarchy.changed_since()
    finally:
        await close_sources(hierarchy.sources)


async def close_sources(sources: Iterable[FolderSource]) -> None:
    for source in sources:
        close = getattr(source, "close", None)
        if close is not None:
            await close()


# ------------------------------------------------------------------------------ mail


#: IMAP roles that are EAS default folders (MS-ASCMD 2.2.3.186.3).  Junk, Archive, All and
#: Flagged have no EAS type: they are user mail folders (12).
_MAIL_TYPES: Mapping[SpecialUse, FolderType] = {
    SpecialUse.INBOX: FolderType.INBOX,
    SpecialUse.DRAFTS: FolderType.DRAFTS,
    SpecialUse.TRASH: FolderType.DELETED_ITEMS,
    SpecialUse.SENT: FolderType.SENT_ITEMS,
    SpecialUse.NOTES: FolderType.NOTES,
}


def mail_tree(folders: Sequence[Folder]) -> list[FolderRef]:
    """The mail folders a device sees, as a tree (Opush OP-53).

    Shown: INBOX, the Drafts/Sent/Trash folders (mail_conf.ini names, else the server's
    SPECIAL-USE; they may be children, OP-226) and every other subscribed, selectable
    folder.  A folder's parent is its nearest shown ancestor (separator-aware); when
    intermediate levels are hidden the display name keeps them ("b/c" under "a"), so two
    folders never look alike.
    """
    shown: list[Folder] = []
    roles: set[SpecialUse] = set()
    for folder in folders:
        role = folder.special_use if folder.special_use in _MAIL_TYPES else None
        if role is not None and role in roles:
            role = None  # a second \Sent: an ordinary folder
        if not folder.selectable:
            continue
        if role is None and not folder.subscribed:
            continue
        if role is not None:
            roles.add(role)
        shown.append(attrs.evolve(folder, special_use=role))
    names = {f.name for f in shown}
    refs: list[FolderRef] = []
    for folder in shown:
        parent: str | None = None
        sep = folder.separator
        if sep:
            parts = folder.name.split(sep)
            for i in range(len(parts) - 1, 0, -1):
                candidate = sep.join(parts[:i])
                if candidate in names:
                    parent = candidate
                    break
        if parent is not None and sep:
            display = folder.name[len(parent) + len(sep) :]
        else:
            display = folder.name
        role = folder.special_use
        if role is SpecialUse.INBOX:
            display = "Inbox"
        folder_type = _MAIL_TYPES[role] if role is not None else FolderType.USER_MAIL
        refs.append(FolderRef(FolderKind.MAIL, folder.name, display, int(folder_type), parent))
    # Default folders first, then by path: new devices get Inbox = 1, Drafts = 2, ...
    return sorted(
        refs, key=lambda r: (r.folder_type == FolderType.USER_MAIL, r.folder_type, r.backend_id)
    )


class MailFolderSource:
    """IMAP folders through a `MailStore` (names are unicode; the store does modified UTF-7)."""

    kind = FolderKind.MAIL
    creatable_types = frozenset({int(FolderType.USER_GENERIC), int(FolderType.USER_MAIL)})

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self._folders: list[Folder] | None = None

    async def _all(self, fresh: bool = False) -> list[Folder]:
        if self._folders is None or fresh:
            self._folders = await self.store.list_folders()
        return self._folders

    async def list_folders(self) -> list[FolderRef]:
        return mail_tree(await self._all(fresh=True))

    def _separator(self, folders: Sequence[Folder], parent: str | None) -> str:
        if parent is not None:
            for f in folders:
                if f.name == parent and f.separator:
                    return f.separator
        for f in folders:
            if f.name.upper() == "INBOX" and f.separator:
                return f.separator
        return next((f.separator for f in folders if f.separator), "/")

    def _path(self, folders: Sequence[Folder], parent: FolderRef | None, name: str) -> str:
        parent_name = parent.backend_id if parent is not None else None
        sep = self._separator(folders, parent_name)
        if not name.strip() or sep in name or any(c in name for c in "\r\n\x00"):
            raise InvalidFolderName(name)
        if parent_name is not None and not any(
            f.name == parent_name and f.selectable for f in folders
        ):
            raise ParentNotFound(parent_name)
        return name if parent_name is None else f"{parent_name}{sep}{name}"

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        folders = await self._all(fresh=True)
        path = self._path(folders, parent, name)
        existing = next((f for f in folders if f.name == path), None)
        if existing is not None and existing.selectable:
            if existing.subscribed:
                raise FolderExists(path)
            # Opush OP-233: creating an existing, unsubscribed folder subscribes to it.
            await self.store.subscribe(path)
        else:
            try:
                await self.store.create_folder(path, subscribe=True)
            except MailboxAlreadyExists as e:
                raise FolderExists(path) from e
        self._folders = None
        return FolderRef(
            FolderKind.MAIL,
            path,
            name,
            int(FolderType.USER_MAIL),
            parent.backend_id if parent is not None else None,
        )

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> Mapping[str, str]:
        folders = await self._all(fresh=True)
        old = folder.backend_id
        current = next((f for f in folders if f.name == old and f.selectable), None)
        if current is None:
            raise FolderNotFound(old)
        new = self._path(folders, parent, name)
        if new == old:
            return {old: old}
        sep = current.separator or ""
        if sep and (new + sep).startswith(old + sep):
            raise ParentNotFound(f"{new} is inside {old}")
        if any(f.name == new for f in folders):
            raise FolderExists(new)
        below = [f for f in folders if sep and f.name.startswith(old + sep)]
        try:
            await self.store.rename_folder(old, new)
        except MailboxNotFound as e:
            raise FolderNotFound(old) from e
        except MailboxAlreadyExists as e:
            raise FolderExists(new) from e
        moved = {old: new}
        for child in below:
            moved[child.name] = new + child.name[len(old) :]
            if child.subscribed:
                # RENAME moves the children but not their subscriptions (RFC 3501 6.3.5).
                await self.store.unsubscribe(child.name)
                await self.store.subscribe(moved[child.name])
        self._folders = None
        return moved

    async def delete(self, folder: FolderRef) -> list[str]:
        folders = await self._all(fresh=True)
        name = folder.backend_id
        target = next((f for f in folders if f.name == name), None)
        if target is None:
            raise FolderNotFound(name)
        sep = target.separator or ""
        below = sorted(
            (f for f in folders if sep and f.name.startswith(name + sep)),
            key=lambda f: -f.name.count(sep),
        )
        removed: list[str] = []
        # EAS deletes a folder with its subfolders; IMAP servers refuse (or leave a
        # \Noselect shell) when inferiors exist, so the deepest go first.
        for child in below:
            try:
                await self.store.delete_folder(child.name)
            except MailboxNotFound:
                pass
            removed.append(child.name)
        try:
            await self.store.delete_folder(name)
        except MailboxNotFound as e:
            raise FolderNotFound(name) from e
        removed.append(name)
        self._folders = None
        return removed

    async def close(self) -> None:
        await self.store.close()
