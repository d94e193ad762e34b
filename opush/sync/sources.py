"""Which `ItemSource` serves a collection: mail over IMAP here; calendar/contacts plug in
through ``runtime.services["sync_sources"]`` (a dict FolderKind -> factory), one line each.

A collection whose kind has no source yet syncs as an empty collection (client commands
get Status 6) rather than failing the device's whole Sync.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lxml.etree import _Element

from opush.backends.interfaces import Credentials
from opush.runtime import Runtime
from opush.storage.interfaces import Collection, FolderKind
from opush.sync.interfaces import ClientChangeResult, Json, RenderRequest, SourceChanges

#: EAS FolderHierarchy Type 3 = Drafts (MS-ASCMD 2.2.3.186.3).
DRAFTS_TYPE = 3
NOTES_TYPE = 10  # FolderHierarchy Type of the Notes folder (MS-ASCMD 2.2.3.186.3)

#: EAS Class per kind (MS-ASCMD 2.2.3.27.6).
CLASSES = {
    FolderKind.MAIL: "Email",
    FolderKind.CALENDAR: "Calendar",
    FolderKind.CONTACTS: "Contacts",
    FolderKind.TASKS: "Tasks",
}

SourceFactory = Callable[[Runtime, Credentials, Collection], Any]


class EmptySource:
    """A collection with nothing in it (no backend for its kind yet)."""

    def __init__(self, item_class: str) -> None:
        self.item_class = item_class

    async def changes(self, cursor: Json | None) -> SourceChanges:
        return SourceChanges(cursor={}, complete=cursor is None)

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        return {}

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        return ClientChangeResult(6)

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        return ClientChangeResult(6)

    async def apply_delete(self, item_ids: Sequence[str], move_to_trash: bool) -> None:
        return None


def mail_source(runtime: Runtime, credentials: Credentials, collection: Collection) -> Any:
    from opush.backends.mailsource import FlagDetailStore, MailItemSource
    from opush.backends.outbox import SmtpOutbox

    if runtime.mail is None:
        raise RuntimeError("no mail backend configured")
    ref = collection.ref
    if ref.folder_type == NOTES_TYPE:
        from opush.backends.notes import NoteItemSource

        return NoteItemSource(
            runtime.mail.store(credentials), ref.backend_id, from_address=credentials.user.email
        )
    return MailItemSource(
        runtime.mail.store(credentials),
        ref.backend_id,
        drafts=ref.folder_type == DRAFTS_TYPE,
        user_addresses=(credentials.user.email,),
        from_address=credentials.user.email,
        flag_details=FlagDetailStore(
            runtime.state, credentials.user.login_at_domain.lower(), runtime.clock
        ),
        outbox=SmtpOutbox(runtime, credentials),
    )


def source_for(runtime: Runtime, credentials: Credentials, collection: Collection) -> Any:
    """The ItemSource of ``collection`` for this user."""
    kind = collection.ref.kind
    factories = runtime.services.get("sync_sources") or {}
    factory = factories.get(kind)
    if factory is not None:
        return factory(runtime, credentials, collection)
    if kind is FolderKind.MAIL:
        return mail_source(runtime, credentials, collection)
    return EmptySource(CLASSES.get(kind, "Email"))
