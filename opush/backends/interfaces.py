"""Backend contracts: authentication and mail (IMAP) seen by the rest of opush.

The HTTP layer authenticates with an `Auth`; commands, the sync engine and push talk to a
`MailStore` obtained from a `MailBackend` for the request's `Credentials`.  Implementations
live in `opush.backends.imap` (and later obm-sync / LDAP / DAV modules).

Errors are typed so `opush/http/errors.py` can map them in one place:

- `BackendUnavailable` (and `MailBackendUnavailable`): the server is down, timed out or dropped
  the connection.  Retryable; never means "bad password".
- `AuthenticationFailed`: the server rejected the credentials (HTTP 401).
- `MailError` subclasses: the server refused one operation (NO/BAD); the state is intact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Protocol

import attrs

# --------------------------------------------------------------------------- errors


class BackendError(Exception):
    """Base of every failure a backend reports."""


class BackendUnavailable(BackendError):
    """The backend could not be reached or stopped answering: retry later (HTTP 503 / EAS
    server-error status), never reported to the device as bad credentials."""


class MailBackendUnavailable(BackendUnavailable):
    """IMAP server down, timed out, or the connection dropped mid-command."""


class AuthenticationFailed(BackendError):
    """The server refused these credentials."""


class MailError(BackendError):
    """The IMAP server refused an operation (tagged NO or BAD)."""

    def __init__(self, message: str, *, response_code: str | None = None) -> None:
        super().__init__(message)
        #: The bracketed response code of the NO/BAD, e.g. "NONEXISTENT", "ALREADYEXISTS".
        self.response_code = response_code


class MailboxNotFound(MailError):
    """The folder does not exist (SELECT/DELETE/RENAME of a missing mailbox)."""


class MailboxAlreadyExists(MailError):
    """CREATE/RENAME target exists."""


class MessageTooLarge(MailError):
    """A fetched body exceeded the caller's size bound; nothing was kept in memory."""


class MessageNotFound(MailError):
    """The uid does not exist (any more) in that folder."""


class ChangeTrackingUnsupported(MailError):
    """`changes_since` cannot answer: the server has no CONDSTORE and the caller gave no
    snapshot to diff against."""


# --------------------------------------------------------------------------- identities


@attrs.frozen
class LoginName:
    """A user name as typed on the device, split into user and domain."""

    user: str
    domain: str | None

    @property
    def login_at_domain(self) -> str:
        return f"{self.user}@{self.domain}" if self.domain else self.user


def parse_login(raw: str, default_domain: str | None = None) -> LoginName:
    """Normalize the device's user name: `user@domain`, `DOMAIN\\user` or bare `user`.

    Devices send either form (Opush's UserEmailParserUtils accepted both); domains are
    case-insensitive so they are lower-cased, the user part is kept as typed.  Raises
    ValueError for an empty user or domain part.
    """
    text = raw.strip()
    user: str
    domain: str | None
    if "\\" in text:
        domain, _, user = text.partition("\\")
    elif "@" in text:
        user, _, domain = text.rpartition("@")
    else:
        user, domain = text, default_domain
    if not user or (domain is not None and not domain) or "@" in user or "\\" in user:
        raise ValueError(f"invalid login {raw!r}")
    return LoginName(user=user, domain=domain.lower() if domain else None)


@attrs.frozen
class UserIdentity:
    """Who the authenticated user is."""

    login: str  # user part, without domain
    domain: str | None
    email: str
    display_name: str | None = None

    @property
    def login_at_domain(self) -> str:
        return f"{self.login}@{self.domain}" if self.domain else self.login


@attrs.frozen
class Credentials:
    """An authenticated user plus the password the mail server needs (never logged)."""

    user: UserIdentity
    password: str = attrs.field(repr=False)


class Auth(Protocol):
    async def authenticate(self, login: str, password: str) -> UserIdentity:
        """Check `login` (any form `parse_login` accepts) and `password`.

        Raises AuthenticationFailed for bad credentials, BackendUnavailable when the
        authority cannot be asked.
        """
        ...


# --------------------------------------------------------------------------- folders


class SpecialUse(enum.Enum):
    """RFC 6154 roles (plus INBOX) that map onto EAS folder types."""

    INBOX = "\\Inbox"
    DRAFTS = "\\Drafts"
    SENT = "\\Sent"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"
    ALL = "\\All"
    FLAGGED = "\\Flagged"
    #: Not an RFC 6154 attribute: the folder mail_conf.ini imap.mailbox.notes names.
    NOTES = "\\X-Notes"


@attrs.frozen
class Folder:
    """One IMAP mailbox.  `name` is the full path decoded from modified UTF-7."""

    name: str
    separator: str | None
    attributes: frozenset[str] = frozenset()  # e.g. "\\HasChildren", "\\Noselect"
    special_use: SpecialUse | None = None
    subscribed: bool = True

    @property
    def selectable(self) -> bool:
        lowered = {a.lower() for a in self.attributes}
        return not ({"\\noselect", "\\nonexistent"} & lowered)

    @property
    def parent(self) -> str | None:
        if not self.separator or self.separator not in self.name:
            return None
        return self.name.rsplit(self.separator, 1)[0]

    @property
    def display_name(self) -> str:
        """Last path segment (what a device shows under its parent)."""
        if not self.separator:
            return self.name
        return self.name.rsplit(self.separator, 1)[-1]


# --------------------------------------------------------------------------- change detection


@attrs.frozen
class FolderStatus:
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None  # None: server without CONDSTORE (or NOMODSEQ mailbox)
    messages: int
    unseen: int


@attrs.frozen
class SyncPoint:
    """What the sync engine stores to ask "what changed since?" later."""

    uidvalidity: int
    uidnext: int
    highestmodseq: int | None = None


@attrs.frozen
class MessageFlags:
    uid: int
    flags: frozenset[str]
    modseq: int | None = None
    internaldate: datetime | None = None  # lets the engine apply FilterType without a SEARCH


@attrs.frozen
class FolderChanges:
    """Result of `MailStore.changes_since`.

    `changed` holds new and modified messages (sorted by uid); `vanished` the expunged uids.
    With `uidvalidity_changed` every previously known uid is void: the engine must treat
    the folder as new (`changed` then lists every message, `vanished` is empty).
    `point` is what to pass next time.  `method` says how it was computed: "full" (no
    point, or a reset), "qresync"/"condstore" (O(changes)), "diff" (snapshot comparison).
    `uidvalidity_changed` is also set when HIGHESTMODSEQ went backwards (a restored
    server): either way the old state is void.  `changed` entries carry INTERNALDATE so
    FilterType can be applied without a SEARCH.
    """

    point: SyncPoint
    changed: tuple[MessageFlags, ...]
    vanished: frozenset[int]
    uidvalidity_changed: bool = False
    method: str = "qresync"


# --------------------------------------------------------------------------- messages


@attrs.frozen
class Address:
    name: str | None
    mailbox: str | None
    host: str | None

    @property
    def email(self) -> str:
        if self.host:
            return f"{self.mailbox or ''}@{self.host}"
        return self.mailbox or ""


@attrs.frozen
class Envelope:
    """RFC 3501 ENVELOPE; header strings are raw (possibly RFC 2047 encoded)."""

    date: str | None
    subject: str | None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


@attrs.frozen
class BodyPart:
    """One node of a BODYSTRUCTURE.  `section` is the IMAP part number to fetch it with
    ("1", "1.2"); a multipart root has section "" (fetch it as the whole message)."""

    section: str
    type: str  # lower-case, e.g. "text", "multipart"
    subtype: str  # lower-case, e.g. "plain", "mixed"
    params: Mapping[str, str] = attrs.field(factory=dict)
    id: str | None = None
    description: str | None = None
    encoding: str | None = None  # lower-case
    size: int | None = None
    lines: int | None = None
    md5: str | None = None
    disposition: str | None = None  # lower-case, e.g. "attachment"
    disposition_params: Mapping[str, str] = attrs.field(factory=dict)
    language: tuple[str, ...] = ()
    location: str | None = None
    children: tuple[BodyPart, ...] = ()
    envelope: Envelope | None = None  # message/rfc822 only

    def walk(self) -> Iterable[BodyPart]:
        yield self
        for child in self.children:
            yield from child.walk()


@attrs.frozen
class MessageSummary:
    uid: int
    flags: frozenset[str]
    modseq: int | None = None
    internaldate: datetime | None = None
    size: int | None = None
    envelope: Envelope | None = None
    body: BodyPart | None = None
    headers: bytes | None = None  # raw BODY.PEEK[HEADER] when asked


@attrs.frozen
class SearchQuery:
    """Criteria ANDed together; `text` is IMAP TEXT (headers and body)."""

    text: str | None = None
    since: date | None = None
    before: date | None = None
    undeleted: bool = True
    #: A Message-ID (``<...>``) the message has as Message-ID, in References or In-Reply-To:
    #: the messages of one thread.
    thread: str | None = None
    #: IMAP SUBJECT (substring).
    subject: str | None = None


class ExpungePolicy(enum.Enum):
    """mail_conf.ini `imap.expungePolicy`: whether opush EXPUNGEs after flagging \\Deleted."""

    ALWAYS = "ALWAYS"
    NEVER = "NEVER"


@attrs.frozen
class MailboxEvent:
    """Something changed in a watched folder: a hint to run `changes_since`.

    `kind`: "exists" (new message), "expunge", "fetch" (flags) from IDLE; "status" (NOTIFY
    or STATUS polling: counters or modseq changed); "mailbox" (NOTIFY: the folder was
    created/renamed/deleted/subscribed); "lost" (the watching session dropped: the watch
    is over, answer the device and watch again)."""

    folder: str
    kind: str


class Watch(Protocol):
    """A running IDLE/NOTIFY subscription."""

    async def stop(self) -> None: ...


class MailStore(Protocol):
    """One user's mailbox.  Folder names are unicode full paths (as in `Folder.name`).

    Every method may raise MailBackendUnavailable (retryable) or a MailError.
    """

    async def capabilities(self) -> frozenset[str]: ...

    # folders
    async def list_folders(self) -> list[Folder]: ...
    async def create_folder(self, name: str, subscribe: bool = True) -> None: ...
    async def rename_folder(self, old: str, new: str) -> None: ...
    async def delete_folder(self, name: str) -> None: ...
    async def subscribe(self, name: str) -> None: ...
    async def unsubscribe(self, name: str) -> None: ...

    # change detection
    async def status(self, folder: str) -> FolderStatus: ...
    async def changes_since(
        self,
        folder: str,
        point: SyncPoint | None,
        known: Mapping[int, frozenset[str]] | None = None,
    ) -> FolderChanges:
        """What changed since `point` (None = initial listing of every message).

        With QRESYNC/CONDSTORE this is O(changes).  Without it the caller passes `known`
        (uid -> flags it last saw) and the store diffs a UID FETCH FLAGS against it;
        without either, ChangeTrackingUnsupported.
        """
        ...

    # messages
    async def search(self, folder: str, query: SearchQuery) -> list[int]: ...
    async def search_folders(
        self, folders: Sequence[str], query: SearchQuery
    ) -> dict[str, list[int]]: ...
    async def fetch_summaries(
        self, folder: str, uids: Sequence[int], headers: bool = False
    ) -> list[MessageSummary]: ...
    async def fetch_body(
        self,
        folder: str,
        uid: int,
        section: str = "",
        partial: tuple[int, int] | None = None,
        max_size: int | None = None,
    ) -> bytes:
        """BODY.PEEK[section]<start.length>; "" = the whole RFC 822 message.
        MessageNotFound if the uid is gone; MessageTooLarge above max_size."""
        ...

    async def set_flags(
        self,
        folder: str,
        uids: Sequence[int],
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None: ...
    async def move(self, folder: str, uids: Sequence[int], destination: str) -> dict[int, int]:
        """Returns old uid -> new uid where the server says (COPYUID), else {}."""
        ...

    async def delete(
        self, folder: str, uids: Sequence[int], move_to_trash: bool = True
    ) -> None: ...
    async def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int | None:
        """APPEND; the new uid from APPENDUID when the server has UIDPLUS."""
        ...

    async def empty_folder(self, folder: str) -> None: ...

    # push
    async def watch(
        self, folders: Sequence[str], callback: Callable[[MailboxEvent], None]
    ) -> Watch: ...

    async def close(self) -> None:
        """Give the connection back (it stays pooled)."""
        ...


class MailBackend(Protocol):
    """Entry point: the per-user store for these credentials (cheap; connections pooled)."""

    def store(self, credentials: Credentials) -> MailStore: ...

    async def shutdown(self) -> None: ...
