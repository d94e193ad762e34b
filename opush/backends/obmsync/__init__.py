"""OBM backends: obm-locator, obm-sync (sessions, calendar, contacts), obm-sync authentication.

- `Locator`: where a user's obm-sync, IMAP and SMTP run (cached).
- `ObmSyncClient`: typed calls (``xml`` records) with one reused session per user.
- `ObmSyncAuth` (devices) and `ObmSyncConsoleAuth` (console administrators).
- `errors`: the typed faults; `AuthFault` is HTTP 401, every other one retryable.
"""

from opush.backends.obmsync.auth import ObmSyncAuth, ObmSyncConsoleAuth
from opush.backends.obmsync.client import ObmSyncClient, hashed_client_id
from opush.backends.obmsync.errors import (
    AuthFault,
    ContactNotFound,
    EventAlreadyExists,
    EventNotFound,
    LocatorError,
    NoPermission,
    NotAllowed,
    ObmSyncError,
    ObmSyncUnavailable,
    ServerFault,
)
from opush.backends.obmsync.locator import (
    IMAP_FRONTEND,
    OBM_SYNC,
    SMTP_OUT,
    Locator,
    obm_sync_services_url,
)
from opush.backends.obmsync.transport import AgentTransport, HttpResponse, HttpTransport

__all__ = [
    "IMAP_FRONTEND",
    "OBM_SYNC",
    "SMTP_OUT",
    "AgentTransport",
    "AuthFault",
    "ContactNotFound",
    "EventAlreadyExists",
    "EventNotFound",
    "HttpResponse",
    "HttpTransport",
    "Locator",
    "LocatorError",
    "NoPermission",
    "NotAllowed",
    "ObmSyncAuth",
    "ObmSyncClient",
    "ObmSyncConsoleAuth",
    "ObmSyncError",
    "ObmSyncUnavailable",
    "ServerFault",
    "hashed_client_id",
    "obm_sync_services_url",
]
