"""The type-agnostic sync engine: one collection of one device, one Sync request at a time.

How a Sync of a collection goes (MS-ASCMD 2.2.1.21, 3.1.5.3):

1. SyncKey ``0`` starts the collection afresh: state reset, new key, no data (the device then
   asks again with that key).
2. The key must name the current state, or the previous one: a retried request (its answer
   was lost) gets the stored answer again, byte for byte, so nothing is applied twice and
   nothing is lost.  Any other key is Status 3; the device restarts from ``0``.
3. Server changes since the state's cursor are merged into the *pending* list (ordered,
   nothing dropped, OP-128/OP-168): deletes, then changes, then adds newest first.
4. Client commands are applied (Add/Change/Delete/Fetch).  A command with a ServerId that is
   not ours gets its own Status and never breaks the request (OP-123).  The changes they
   cause are read back and not echoed to the device.
5. Up to WindowSize pending changes are sent; the rest stays pending with MoreAvailable.
6. The new state (with the answer) is stored BEFORE the answer leaves.

The device's view (`CollectionState.have`) is what makes the Add/Change/Delete decision,
so a window interrupted anywhere resumes exactly.
"""

from __future__ import annotations

import copy
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from lxml import etree
from lxml.etree import _Element

from opush.storage.interfaces import MappingKind, StateStore, SyncState
from opush.sync.ids import InvalidServerId, numeric_key, parse_server_id, server_id
from opush.sync.interfaces import (
    ClientChangeResult,
    ItemSource,
    RenderRequest,
    SourceChanges,
    SourceItem,
)
from opush.sync.state import ADD, CHANGE, DELETE, SOFT_DELETE, CollectionState
from opush.wbxml import E, ns

AIRSYNC = ns.AIRSYNC

# MS-ASCMD 2.2.3.177.17 Status (Sync).
OK = 1
INVALID_SYNC_KEY = 3
PROTOCOL_ERROR = 4
SERVER_ERROR = 5
CONVERSION_ERROR = 6
CONFLICT = 7
NOT_FOUND = 8
HIERARCHY_CHANGED = 12
INCOMPLETE = 13
INVALID_WAIT = 14
TOO_MANY_COLLECTIONS = 15
RETRY = 16

#: MS-ASCMD 2.2.3.199 WindowSize: "the maximum value is 512".
MAX_WINDOW = 512

#: MS-ASCMD 2.2.3.69.2 FilterType for Email/Calendar: days back from today (0 = all).
FILTER_DAYS: dict[int, int] = {0: 0, 1: 1, 2: 3, 3: 7, 4: 14, 5: 31, 6: 93, 7: 186}


def filter_cutoff(filter_type: int | None, now: datetime) -> datetime | None:
    """Oldest date in range, from today's midnight UTC like the Java server (OP-129);
    None = everything."""
    days = FILTER_DAYS.get(filter_type or 0, 0)
    if not days:
        return None
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)


def window_size(
    collection: int | None, request: int | None, default: int, maximum: int | None
) -> int:
    """Collection WindowSize, else the request's, else opush.ini ``window-size``; capped by
    ``window-size.max`` (OP-177) and the protocol's 512."""
    size = collection if collection else request if request else default
    if maximum:
        size = min(size, maximum)
    return max(1, min(size, MAX_WINDOW))


# ------------------------------------------------------------------------------------ requests


@attrs.frozen
class ClientCommand:
    """One operation of the request's Commands (MS-ASCMD 2.2.3.32)."""

    kind: str  # "Add" | "Change" | "Delete" | "Fetch"
    server_id: str | None = None
    client_id: str | None = None
    data: _Element | None = None  # ApplicationData
    item_class: str | None = None  # 12.x Add/Change Class
    #: airsyncbase:InstanceId of a 16.x Change/Delete: one occurrence of a recurring item.
    instance_id: str | None = None
    #: email2:Send on a 16.x draft Add/Change (MS-ASEMAIL 2.2.2.69).
    send: bool = False


@attrs.frozen
class CollectionRequest:
    collection_id: int
    sync_key: str
    window_size: int
    get_changes: bool = True
    #: The request's Options elements; None when omitted (then the remembered ones apply).
    options: Sequence[_Element] | None = None
    filter_type: int | None = None  # from Options; None when Options omitted it
    conflict: int | None = None
    deletes_as_moves: bool = True
    commands: Sequence[ClientCommand] = ()
    #: MS-ASCMD 2.2.3.179 Supported (initial Sync only): the qualified tags of the contact
    #: and calendar elements the device manages; None when absent.
    supported: tuple[str, ...] | None = None
    #: Digest of the request's Collection element: a request with the previous key is
    #: replayed only when it is the same request (a retry); else it is run again from the
    #: previous state (the device never saw the newer key's answer).
    fingerprint: str | None = None


@attrs.define
class Summary:
    """SUMMARY.IN / SUMMARY.OUT counters (guide 12.4)."""

    change: int = 0
    delete: int = 0
    fetch: int = 0

    def add(self, other: Summary) -> None:
        self.change += other.change
        self.delete += other.delete
        self.fetch += other.fetch


@attrs.frozen
class CollectionOutcome:
    element: _Element  # the response's Collection
    summary_in: Summary
    summary_out: Summary
    more_available: bool = False
    replayed: bool = False


def _q(tag: str) -> str:
    return f"{{{AIRSYNC}}}{tag}"


def new_sync_key() -> str:
    return str(uuid.uuid4())


def pack_response(element: _Element) -> bytes:
    return zlib.compress(etree.tostring(element), 1)


def unpack_response(data: bytes) -> _Element:
    return etree.fromstring(zlib.decompress(data))


def load_state(stored: SyncState) -> CollectionState:
    return CollectionState.from_json(stored.data)


def serialize_options(options: Sequence[_Element]) -> list[str]:
    return [etree.tostring(o, encoding="unicode") for o in options]


def deserialize_options(options: Sequence[str] | None) -> list[_Element]:
    return [etree.fromstring(o) for o in options or ()]


# ------------------------------------------------------------------------------------ merging


def _in_range(item: SourceItem, cutoff: datetime | None) -> bool:
    return cutoff is None or item.date is None or item.date >= cutoff


def _newest_first(items: Sequence[SourceItem]) -> list[SourceItem]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return sorted(
        items,
        key=lambda i: (i.date or epoch, numeric_key(i.item_id)),
        reverse=True,
    )


def merge_changes(
    st: CollectionState,
    changes: SourceChanges,
    cutoff: datetime | None,
    *,
    refilter: bool = False,
    exclude: frozenset[str] = frozenset(),
) -> None:
    """Fold backend changes into ``st.pending``.  ``exclude``: ids the device itself just
    changed (their changes are not echoed back).  ``refilter``: the FilterType changed, so
    held items now out of range are soft-deleted (MS-ASCMD 2.2.3.172)."""
    if st.aliases:
        changes = _device_ids(st, changes)
    pending = st.pending
    deletes: list[str] = []
    changed: list[str] = []
    adds: list[SourceItem] = []
    if changes.complete:
        listed = {i.item_id: i for i in changes.changed}
        for held in list(st.have):
            if held not in listed:
                deletes.append(held)
        for pid, op in list(pending.items()):
            if op == ADD and pid not in listed:
                del pending[pid]
        for item in changes.changed:
            if item.item_id in st.have:
                if refilter and not _in_range(item, cutoff):
                    if pending.get(item.item_id) != SOFT_DELETE:
                        pending.pop(item.item_id, None)
                        pending[item.item_id] = SOFT_DELETE
            elif _in_range(item, cutoff) and item.item_id not in pending:
                adds.append(item)
    else:
        for gone in sorted(changes.gone, key=numeric_key):
            if gone in st.have:
                deletes.append(gone)
            else:
                pending.pop(gone, None)
        for item in changes.changed:
            iid = item.item_id
            if iid in exclude or iid in pending:
                continue
            if iid in st.have:
                changed.append(iid)
            elif _in_range(item, cutoff):
                adds.append(item)
    for d in deletes:
        st.aliases.pop(d, None)
        if pending.get(d) != DELETE:
            pending.pop(d, None)
            pending[d] = DELETE
    for c in changed:
        pending[c] = CHANGE
    for a in _newest_first(adds):
        pending[a.item_id] = ADD


def _device_ids(st: CollectionState, changes: SourceChanges) -> SourceChanges:
    """Backend changes in the ids the device holds (``st.aliases``): a replaced item's new
    id is reported under the device's id, and the disappearance of its old id is not a
    delete."""
    reverse = {source: device for device, source in st.aliases.items()}
    changed = tuple(
        attrs.evolve(item, item_id=reverse.get(item.item_id, item.item_id))
        for item in changes.changed
        if item.item_id in reverse or item.item_id not in st.aliases
    )
    gone: set[str] = set()
    for item_id in changes.gone:
        if item_id in reverse:
            gone.add(reverse[item_id])
        elif item_id not in st.aliases:
            gone.add(item_id)
    return attrs.evolve(changes, changed=changed, gone=frozenset(gone))


# ------------------------------------------------------------------------------------ engine


@attrs.define
class SyncEngine:
    """Runs collections of one device's Sync.  ``now`` gives the time (FilterType)."""

    store: StateStore
    user: str
    device_id: str
    version: tuple[int, int]
    now: Callable[[], datetime] = attrs.field(factory=lambda: lambda: datetime.now(UTC))
    new_key: Callable[[], str] = new_sync_key

    def _render_request(self, req: CollectionRequest, st: CollectionState) -> RenderRequest:
        return RenderRequest(
            collection_id=req.collection_id,
            version=self.version,
            options=deserialize_options(st.options),
        )

    def _status_only(self, req: CollectionRequest, status: int, item_class: str) -> _Element:
        el = E(AIRSYNC, "Collection")
        if self.version < (14, 0):
            el.append(E(AIRSYNC, "Class", text=item_class))
        el.append(E(AIRSYNC, "SyncKey", text=req.sync_key))
        el.append(E(AIRSYNC, "CollectionId", text=req.collection_id))
        el.append(E(AIRSYNC, "Status", text=status))
        return el

    def status_outcome(
        self, req: CollectionRequest, status: int, item_class: str
    ) -> CollectionOutcome:
        return CollectionOutcome(self._status_only(req, status, item_class), Summary(), Summary())

    async def sync(
        self, req: CollectionRequest, source: ItemSource, parent: _Element | None = None
    ) -> CollectionOutcome:
        """One collection of a Sync.  ``parent``: the response's Collections element, under
        which the (possibly big) answer is built in place: moving a finished 512-item tree
        between lxml documents costs a full walk of it at every level."""
        cid = req.collection_id
        item_class = source.item_class
        if req.sync_key == "0":
            return await self._initial(req, item_class)
        current = await self.store.current_sync_state(self.user, self.device_id, cid)
        if current is None:
            return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
        base = current
        if current.sync_key != req.sync_key:
            if current.parent_key != req.sync_key:
                return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
            same = req.fingerprint is None or current.data.get("request") == req.fingerprint
            if same and current.response is not None:
                # A retry of the request that produced `current`: the same answer again.
                return CollectionOutcome(
                    unpack_response(current.response), Summary(), Summary(), replayed=True
                )
            previous = await self.store.get_sync_state(self.user, self.device_id, cid, req.sync_key)
            if previous is None:
                return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
            base = previous
        try:
            st = load_state(base)
        except (ValueError, KeyError, TypeError):
            return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
        return await self._sync(req, source, st, item_class, parent)

    async def _initial(self, req: CollectionRequest, item_class: str) -> CollectionOutcome:
        """SyncKey 0 (MS-ASCMD 3.1.5.3): forget the collection's state, hand out a key."""
        st = CollectionState(item_class=item_class)
        st.supported = list(req.supported) if req.supported is not None else None
        if req.options is not None:
            st.options = serialize_options(req.options)
            st.filter_type = req.filter_type
        st.conflict = req.conflict
        key = self.new_key()
        el = E(AIRSYNC, "Collection")
        if self.version < (14, 0):
            el.append(E(AIRSYNC, "Class", text=item_class))
        el.append(E(AIRSYNC, "SyncKey", text=key))
        el.append(E(AIRSYNC, "CollectionId", text=req.collection_id))
        el.append(E(AIRSYNC, "Status", text=OK))
        data = st.to_json()
        if req.fingerprint is not None:
            data["request"] = req.fingerprint
        await self.store.put_sync_state(
            self.user,
            self.device_id,
            req.collection_id,
            SyncState(key, data, parent_key=None, response=pack_response(el)),
        )
        return CollectionOutcome(el, Summary(), Summary())

    async def _sync(
        self,
        req: CollectionRequest,
        source: ItemSource,
        st: CollectionState,
        item_class: str,
        parent: _Element | None = None,
    ) -> CollectionOutcome:
        cid = req.collection_id
        # Options: the request's, else the remembered ones (OP-135).
        if req.options is not None:
            st.options = serialize_options(req.options)
        if req.conflict is not None:
            st.conflict = req.conflict
        wanted_filter = req.filter_type if req.options is not None else st.filter_type
        cutoff = filter_cutoff(wanted_filter, self.now())
        first = st.cursor is None
        refilter = not first and (wanted_filter or 0) != (st.filter_type or 0)

        # A. Server changes since the cursor.
        if hasattr(source, "filter_cutoff"):
            source.filter_cutoff = cutoff  # a calendar lists from the FilterType's date
        changes = await source.changes(None if (first or refilter) else st.cursor)
        if changes.reset:
            # UIDVALIDITY changed: every ServerId the device holds is void.  Status 3 makes
            # it start again from SyncKey 0 with an empty collection (no stale duplicates).
            return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
        merge_changes(st, changes, cutoff, refilter=refilter)
        st.cursor = changes.cursor
        st.filter_type = wanted_filter

        # B. Client commands.
        render = self._render_request(req, st)
        responses: list[_Element] = []
        summary_in = Summary()
        summary_out = Summary()
        touched: set[str] = set()
        modified = await self._client_commands(
            req, source, st, render, responses, summary_in, summary_out, touched
        )

        # C. What the client's commands did to the backend is not a server change.
        if modified:
            after = await source.changes(st.cursor)
            if after.reset:
                return self.status_outcome(req, INVALID_SYNC_KEY, item_class)
            merge_changes(st, after, cutoff, exclude=frozenset(touched))
            st.cursor = after.cursor

        # D. The window, built in place under the Collection element.
        batch = st.pending.take(req.window_size) if req.get_changes else []
        more = bool(st.pending) and req.get_changes
        key = self.new_key()
        if parent is not None:
            el = etree.SubElement(parent, _q("Collection"))
        else:
            el = etree.Element(_q("Collection"), nsmap=_NSMAP)
        if self.version < (14, 0):
            etree.SubElement(el, _q("Class")).text = item_class
        etree.SubElement(el, _q("SyncKey")).text = key
        etree.SubElement(el, _q("CollectionId")).text = str(cid)
        etree.SubElement(el, _q("Status")).text = str(OK)
        if more:
            etree.SubElement(el, _q("MoreAvailable"))
        # OP-186: Responses before Commands (devices choke on the other order).
        if responses:
            el.append(E(AIRSYNC, "Responses", *responses))
        if batch:
            commands = etree.SubElement(el, _q("Commands"))
            try:
                await self._window(batch, req, source, st, render, summary_out, commands)
            except BaseException:
                if parent is not None:
                    parent.remove(el)  # nothing of a failed collection stays in the answer
                raise
            if not len(commands):
                el.remove(commands)
        data = st.to_json()
        if req.fingerprint is not None:
            data["request"] = req.fingerprint
        await self.store.put_sync_state(
            self.user,
            self.device_id,
            cid,
            SyncState(key, data, parent_key=req.sync_key, response=pack_response(el)),
        )
        return CollectionOutcome(el, summary_in, summary_out, more_available=more)

    # ------------------------------------------------------------------ client commands

    async def _client_commands(
        self,
        req: CollectionRequest,
        source: ItemSource,
        st: CollectionState,
        render: RenderRequest,
        responses: list[_Element],
        summary_in: Summary,
        summary_out: Summary,
        touched: set[str],
    ) -> bool:
        """Apply the request's Commands; True when the backend was modified."""
        cid = req.collection_id
        modified = False
        deletes: list[str] = []
        fetches: list[tuple[str, str]] = []  # (server id as sent, item id)
        for cmd in req.commands:
            if cmd.kind == "Add":
                summary_in.change += 1
                client_id = cmd.client_id or ""
                known = await self.store.get_mapping(
                    self.user, self.device_id, cid, MappingKind.CLIENT_ID, client_id
                )
                if known is not None:
                    # Already created from this ClientId (a retry under a new key).
                    responses.append(_add_response(client_id, known, OK))
                    continue
                if cmd.data is None or not client_id:
                    responses.append(_add_response(client_id, None, PROTOCOL_ERROR))
                    continue
                added = await source.apply_add(client_id, cmd.data, render)
                if added.status == OK and added.item_id is not None:
                    modified = True
                    sid = server_id(cid, added.item_id)
                    await self.store.put_mapping(
                        self.user, self.device_id, cid, MappingKind.CLIENT_ID, client_id, sid
                    )
                    st.have.add(added.item_id)
                    st.pending.pop(added.item_id, None)
                    touched.add(added.item_id)
                    responses.append(_add_response(client_id, sid, OK, added.attachments))
                    if cmd.send and await _send(source, added.item_id):
                        _gone_to_sent(st, added.item_id)
                else:
                    responses.append(_add_response(client_id, None, added.status))
            elif cmd.kind == "Change":
                summary_in.change += 1
                item = self._own_item(cmd.server_id, cid)
                if item is None or item not in st.have or st.pending.get(item) == DELETE:
                    responses.append(_item_response("Change", cmd.server_id, NOT_FOUND))
                    continue
                if cmd.data is None:
                    responses.append(_item_response("Change", cmd.server_id, PROTOCOL_ERROR))
                    continue
                if cmd.instance_id is not None:
                    status = await _occurrence(source, st.source_id(item), cmd, render)
                    if status == OK:
                        modified = True
                        touched.add(item)
                    else:
                        responses.append(_item_response("Change", cmd.server_id, status, cmd))
                    continue
                if (
                    st.pending.get(item) == CHANGE
                    and (st.conflict if st.conflict is not None else 1) == 1
                    and getattr(source, "exact_changes", False)
                ):
                    # MS-ASCMD 2.2.3.34: changed on both sides and Conflict 1 (the default):
                    # the server object replaces the client's, which is discarded (Status
                    # 7); the pending server Change goes out in this answer's window.
                    # Only for sources whose changes never echo the device's own writes
                    # (IMAP: step C below moves the cursor past them); obm-sync and DAV
                    # report them again later, and a false conflict would lose a user edit.
                    responses.append(_item_response("Change", cmd.server_id, CONFLICT))
                    continue
                # Otherwise the client's change is applied; the pending server Change still
                # goes out, carrying the merged backend state.  A pending SoftDelete wins.
                full = await self._with_ghosts(source, st, st.source_id(item), cmd.data, render)
                changed = await source.apply_change(st.source_id(item), full, render)
                if changed.status == OK:
                    modified = True
                    touched.add(item)
                    if changed.attachments:
                        # MS-ASCMD 2.2.3.42.2: a Change that adds attachments is answered.
                        responses.append(
                            _item_response("Change", cmd.server_id, OK, None, changed.attachments)
                        )
                    if changed.item_id is not None and changed.item_id != st.source_id(item):
                        # The backend replaced the item (IMAP draft: new UID); the device
                        # keeps its ServerId (MS-ASCMD 2.2.3.24 Change keeps the ServerId).
                        if changed.item_id == item:
                            st.aliases.pop(item, None)
                        else:
                            st.aliases[item] = changed.item_id
                    if cmd.send and await _send(source, st.source_id(item)):
                        _gone_to_sent(st, item)
                else:
                    responses.append(_item_response("Change", cmd.server_id, changed.status))
            elif cmd.kind == "Delete":
                summary_in.delete += 1
                item = self._own_item(cmd.server_id, cid)
                if item is None or item not in st.have:
                    responses.append(_item_response("Delete", cmd.server_id, NOT_FOUND, cmd))
                    continue
                if cmd.instance_id is not None:
                    # One occurrence goes; the series stays on both sides.
                    status = await _occurrence(source, st.source_id(item), cmd, render)
                    if status == OK:
                        modified = True
                        touched.add(item)
                    else:
                        responses.append(_item_response("Delete", cmd.server_id, status, cmd))
                    continue
                deletes.append(item)
            elif cmd.kind == "Fetch":
                summary_in.fetch += 1
                item = self._own_item(cmd.server_id, cid)
                if item is None:
                    responses.append(_item_response("Fetch", cmd.server_id, NOT_FOUND))
                    continue
                fetches.append((cmd.server_id or "", item))
            else:
                responses.append(_item_response(cmd.kind, cmd.server_id, PROTOCOL_ERROR))
        if deletes:
            await source.apply_delete([st.source_id(i) for i in deletes], req.deletes_as_moves)
            modified = True
            for item in deletes:
                st.have.discard(item)
                st.pending.pop(item, None)
                touched.add(item)
                st.aliases.pop(item, None)
        if fetches:
            rendered = await source.render([st.source_id(i) for _, i in fetches], render)
            for sid, item in fetches:
                data = rendered.get(st.source_id(item))
                if data is None:
                    responses.append(_item_response("Fetch", sid, NOT_FOUND))
                    continue
                summary_out.fetch += 1
                responses.append(
                    E(
                        AIRSYNC,
                        "Fetch",
                        E(AIRSYNC, "ServerId", text=sid),
                        E(AIRSYNC, "Status", text=OK),
                        E(AIRSYNC, "ApplicationData", *data),
                    )
                )
        return modified

    async def _with_ghosts(
        self,
        source: ItemSource,
        st: CollectionState,
        item_id: str,
        data: _Element,
        render: RenderRequest,
    ) -> _Element:
        """A Change with the server's value of every *ghosted* element it leaves out (MS-ASCMD
        2.2.3.179): elements outside the Supported list the device sent with SyncKey 0, and
        from 16.0 every top-level calendar element (MS-ASCAL 3.1.5.3).  Without ghosts an
        element left out of a Change is deleted, as the spec says for devices that do not
        send Supported."""
        kind = getattr(source, "item_class", "")
        every_absent = kind == "Calendar" and self.version >= (16, 0)
        if kind not in ("Calendar", "Contacts") or not (every_absent or st.supported):
            return data
        sent = {c.tag for c in data if isinstance(c.tag, str)}
        managed = set(st.supported or ()) if not every_absent else set()
        # Bodies in full (no truncation Options): a ghosted body must not come back cut.
        rendered = await source.render([item_id], RenderRequest(render.collection_id, self.version))
        current = rendered.get(item_id)
        if not current:
            return data
        merged = copy.deepcopy(data)
        for el in current:
            tag = el.tag
            if not isinstance(tag, str) or tag in sent or tag in managed:
                continue
            merged.append(copy.deepcopy(el))
        return merged

    @staticmethod
    def _own_item(value: str | None, collection_id: int) -> str | None:
        try:
            return parse_server_id(value, collection_id)[1]
        except InvalidServerId:
            return None

    # ------------------------------------------------------------------ window

    async def _window(
        self,
        batch: list[tuple[str, str]],
        req: CollectionRequest,
        source: ItemSource,
        st: CollectionState,
        render: RenderRequest,
        summary_out: Summary,
        commands: _Element,
    ) -> None:
        """The window's commands (``batch``, taken from the pending list) into ``commands``.

        Built top-down in one document: appending finished subtrees level by level makes
        lxml re-walk them at every level (it showed as the top cost of a 100-mail window)."""
        cid = req.collection_id
        to_render = [st.source_id(i) for i, op in batch if op in (ADD, CHANGE)]
        rendered = await source.render(to_render, render) if to_render else {}
        for item, op in batch:
            sid = server_id(cid, item)
            if op in (ADD, CHANGE):
                data = rendered.get(st.source_id(item))
                if data is None:
                    # Gone between detection and rendering.
                    if op == CHANGE:
                        st.have.discard(item)
                        st.aliases.pop(item, None)
                        _command(commands, "Delete", sid)
                        summary_out.delete += 1
                    continue
                el = _command(commands, "Add" if op == ADD else "Change", sid)
                etree.SubElement(el, _q("ApplicationData")).extend(data)
                st.have.add(item)
                summary_out.change += 1
            else:
                st.have.discard(item)
                st.aliases.pop(item, None)
                _command(commands, "Delete" if op == DELETE else "SoftDelete", sid)
                summary_out.delete += 1


_NSMAP: Any = {None: AIRSYNC}


def _command(parent: _Element, tag: str, sid: str) -> _Element:
    el = etree.SubElement(parent, _q(tag))
    etree.SubElement(el, _q("ServerId")).text = sid
    return el


def _add_response(
    client_id: str, sid: str | None, status: int, attachments: Sequence[tuple[str, str]] = ()
) -> _Element:
    el = E(AIRSYNC, "Add", E(AIRSYNC, "ClientId", text=client_id))
    if sid is not None:
        el.append(E(AIRSYNC, "ServerId", text=sid))
    el.append(E(AIRSYNC, "Status", text=status))
    if attachments:
        el.append(_attachments_data(attachments))
    return el


def _attachments_data(attachments: Sequence[tuple[str, str]]) -> _Element:
    """MS-ASAIRS 2.2.2.14: each added attachment's ClientId with its FileReference."""
    base = ns.AIRSYNCBASE
    return E(
        AIRSYNC,
        "ApplicationData",
        E(
            base,
            "Attachments",
            *[
                E(base, "Attachment", E(base, "ClientId", text=c), E(base, "FileReference", text=f))
                for c, f in attachments
            ],
        ),
    )


def _item_response(
    tag: str,
    sid: str | None,
    status: int,
    cmd: ClientCommand | None = None,
    attachments: Sequence[tuple[str, str]] = (),
) -> _Element:
    el = E(AIRSYNC, tag, E(AIRSYNC, "ServerId", text=sid or ""))
    if cmd is not None and cmd.instance_id is not None:
        # MS-ASAIRS 2.2.2.25: the response names the occurrence with the ServerId.
        el.append(E(ns.AIRSYNCBASE, "InstanceId", text=cmd.instance_id))
    el.append(E(AIRSYNC, "Status", text=status))
    if attachments:
        el.append(_attachments_data(attachments))
    return el


def _gone_to_sent(st: CollectionState, item: str) -> None:
    """A sent draft left Drafts: the device is told with a Delete (the backend may not
    report the move of a message it appended in this very request)."""
    st.aliases.pop(item, None)
    st.pending.pop(item, None)
    st.pending[item] = DELETE


async def _send(source: ItemSource, item_id: str) -> bool:
    """email2:Send (16.x) after a draft Add/Change; sources without drafts ignore it.  True
    when the item left the collection (sent, filed in Sent Items)."""
    send_item = getattr(source, "send_item", None)
    return bool(await send_item(item_id)) if send_item is not None else False


async def _occurrence(
    source: ItemSource, item_id: str, cmd: ClientCommand, render: RenderRequest
) -> int:
    """A 16.x Change/Delete with InstanceId, on sources whose items recur (calendars):
    ``apply_occurrence(item_id, instance_id, data or None, render)``.  Elsewhere an
    occurrence means nothing: protocol error, and the item is left alone."""
    apply = getattr(source, "apply_occurrence", None)
    if apply is None:
        return PROTOCOL_ERROR
    data = cmd.data if cmd.kind == "Change" else None
    result: ClientChangeResult = await apply(item_id, cmd.instance_id, data, render)
    return result.status


async def pending_estimate(
    store: StateStore,
    user: str,
    device_id: str,
    collection_id: int,
    sync_key: str | None,
    source: ItemSource,
    now: datetime,
    filter_type: int | None = None,
) -> int | None:
    """How many changes the next Sync with ``sync_key`` would have (GetItemEstimate): the
    pending window plus new backend changes.  None when the key is neither the current nor
    the previous one, which a Sync still accepts as a retry (None key = the current state,
    whatever its key).  Stores nothing."""
    current = await store.current_sync_state(user, device_id, collection_id)
    if current is not None and sync_key is not None and current.sync_key != sync_key:
        current = await store.get_sync_state(user, device_id, collection_id, sync_key)
    if current is None:
        return None
    st = load_state(current)
    wanted = filter_type if filter_type is not None else st.filter_type
    cutoff = filter_cutoff(wanted, now)
    first = st.cursor is None
    refilter = not first and (wanted or 0) != (st.filter_type or 0)
    if hasattr(source, "filter_cutoff"):
        source.filter_cutoff = cutoff
    changes = await source.changes(None if (first or refilter) else st.cursor)
    if changes.reset:
        return len(st.have) + len(changes.changed)
    merge_changes(st, changes, cutoff, refilter=refilter)
    return len(st.pending)
