# mypy: disallow-untyped-calls=False
"""CalDAV task lists (VTODO) of the standalone profile, as EAS Tasks folders (MS-ASTASK).

- Folders: every calendar collection that holds VTODOs (``supported-calendar-component-set``
  lists VTODO, or lists nothing: all components).  The first (or one named like "tasks") is
  the default Tasks folder, type 7; others are user task folders, type 15 (MS-ASCMD
  2.2.3.186.3).  A user without one gets a "tasks" collection (extended MKCOL, VTODO only),
  as a phone expects a Tasks folder.  A calendar holding both events and tasks is both a
  Calendar and a Tasks folder, each showing its own kind of resource.
- Items: item id = the resource's name; change detection, multiget and conditional writes
  as for calendars (``opush.backends.dav.sources``).  Device Adds are PUT as new
  ``<uuid>.ics``; Changes are merged into the stored VTODO (If-Match, retried once).
- FilterType 8 (MS-ASCMD 2.2.3.69.2, Tasks: "incomplete tasks"): completed tasks are left
  out of the listing, and a task completed since the last Sync is reported gone, so the
  device drops it.  The filter in force is kept in the cursor, for Syncs without Options.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from lxml.etree import _Element

from opush.backends.dav.client import DavClient, DavError, basename
from opush.backends.dav.sources import (
    CONVERSION_ERROR,
    ICS_TYPE,
    NOT_FOUND,
    OK,
    DavContactsSource,
    DavFolderSource,
    _scope,
)
from opush.backends.interfaces import BackendUnavailable
from opush.content import tasks as tk
from opush.content import vtodo
from opush.log import logger
from opush.storage.interfaces import FolderKind, FolderRef
from opush.sync.hierarchy import FolderExists, FolderType, InvalidFolderName
from opush.sync.interfaces import ClientChangeResult, Json, RenderRequest, SourceChanges, SourceItem

log = logger("opush.backends.dav")

#: MS-ASCMD 2.2.3.69.2 FilterType for Tasks: 0 all, 8 incomplete tasks only.
INCOMPLETE_TASKS = 8
_DEFAULT_NAMES = ("tasks", "todo", "todos", "default", "personal")


class DavTaskFolderSource(DavFolderSource):
    """The user's task lists (``FolderKind.TASKS``)."""

    def __init__(self, client: DavClient) -> None:
        super().__init__(client, FolderKind.TASKS)
        self.creatable_types = frozenset({int(FolderType.USER_TASKS)})

    async def _collections(self) -> list[tuple[str, str]]:
        return [
            (c.href, c.display_name)
            for c in await self.client.collections()
            if c.kind == "calendar" and (not c.components or "VTODO" in c.components)
        ]

    @staticmethod
    def _ordered(found: list[tuple[str, str]]) -> list[tuple[str, str]]:
        def rank(pair: tuple[str, str]) -> tuple[int, str]:
            href, name = pair
            named = basename(href).lower() in _DEFAULT_NAMES or name.lower() in _DEFAULT_NAMES
            return (0 if named else 1, href)

        return sorted(found, key=rank)

    async def list_folders(self) -> list[FolderRef]:
        found = await self._collections()
        if not found:
            await self.client.make_collection("tasks", "calendar", "Tasks", components=("VTODO",))
            found = await self._collections()
        ordered = self._ordered(found)
        return [
            FolderRef(
                FolderKind.TASKS,
                href,
                name,
                int(FolderType.TASKS if i == 0 else FolderType.USER_TASKS),
                None if i == 0 else ordered[0][0],
            )
            for i, (href, name) in enumerate(ordered)
        ]

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        if not name.strip() or any(c in name for c in "\r\n\x00"):
            raise InvalidFolderName(name)
        existing = await self._collections()
        if any(display == name for _, display in existing):
            raise FolderExists(name)
        slug = str(uuid.uuid4())
        href = await self.client.make_collection(slug, "calendar", name, components=("VTODO",))
        href = next((h for h, _ in await self._collections() if basename(h) == slug), href)
        default = self._ordered(existing)[0][0] if existing else None
        return FolderRef(FolderKind.TASKS, href, name, folder_type, default)


class DavTaskSource(DavContactsSource):
    """One task list as an ``ItemSource`` (item id = resource name; one VTODO each)."""

    item_class = "Tasks"
    #: The request's FilterType (set by the Sync command when the request has Options);
    #: None: the one remembered in the cursor.
    filter_type: int | None = None

    async def _fetch(self, item_ids: Sequence[str]) -> None:
        wanted = [i for i in item_ids if i not in self._cards]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            for r in await self.client.multiget(
                self.href, "calendar", [self._member(i) for i in chunk]
            ):
                self._cards[basename(r.href)] = r

    async def _remembered_filter(self) -> int | None:
        """The FilterType the sync engine keeps for the collection (the Options of an
        earlier Sync, OP-135): a first listing without Options in the request."""
        if self.state is None:
            return None
        user, device = _scope(self.credentials)
        current = await self.state.current_sync_state(user, device, self.collection_id)
        value = current.data.get("filter") if current is not None else None
        return value if isinstance(value, int) else None

    async def changes(self, cursor: Json | None) -> SourceChanges:
        if self.filter_type is not None:
            incomplete_only = self.filter_type == INCOMPLETE_TASKS
        elif cursor is not None:
            incomplete_only = bool(cursor.get("incomplete"))
        else:
            incomplete_only = await self._remembered_filter() == INCOMPLETE_TASKS
        new, changed, gone, complete = await self.feed.changes(cursor)
        self._cards = {k: v for k, v in self._cards.items() if k not in changed}
        await self._fetch(changed)
        items: list[SourceItem] = []
        dropped: set[str] = set()
        for item_id in changed:
            resource = self._cards.get(item_id)
            text = resource.data if resource is not None else None
            if text is not None and not vtodo.is_vtodo(text):
                dropped.add(item_id)  # an event of a calendar that also holds tasks
                continue
            if incomplete_only and text is not None:
                task = vtodo.parse_task(text)
                if task is not None and task.complete:
                    dropped.add(item_id)
                    continue
            items.append(SourceItem(item_id))
        return SourceChanges(
            cursor={**new, "incomplete": incomplete_only},
            changed=tuple(items),
            gone=frozenset(gone | dropped) if not complete else frozenset(),
            complete=complete,
        )

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        await self._fetch(item_ids)
        out: dict[str, list[_Element]] = {}
        for item_id in item_ids:
            resource = self._cards.get(item_id)
            if resource is None or resource.data is None:
                continue
            task = vtodo.parse_task(resource.data)
            if task is None:
                log.warn("{href} holds no readable task: not sent", href=resource.href)
                continue
            out[item_id] = tk.render_item(task, request.version, request.options)
        return out

    def _parse_task(self, data: _Element) -> tk.TaskItem | None:
        try:
            return tk.parse_item(data)
        except tk.TaskItemError as e:
            log.warn("task from the device not understood: {e}", e=e)
            return None

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse_task(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        uid = str(uuid.uuid4())
        item_id = f"{uid}.ics"
        try:
            await self.client.put(self._member(item_id), vtodo.format_task(item, uid=uid), ICS_TYPE)
        except DavError as e:
            log.warn("the CalDAV server refused a task Add: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        return ClientChangeResult(OK, item_id)

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse_task(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        for _attempt in range(2):
            current = await self.client.get(self._member(item_id))
            if current is None:
                return ClientChangeResult(NOT_FOUND)
            old = vtodo.parse_task(current.data or "")
            uid = (old.uid if old is not None else None) or item_id.removesuffix(".ics")
            text = vtodo.format_task(item, uid=uid, existing=current.data)
            try:
                await self.client.put(
                    self._member(item_id), text, ICS_TYPE, etag=current.etag or "*"
                )
            except DavError as e:
                if e.status == 412:
                    continue  # changed meanwhile: merge into the newer version
                if e.status == 404:
                    return ClientChangeResult(NOT_FOUND)
                log.warn("the CalDAV server refused a task Change: {e}", e=e)
                return ClientChangeResult(CONVERSION_ERROR)
            self._cards.pop(item_id, None)
            return ClientChangeResult(OK)
        raise BackendUnavailable(f"{self._member(item_id)} keeps changing")
