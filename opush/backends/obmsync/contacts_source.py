"""The user's OBM address books as EAS Contacts folders, synchronized both ways through obm-sync.

- `ContactsFolderSource`: ``listAddressBooksChanged(0)`` is the complete list of books the
  user syncs (the Java server read it the same way): the user's own ``contacts`` book is the
  default Contacts folder (type 9), every other book a user contacts folder (type 14) below
  it, the domain's users book (-1) shown as "OBM users".  A book the user no longer syncs is
  absent from the next listing, so FolderSync deletes its folder and the device drops its
  contacts (the Java server left them on the device, guide 1.3).
- `ContactsItemSource`: ``firstListAllChanges`` / ``listAllChanges`` per book; device Adds go
  to ``storeContact`` with the hashed clientId (OP-155) unless this device already created a
  contact with the same content in this folder (OP-139); Changes to ``modifyContact``; Deletes
  to ``removeContact``.  The "OBM users" book, and books the user may only read, accept the
  device's changes and ignore them (guide 1.3: "taken into account on your device but ignored
  by the server").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lxml.etree import _Element

from opush.backends.interfaces import Credentials
from opush.backends.obmsync import xml as obm
from opush.backends.obmsync.client import ObmSyncClient, hashed_client_id
from opush.backends.obmsync.errors import (
    ContactNotFound,
    NoPermission,
    ObmSyncError,
    ObmSyncUnavailable,
)
from opush.content import contacts as cn
from opush.log import logger, request_context
from opush.storage.interfaces import FolderKind, FolderRef, MappingKind, StateStore
from opush.sync.hierarchy import FolderNotFound, FolderType, ParentNotFound
from opush.sync.interfaces import (
    ClientChangeResult,
    Json,
    RenderRequest,
    SourceChanges,
    SourceItem,
)

log = logger("OBM-SYNC")

#: obm-sync's virtual book of the domain's users (research obm-sync.md §3).
USERS_BOOK = -1
USERS_BOOK_NAME = "OBM users"
DEFAULT_BOOK = "contacts"

OK = 1
CONVERSION_ERROR = 6
NOT_FOUND = 8


class ContactsFolderSource:
    """The address books the user synchronizes."""

    kind = FolderKind.CONTACTS
    creatable_types: frozenset[int] = frozenset()

    def __init__(self, client: ObmSyncClient, credentials: Credentials) -> None:
        self.client = client
        self.credentials = credentials

    async def list_folders(self) -> list[FolderRef]:
        changes = await self.client.list_address_books_changed(self.credentials, 0)
        me = self.credentials.user.login_at_domain.lower()
        default = next(
            (
                f
                for f in changes.updated
                if f.name == DEFAULT_BOOK and (f.owner_login_at_domain or "").lower() == me
            ),
            None,
        )
        refs: list[FolderRef] = []
        if default is not None:
            refs.append(
                FolderRef(
                    FolderKind.CONTACTS, str(default.uid), DEFAULT_BOOK, int(FolderType.CONTACTS)
                )
            )
        parent = str(default.uid) if default is not None else None
        for f in changes.updated:
            if f is default:
                continue
            if f.uid == USERS_BOOK:
                name = USERS_BOOK_NAME
            elif f.owner_display_name:
                # A shared book: its owner tells apart two books of the same name.
                name = f"{f.name} ({f.owner_display_name})"
            else:
                name = f.name
            refs.append(
                FolderRef(
                    FolderKind.CONTACTS,
                    str(f.uid),
                    name,
                    int(FolderType.USER_CONTACTS),
                    parent,
                )
            )
        return refs

    async def create(self, parent: FolderRef | None, name: str, folder_type: int) -> FolderRef:
        raise ParentNotFound("address books are created in OBM")

    async def rename(
        self, folder: FolderRef, parent: FolderRef | None, name: str
    ) -> dict[str, str]:
        raise FolderNotFound(folder.backend_id)

    async def delete(self, folder: FolderRef) -> list[str]:
        raise FolderNotFound(folder.backend_id)


def _scope(credentials: Credentials) -> tuple[str, str]:
    """(user, device) of the request, the state store's keys (OP-139 hashes are per device)."""
    ctx = request_context.get()
    user = credentials.user.login_at_domain.lower()
    if ctx is None:
        return user, ""
    return (ctx.user or user), ctx.device_id


class ContactsItemSource:
    """One address book (item id = contact uid)."""

    item_class = "Contacts"

    def __init__(
        self,
        client: ObmSyncClient,
        credentials: Credentials,
        book_id: int,
        collection_id: int,
        state: StateStore | None = None,
    ) -> None:
        self.client = client
        self.credentials = credentials
        self.book_id = book_id
        self.collection_id = collection_id
        self.state = state
        self._contacts: dict[str, obm.Contact] = {}
        #: Ids of device Adds accepted but not stored (read-only books).
        self.read_only = book_id == USERS_BOOK

    async def changes(self, cursor: Json | None) -> SourceChanges:
        if cursor is None:
            answer = await self.client.first_list_all_changes(self.credentials, 0, self.book_id)
        else:
            answer = await self.client.list_all_changes(
                self.credentials, int(cursor.get("last", 0)), self.book_id
            )
        changed: list[SourceItem] = []
        gone = {
            str(r.uid)
            for r in answer.removed
            if r.addressbook_id is None or r.addressbook_id == self.book_id
        }
        for contact in answer.updated:
            if contact.uid is None:
                continue
            if contact.addressbook_id is not None and contact.addressbook_id != self.book_id:
                continue
            item_id = str(contact.uid)
            self._contacts[item_id] = contact
            changed.append(SourceItem(item_id))
            gone.discard(item_id)
        return SourceChanges(
            cursor={"last": answer.last_sync},
            changed=tuple(changed),
            gone=frozenset(gone),
            complete=cursor is None,
        )

    async def _contact(self, item_id: str) -> obm.Contact | None:
        cached = self._contacts.get(item_id)
        if cached is not None:
            return cached
        if not item_id.lstrip("-").isdigit():
            return None
        try:
            contact = await self.client.get_contact_from_id(
                self.credentials, self.book_id, int(item_id)
            )
        except ContactNotFound:
            return None
        self._contacts[item_id] = contact
        return contact

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        out: dict[str, list[_Element]] = {}
        for item_id in item_ids:
            contact = await self._contact(item_id)
            if contact is None:
                continue
            out[item_id] = cn.render_item(
                cn.from_contact(contact), request.version, request.options
            )
        return out

    def _parse(self, data: _Element) -> cn.ContactItem | None:
        try:
            return cn.parse_item(data)
        except cn.ContactItemError as e:
            log.warn("contact from the device not understood: {e}", e=e)
            return None

    @staticmethod
    def _ignored_id(client_id: str) -> str:
        """An id for an Add a read-only book accepted without storing it (never numeric, so
        it cannot meet a real contact uid)."""
        return "ro" + hashlib.sha1(client_id.encode("utf-8")).hexdigest()[:16]

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        if self.read_only:
            log.info("Add to the read-only book {book} ignored", book=self.book_id)
            return ClientChangeResult(OK, self._ignored_id(client_id))
        digest = cn.content_hash(item)
        user, device = _scope(self.credentials)
        if self.state is not None:
            known = await self.state.get_mapping(
                user, device, self.collection_id, MappingKind.CONTENT_HASH, digest
            )
            if known is not None and await self._contact(known) is not None:
                log.warn(
                    "A creation is discarded, the contact {hash} is already known as {id}",
                    hash=digest,
                    id=known,
                )
                return ClientChangeResult(OK, known)
        hashed = hashed_client_id(self.credentials.user.login_at_domain, device, client_id)
        try:
            stored = await self.client.store_contact(
                self.credentials, self.book_id, cn.to_contact(item), client_id=hashed
            )
        except NoPermission:
            log.info("Add to the read-only book {book} ignored", book=self.book_id)
            return ClientChangeResult(OK, self._ignored_id(client_id))
        except ObmSyncUnavailable:
            raise
        except ObmSyncError as e:
            log.warn("obm-sync refused a contact Add: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        if stored.uid is None:
            return ClientChangeResult(CONVERSION_ERROR)
        item_id = str(stored.uid)
        self._contacts[item_id] = stored
        if self.state is not None:
            await self.state.put_mapping(
                user, device, self.collection_id, MappingKind.CONTENT_HASH, digest, item_id
            )
        return ClientChangeResult(OK, item_id)

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        item = self._parse(data)
        if item is None:
            return ClientChangeResult(CONVERSION_ERROR)
        if self.read_only or not item_id.isdigit():
            return ClientChangeResult(OK)  # read-only: accepted, ignored (guide 1.3)
        try:
            stored = await self.client.modify_contact(
                self.credentials, self.book_id, cn.to_contact(item, uid=int(item_id))
            )
        except ContactNotFound:
            return ClientChangeResult(NOT_FOUND)
        except NoPermission:
            return ClientChangeResult(OK)
        except ObmSyncUnavailable:
            raise
        except ObmSyncError as e:
            log.warn("obm-sync refused a contact Change: {e}", e=e)
            return ClientChangeResult(CONVERSION_ERROR)
        self._contacts[item_id] = stored
        return ClientChangeResult(OK)

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        if self.read_only:
            return
        for item_id in item_ids:
            if not item_id.isdigit():
                continue
            try:
                await self.client.remove_contact(self.credentials, self.book_id, int(item_id))
            except (ContactNotFound, NoPermission):
                pass
            self._contacts.pop(item_id, None)
