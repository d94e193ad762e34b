"""Calendars and address books of the obm profile, plugged into the sync engine, FolderSync and
MeetingResponse through ``runtime.services``:

- ``sync_sources``: FolderKind -> ItemSource factory (``opush.sync.sources``);
- ``folder_sources``: folder source factories (``opush.sync.hierarchy.sources_for``);
- ``meeting_responses``: the MeetingResponse command's calendar hook;
- ``push_sources``: FolderKind -> push hub source factory (``opush.push.wait.get_hub``).
"""

from __future__ import annotations

from typing import Any

from opush.backends.interfaces import Credentials
from opush.backends.obmsync.calendar_source import (
    CalendarFolderSource,
    CalendarItemSource,
    ObmMeetingResponses,
)
from opush.backends.obmsync.client import ObmSyncClient
from opush.backends.obmsync.contacts_source import ContactsFolderSource, ContactsItemSource
from opush.backends.obmsync.push_source import poller_factory
from opush.storage.interfaces import Collection, FolderKind


def pim_services(client: ObmSyncClient) -> dict[str, Any]:
    def calendar_items(runtime: Any, credentials: Credentials, collection: Collection) -> Any:
        return CalendarItemSource(client, credentials, collection.ref.backend_id)

    def contact_items(runtime: Any, credentials: Credentials, collection: Collection) -> Any:
        return ContactsItemSource(
            client,
            credentials,
            int(collection.ref.backend_id),
            collection.collection_id,
            runtime.state,
        )

    def calendar_folders(runtime: Any, credentials: Credentials) -> Any:
        return CalendarFolderSource(credentials)

    def contact_folders(runtime: Any, credentials: Credentials) -> Any:
        return ContactsFolderSource(client, credentials)

    return {
        "sync_sources": {FolderKind.CALENDAR: calendar_items, FolderKind.CONTACTS: contact_items},
        "folder_sources": [calendar_folders, contact_folders],
        "meeting_responses": ObmMeetingResponses(client),
        "push_sources": {
            FolderKind.CALENDAR: poller_factory(FolderKind.CALENDAR, client),
            FolderKind.CONTACTS: poller_factory(FolderKind.CONTACTS, client),
        },
    }
