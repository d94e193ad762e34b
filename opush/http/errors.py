"""The one place where failures become HTTP codes or EAS statuses.

Anything raised while a request is handled ends in `classify`, which decides what the device
sees, and in `log_failure`, which writes it once with the request's context.  Handlers
declare a command status by raising `EasStatusError`; the rest of opush raises its own typed
errors (backends, storage, WBXML) and this module maps them:

- Command statuses (< 100) always go in the command's response body.
- Global statuses 101-177 (MS-ASCMD 2.2.2 "Common Status Codes") go in the body from 14.0
  on; before 14.0 the same conditions are HTTP codes (MS-ASCMD 2.2.2, MS-ASHTTP 3.1.5.2),
  e.g. "not provisioned" = 449 Retry With (MS-ASPROV 3.1.5.1).
- HTTP-only conditions (bad query, bad credentials, throttling) raise `HttpError`.
- Any other exception is a bug: 500, logged with its traceback; the server keeps serving.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs
from lxml import etree
from twisted.internet.defer import CancelledError

from opush.backends.interfaces import AuthenticationFailed, BackendUnavailable, MailError
from opush.http.query import QueryError
from opush.storage.interfaces import StorageError
from opush.wbxml import E, WbxmlError, encode

WBXML_CONTENT_TYPE = "application/vnd.ms-sync.wbxml"
REALM = "OBMPushService"


class GlobalStatus(enum.IntEnum):
    """MS-ASCMD 2.2.2 common status codes (14.0+)."""

    INVALID_CONTENT = 101
    INVALID_WBXML = 102
    INVALID_XML = 103
    INVALID_DATE_TIME = 104
    INVALID_COMBINATION_OF_IDS = 105
    INVALID_IDS = 106
    INVALID_MIME = 107
    DEVICE_ID_MISSING_OR_INVALID = 108
    DEVICE_TYPE_MISSING_OR_INVALID = 109
    SERVER_ERROR = 110
    SERVER_ERROR_RETRY_LATER = 111
    ACTIVE_DIRECTORY_ACCESS_DENIED = 112
    MAILBOX_QUOTA_EXCEEDED = 113
    MAILBOX_SERVER_OFFLINE = 114
    SEND_QUOTA_EXCEEDED = 115
    MESSAGE_RECIPIENT_UNRESOLVED = 116
    MESSAGE_REPLY_NOT_ALLOWED = 117
    MESSAGE_PREVIOUSLY_SENT = 118
    MESSAGE_HAS_NO_RECIPIENT = 119
    MAIL_SUBMISSION_FAILED = 120
    MESSAGE_REPLY_FAILED = 121
    ATTACHMENT_IS_TOO_LARGE = 122
    USER_HAS_NO_MAILBOX = 123
    USER_CANNOT_BE_ANONYMOUS = 124
    USER_PRINCIPAL_COULD_NOT_BE_FOUND = 125
    USER_DISABLED_FOR_SYNC = 126
    USER_ON_NEW_MAILBOX_CANNOT_SYNC = 127
    USER_ON_LEGACY_MAILBOX_CANNOT_SYNC = 128
    DEVICE_IS_BLOCKED_FOR_THIS_USER = 129
    ACCESS_DENIED = 130
    ACCOUNT_DISABLED = 131
    SYNC_STATE_NOT_FOUND = 132
    SYNC_STATE_LOCKED = 133
    SYNC_STATE_CORRUPT = 134
    SYNC_STATE_ALREADY_EXISTS = 135
    SYNC_STATE_VERSION_INVALID = 136
    COMMAND_NOT_SUPPORTED = 137
    VERSION_NOT_SUPPORTED = 138
    DEVICE_NOT_FULLY_PROVISIONABLE = 139
    REMOTE_WIPE_REQUESTED = 140
    LEGACY_DEVICE_ON_STRICT_POLICY = 141
    DEVICE_NOT_PROVISIONED = 142
    POLICY_REFRESH = 143
    INVALID_POLICY_KEY = 144
    EXTERNALLY_MANAGED_DEVICES_NOT_ALLOWED = 145
    NO_RECURRENCE_IN_CALENDAR = 146
    UNEXPECTED_ITEM_CLASS = 147
    REMOTE_SERVER_HAS_NO_SSL = 148
    INVALID_STORED_REQUEST = 149
    ITEM_NOT_FOUND = 150
    TOO_MANY_FOLDERS = 151
    NO_FOLDERS_FOUND = 152
    ITEMS_LOST_AFTER_MOVE = 153
    FAILURE_IN_MOVE_OPERATION = 154
    MOVE_COMMAND_DISALLOWED_FOR_NON_PERSISTENT_MOVE_ACTION = 155
    MOVE_COMMAND_INVALID_DESTINATION_FOLDER = 156
    AVAILABILITY_TOO_MANY_RECIPIENTS = 160
    AVAILABILITY_DL_LIMIT_REACHED = 161
    AVAILABILITY_TRANSIENT_FAILURE = 162
    AVAILABILITY_FAILURE = 163
    BODY_PART_PREFERENCE_TYPE_NOT_SUPPORTED = 164
    DEVICE_INFORMATION_REQUIRED = 165
    INVALID_ACCOUNT_ID = 166
    ACCOUNT_SEND_DISABLED = 167
    IRM_FEATURE_DISABLED = 168
    IRM_TRANSIENT_ERROR = 169
    IRM_PERMANENT_ERROR = 170
    IRM_INVALID_TEMPLATE_ID = 171
    IRM_OPERATION_NOT_PERMITTED = 172
    NO_PICTURE = 173
    PICTURE_TOO_LARGE = 174
    PICTURE_LIMIT_REACHED = 175
    BODY_PART_CONVERSATION_TOO_LARGE = 176
    MAXIMUM_DEVICES_REACHED = 177


# Before 14.0 there is no global Status: the HTTP code carries the condition (MS-ASHTTP
# 3.1.5.2: 400 malformed, 403 forbidden, 449 re-provision, 500 server error, 501 not
# implemented, 503 retry later, 507 storage full).
_LEGACY_HTTP: Mapping[int, int] = {
    **{s: 400 for s in range(101, 110)},
    110: 500,
    111: 503,
    112: 403,
    113: 507,
    114: 503,
    115: 507,
    **{s: 400 for s in range(116, 123)},
    **{s: 403 for s in range(123, 132)},
    132: 400,
    133: 503,
    134: 400,
    135: 400,
    136: 400,
    137: 501,
    138: 400,
    139: 403,
    140: 449,
    141: 403,
    142: 449,
    143: 449,
    144: 449,
    145: 403,
    177: 403,
}

# Root element of each command's response, where a Status can be reported (MS-ASCMD 2.2.1).
COMMAND_ROOTS: Mapping[str, tuple[str, str]] = {
    "Sync": ("AirSync:", "Sync"),
    "SendMail": ("ComposeMail:", "SendMail"),
    "SmartForward": ("ComposeMail:", "SmartForward"),
    "SmartReply": ("ComposeMail:", "SmartReply"),
    "FolderSync": ("FolderHierarchy:", "FolderSync"),
    "FolderCreate": ("FolderHierarchy:", "FolderCreate"),
    "FolderDelete": ("FolderHierarchy:", "FolderDelete"),
    "FolderUpdate": ("FolderHierarchy:", "FolderUpdate"),
    "MoveItems": ("Move:", "MoveItems"),
    "GetItemEstimate": ("GetItemEstimate:", "GetItemEstimate"),
    "MeetingResponse": ("MeetingResponse:", "MeetingResponse"),
    "Search": ("Search:", "Search"),
    "Settings": ("Settings:", "Settings"),
    "Ping": ("Ping:", "Ping"),
    "ItemOperations": ("ItemOperations:", "ItemOperations"),
    "Provision": ("Provision:", "Provision"),
    "ResolveRecipients": ("ResolveRecipients:", "ResolveRecipients"),
    "ValidateCert": ("ValidateCert:", "ValidateCert"),
    "Find": ("Find:", "Find"),
}


class HttpError(Exception):
    """A condition that is an HTTP status for every protocol version."""

    def __init__(
        self, code: int, message: str = "", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message or str(code))
        self.code = code
        self.message = message
        self.headers: Mapping[str, str] = dict(headers or {})


class Unauthorized(HttpError):
    """Bad or missing credentials: 401 with the Basic challenge."""

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(401, message, {"WWW-Authenticate": f'Basic realm="{REALM}"'})


class EasStatusError(Exception):
    """Answer the command with this Status (command-specific < 100, or global 101-177).

    `command` defaults to the request's command.  `level` is how loudly to log: a device
    sending a stale sync key is "info", a backend refusing is "warn".
    """

    def __init__(
        self, status: int, *, command: str | None = None, message: str = "", level: str = "info"
    ) -> None:
        super().__init__(message or f"status {status}")
        self.status = int(status)
        self.command = command
        self.message = message
        self.level = level


@attrs.frozen
class Outcome:
    """What to send: the HTTP code, headers, body (bytes) and how to log it."""

    code: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    body: bytes = b""
    level: str = "info"  # "debug" | "info" | "warn" | "error"
    reason: str = ""
    traceback: bool = False


def status_body(command: str, status: int) -> bytes | None:
    """The WBXML of `<Command><Status>n</Status></Command>`, None if the command has no
    WBXML response to carry it."""
    root = COMMAND_ROOTS.get(command)
    if root is None:
        return None
    namespace, tag = root
    return encode(E(namespace, tag, E(namespace, "Status", text=status)))


def _status_outcome(
    command: str, status: int, version: tuple[int, int], level: str, reason: str
) -> Outcome:
    is_global = status >= 100
    if not is_global or version >= (14, 0):
        body = status_body(command, status)
        if body is not None:
            return Outcome(
                200, {"Content-Type": WBXML_CONTENT_TYPE}, body, level, reason or f"Status {status}"
            )
    code = _LEGACY_HTTP.get(status, 400) if is_global else 500
    return Outcome(code, {}, b"", level, reason or f"Status {status} as HTTP {code}")


def classify(exc: BaseException, command: str, version: tuple[int, int]) -> Outcome:
    """Map any exception raised while serving `command` at `version`."""
    if isinstance(exc, CancelledError):
        return Outcome(499, {}, b"", "debug", "client went away before its turn")
    if isinstance(exc, HttpError):
        level = "warn" if exc.code >= 500 else "info"
        return Outcome(exc.code, exc.headers, b"", level, exc.message)
    if isinstance(exc, EasStatusError):
        return _status_outcome(exc.command or command, exc.status, version, exc.level, exc.message)
    if isinstance(exc, AuthenticationFailed):
        return classify(Unauthorized(str(exc) or "bad credentials"), command, version)
    if isinstance(exc, QueryError):
        return Outcome(400, {}, b"", "info", f"bad query: {exc}")
    if isinstance(exc, WbxmlError):
        return _status_outcome(
            command, GlobalStatus.INVALID_WBXML, version, "info", f"malformed WBXML: {exc}"
        )
    if isinstance(exc, etree.XMLSyntaxError):
        return _status_outcome(
            command, GlobalStatus.INVALID_XML, version, "info", f"malformed XML: {exc}"
        )
    if isinstance(exc, (BackendUnavailable, StorageError)):
        out = _status_outcome(
            command,
            GlobalStatus.SERVER_ERROR_RETRY_LATER,
            version,
            "warn",
            f"{type(exc).__name__}: {exc}",
        )
        if out.code == 503:
            out = attrs.evolve(out, headers={**out.headers, "Retry-After": "30"})
        return out
    if isinstance(exc, MailError):
        return _status_outcome(
            command, GlobalStatus.SERVER_ERROR, version, "warn", f"mail server refused: {exc}"
        )
    return Outcome(500, {}, b"", "error", f"internal error: {type(exc).__name__}: {exc}", True)
