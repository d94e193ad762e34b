"""Failures of obm-sync and obm-locator, typed the way OBM's Java client typed them.

obm-sync answers every failure with HTTP 200 and an ``<error>`` document whose ``<type>`` is
the Java exception class (research obm-sync.md §0); the Java client (``SyncClientAssert``)
mapped a few known classes and made everything else a ``ServerFault``.  We keep that mapping.

Where they land (``opush/http/errors.py``): ``AuthFault`` is an `AuthenticationFailed` (HTTP
401); every other obm-sync failure is a `BackendUnavailable` (the retryable status, never a
500), so a command that does not handle, say, ``EventNotFound`` still answers something a
device retries instead of an internal error.
"""

from __future__ import annotations

from opush.backends.interfaces import AuthenticationFailed, BackendUnavailable


class ObmSyncError(BackendUnavailable):
    """obm-sync refused or failed a call (an ``<error>`` document), or could not be reached."""

    #: The Java class name obm-sync reports in ``<type>`` for this error.
    java_type: str | None = None

    def __init__(self, message: str, *, java_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if java_type is not None:
            self.java_type = java_type


class ObmSyncUnavailable(ObmSyncError):
    """Connection refused, timeout, non-200 answer or unreadable XML: retry later."""


class ServerFault(ObmSyncError):
    java_type = "org.obm.sync.auth.ServerFault"


class EventNotFound(ObmSyncError):
    java_type = "org.obm.sync.auth.EventNotFoundException"


class EventAlreadyExists(ObmSyncError):
    java_type = "org.obm.sync.auth.EventAlreadyExistException"


class NotAllowed(ObmSyncError):
    java_type = "org.obm.sync.NotAllowedException"


class ContactNotFound(ObmSyncError):
    java_type = "org.obm.sync.exception.ContactNotFoundException"


class NoPermission(ObmSyncError):
    java_type = "javax.naming.NoPermissionException"


class AuthFault(AuthenticationFailed):
    """Bad credentials, or a session id obm-sync no longer knows (``Invalid access token``)."""

    java_type = "org.obm.sync.auth.AuthFault"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def invalid_token(self) -> bool:
        return "access token" in self.message.lower()


class LocatorError(BackendUnavailable):
    """obm-locator could not say where a service runs (unreachable, timeout, 404)."""


#: ``<type>`` -> exception class, as SyncClientAssert mapped them.
FAULTS: dict[str, type[ObmSyncError]] = {
    cls.java_type: cls
    for cls in (ServerFault, EventNotFound, EventAlreadyExists, NotAllowed, ContactNotFound)
    if cls.java_type is not None
}
FAULTS[NoPermission.java_type or ""] = NoPermission


def fault(message: str, java_type: str | None, *, login: bool = False) -> Exception:
    """The exception for an ``<error>`` document; unknown types become ServerFault (AuthFault
    for the login handler, as the Java LoginClient did)."""
    if java_type == AuthFault.java_type or (login and java_type not in FAULTS):
        return AuthFault(message)
    cls = FAULTS.get(java_type or "", ServerFault)
    return cls(message, java_type=java_type)
