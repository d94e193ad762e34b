"""What a command handler receives and returns.

A handler is ``async def handle(ctx: CommandContext, request: _Element | None) ->
CommandResult``.  ``request`` is the decoded WBXML body (None for an empty body or a
non-WBXML one such as SendMail's MIME before 14.0: read ``ctx.body``).  To answer with a
command status raise ``opush.http.errors.EasStatusError(status)``; anything else raised
ends in ``opush/http/errors.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import attrs
from lxml.etree import _Element
from twisted.internet.defer import Deferred

from opush.backends.interfaces import Credentials, MailStore, UserIdentity
from opush.http.query import EasQuery
from opush.runtime import Runtime
from opush.storage.interfaces import Device

#: (major, minor), e.g. (14, 1): compare with tuples, ``ctx.version >= (14, 0)``.
ProtocolVersion = tuple[int, int]

SUPPORTED_VERSIONS: tuple[ProtocolVersion, ...] = (
    (12, 0),
    (12, 1),
    (14, 0),
    (14, 1),
    (16, 0),
    (16, 1),
)


def parse_version(text: str) -> ProtocolVersion:
    """ "14.1" -> (14, 1); ValueError if malformed."""
    major, _, minor = text.strip().partition(".")
    return (int(major), int(minor or "0"))


def format_version(version: ProtocolVersion) -> str:
    return f"{version[0]}.{version[1]}"


@attrs.define
class CommandContext:
    """Everything about one authenticated, authorized EAS request."""

    runtime: Runtime
    command: str
    credentials: Credentials
    device: Device
    version: ProtocolVersion
    query: EasQuery
    #: Request headers, names lower-cased.
    headers: Mapping[str, str]
    #: The raw request body (already read; bounded by the front door's size limit).
    body: bytes
    content_type: str | None
    #: The policy key the device sent (X-MS-PolicyKey or the base64 query), None if absent.
    policy_key: int | None
    request_id: int
    #: Fires (with None) when this request should end early: another request of the same
    #: user+device arrived (MS-ASCMD Ping: "a new request ends the outstanding Ping"), the
    #: client went away, or the server stops.  Long-waiting handlers (Ping, Sync Wait) race
    #: their timer against it; others may ignore it.
    interrupted: Deferred[None] = attrs.field(factory=Deferred)

    @property
    def user(self) -> UserIdentity:
        return self.credentials.user

    @property
    def version_text(self) -> str:
        return format_version(self.version)

    @property
    def params(self) -> Mapping[str, str]:
        """Command parameters of the URI (CollectionId, ItemId, LongId, AttachmentName,
        Occurrence, ParentId) whichever query form carried them."""
        return self.query.params

    @property
    def save_in_sent(self) -> bool:
        return self.query.save_in_sent

    @property
    def accept_multipart(self) -> bool:
        """MS-ASHTTP 2.2.1.1.2.5 MS-ASAcceptMultiPart header, or the base64 Options bit."""
        return self.query.accept_multipart or self.headers.get("ms-asacceptmultipart", "") in (
            "T",
            "t",
        )

    def mail_store(self) -> MailStore:
        """The user's mailbox (connections are pooled by the backend)."""
        if self.runtime.mail is None:
            raise RuntimeError("no mail backend configured")
        return self.runtime.mail.store(self.credentials)


@attrs.frozen
class CommandResult:
    """A handler's answer: a WBXML tree, raw bytes with their content type, or nothing."""

    tree: _Element | None = None
    raw: bytes | None = None
    content_type: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    code: int = 200

    @classmethod
    def wbxml(cls, tree: _Element) -> CommandResult:
        return cls(tree=tree)

    @classmethod
    def data(cls, raw: bytes, content_type: str) -> CommandResult:
        return cls(raw=raw, content_type=content_type)

    @classmethod
    def empty(cls) -> CommandResult:
        return cls()


Handler = Callable[[CommandContext, _Element | None], Awaitable[CommandResult]]
