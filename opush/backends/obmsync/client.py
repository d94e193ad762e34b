"""obm-sync client: form POSTs to ``<base>/<handler>/<method>``, typed results, one session
per user reused across requests.

Wire protocol (research obm-sync.md §0): UTF-8 ``application/x-www-form-urlencoded`` bodies,
every call but ``login/*`` carries ``sid``; answers are HTTP 200 XML, failures included, as
``<error>`` documents (mapped to typed exceptions in `errors`).

Sessions: the Java Opush logged in and out on every EAS request.  We keep what a user or an
administrator can observe (the password is checked against obm-sync, calls are made with
``origin=o-push`` so unanswered invitations stay hidden) but reuse the session: obm-sync keeps
one alive 20 minutes after its last use, and when it forgets it earlier (restart) the call
fails with ``AuthFault "Invalid access token"``, we log in again and retry once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar
from urllib.parse import urlencode

import attrs
from lxml.etree import _Element
from twisted.internet.defer import Deferred, ensureDeferred

from opush.backends.interfaces import Credentials
from opush.backends.obmsync import xml
from opush.backends.obmsync.errors import (
    AuthFault,
    EventAlreadyExists,
    ObmSyncUnavailable,
    ServerFault,
    fault,
)
from opush.backends.obmsync.transport import HttpTransport, TransportError
from opush.log import logger, watch
from opush.runtime import Clock

log = logger("OBM-SYNC")

T = TypeVar("T")

ORIGIN: Final = "o-push"
#: obm-sync drops a session 20 minutes after its last use (SessionManagement); we stop using
#: ours a little earlier rather than paying a failed call.
SESSION_IDLE_SECONDS: Final = 19 * 60.0
#: Parameters never written to the log.
_SECRET_PARAMS: Final = frozenset({"password", "sid"})

Params = Sequence[tuple[str, str | int | bool | None]]
#: login@domain -> obm-sync services URL (``http://host:8080/obm-sync/services``).
UrlResolver = Callable[[str], Awaitable[str]]


def hashed_client_id(login_at_domain: str, device_type: str, client_id: str) -> str:
    """The clientId Opush sends to createEvent/storeContact (``ClientIdServiceImpl``, OP-155):
    hex SHA-1 of loginAtDomain + device type + the device's ClientId."""
    return hashlib.sha1(f"{login_at_domain}{device_type}{client_id}".encode()).hexdigest()


def _value(v: str | int | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def encode_form(params: Params) -> bytes:
    """Null values are left out; a name may repeat (AbstractClientImpl)."""
    return urlencode([(k, _value(v)) for k, v in params if v is not None]).encode("ascii")


def _parse_bool(text: str) -> bool:
    return text.strip().lower() == "true"


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError as e:
        raise ObmSyncUnavailable(f"obm-sync {what}: not a number {text!r}") from e


@attrs.define
class Session:
    """A live obm-sync session of one user."""

    key: str
    token: xml.AccessToken
    base_url: str
    salt: bytes = attrs.field(repr=False)
    digest: bytes = attrs.field(repr=False)
    last_used: float = 0.0

    @property
    def sid(self) -> str:
        return self.token.sid


class ObmSyncClient:
    """Calls obm-sync for a user; see the module docstring for sessions.

    ``services_url`` is the obm-sync base URL, or an async resolver login@domain -> URL
    (obm-locator).  Every method may raise `AuthFault` (bad credentials: HTTP 401),
    `ObmSyncUnavailable` (retry later) or one of the typed faults of `errors`.
    """

    def __init__(
        self,
        transport: HttpTransport,
        clock: Clock,
        services_url: str | UrlResolver,
        *,
        timeout: float = 30.0,
        origin: str = ORIGIN,
        session_idle_seconds: float = SESSION_IDLE_SECONDS,
    ) -> None:
        self._transport = transport
        self._clock = clock
        self._services_url = services_url
        self.timeout = timeout
        self.origin = origin
        self.session_idle_seconds = session_idle_seconds
        self._sessions: dict[str, Session] = {}
        self._logging_in: dict[str, list[Deferred[Session]]] = {}

    # ---------------------------------------------------------------------------- transport

    async def base_url(self, login_at_domain: str) -> str:
        if isinstance(self._services_url, str):
            return self._services_url.rstrip("/")
        return (await self._services_url(login_at_domain)).rstrip("/")

    async def post(
        self, base_url: str, handler: str, method: str, params: Params
    ) -> _Element | None:
        """One POST; the answer's root, None for an empty body; raises the mapped fault."""
        url = f"{base_url}/{handler}/{method}"
        shown = " ".join(
            f"{k}={'*' if k in _SECRET_PARAMS else _value(v)[:200]}"
            for k, v in params
            if v is not None
        )
        log.debug("POST {handler}/{method} {params}", handler=handler, method=method, params=shown)
        try:
            with watch("OBM"):
                response = await self._transport.request(
                    b"POST",
                    url,
                    body=encode_form(params),
                    content_type="application/x-www-form-urlencoded; charset=UTF-8",
                    timeout_seconds=self.timeout,
                )
        except TransportError as e:
            raise ObmSyncUnavailable(f"obm-sync unreachable ({url}): {e}") from e
        if response.code != 200:
            raise ObmSyncUnavailable(
                f"obm-sync answered HTTP {response.code} to {handler}/{method}"
            )
        if not response.body.strip():
            return None
        try:
            root = xml.parse_document(response.body)
        except xml.ObmXmlError as e:
            raise ObmSyncUnavailable(f"obm-sync {handler}/{method}: {e}") from e
        error = xml.parse_error(root)
        if error is not None:
            message, java_type = error
            log.debug(
                "{handler}/{method} failed: {type} {message}",
                handler=handler,
                method=method,
                type=java_type,
                message=message,
            )
            raise fault(message, java_type, login=handler == "login")
        return root

    # ------------------------------------------------------------------------------- login

    async def login(
        self, login_at_domain: str, password: str, base_url: str | None = None
    ) -> xml.AccessToken:
        """``login/doLogin`` with ``origin`` (a fresh session; see `session` to reuse one)."""
        base = base_url or await self.base_url(login_at_domain)
        return await self._login(base, login_at_domain, password)

    async def _login(self, base: str, login_at_domain: str, password: str) -> xml.AccessToken:
        root = await self.post(
            base,
            "login",
            "doLogin",
            [("login", login_at_domain), ("password", password), ("origin", self.origin)],
        )
        if root is None:
            raise ObmSyncUnavailable("obm-sync doLogin: empty answer")
        try:
            return xml.parse_token(root)
        except xml.ObmXmlError as e:
            raise ObmSyncUnavailable(f"obm-sync doLogin: {e}") from e

    async def logout(self, base_url: str, sid: str) -> None:
        await self.post(base_url, "login", "doLogout", [("sid", sid)])

    async def authenticate_admin(
        self, login: str, password: str, domain: str, *, global_admin: bool = False
    ) -> bool:
        """``login/authenticateAdmin`` (or ``authenticateGlobalAdmin``) in ``domain``: the
        console's authentication (research obm-sync.md §1)."""
        base = await self.base_url(f"{login}@{domain}")
        root = await self.post(
            base,
            "login",
            "authenticateGlobalAdmin" if global_admin else "authenticateAdmin",
            [
                ("login", login),
                ("password", password),
                ("origin", self.origin),
                ("domainName", domain),
            ],
        )
        return root is not None and _parse_bool(xml.parse_scalar(root))

    # ---------------------------------------------------------------------------- sessions

    @staticmethod
    def _key(login_at_domain: str) -> str:
        return login_at_domain.lower()

    def _digest(self, password: str, salt: bytes) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 1000)

    def _usable(self, session: Session, password: str) -> bool:
        if self._clock.seconds() - session.last_used >= self.session_idle_seconds:
            return False
        return hmac.compare_digest(session.digest, self._digest(password, session.salt))

    def adopt(
        self, login_at_domain: str, password: str, token: xml.AccessToken, base_url: str
    ) -> Session:
        """Keep a session obtained by `login` (ObmSyncAuth does) for later calls of this user.

        The session it replaces is logged out in the background.
        """
        key = self._key(login_at_domain)
        salt = os.urandom(16)
        session = Session(
            key, token, base_url, salt, self._digest(password, salt), self._clock.seconds()
        )
        old = self._sessions.get(key)
        self._sessions[key] = session
        if old is not None and old.sid != token.sid:
            self._forget(old)
        return session

    def _forget(self, session: Session) -> None:
        """Log a replaced session out without making anyone wait for it."""
        if self._clock.seconds() - session.last_used >= self.session_idle_seconds:
            return  # obm-sync already dropped it
        d = ensureDeferred(self.logout(session.base_url, session.sid))
        d.addErrback(lambda f: log.debug("doLogout failed: {e}", e=f.getErrorMessage()))

    def sessions(self) -> int:
        return len(self._sessions)

    async def session(self, login_at_domain: str, password: str) -> Session:
        """The user's live session, logging in when there is none (or the password changed)."""
        key = self._key(login_at_domain)
        current = self._sessions.get(key)
        if current is not None and self._usable(current, password):
            return current
        waiting = self._logging_in.get(key)
        if waiting is not None:
            # Someone is logging this user in: share the result (same password only).
            waiter: Deferred[Session] = Deferred()
            waiting.append(waiter)
            shared = await waiter
            if self._usable(shared, password):
                return shared
        waiters: list[Deferred[Session]] = []
        self._logging_in[key] = waiters
        try:
            session = await self._new_session(login_at_domain, password)
        except Exception as e:
            for w in waiters:
                w.errback(e)
            raise
        else:
            for w in waiters:
                w.callback(session)
            return session
        finally:
            if self._logging_in.get(key) is waiters:
                del self._logging_in[key]

    async def _new_session(self, login_at_domain: str, password: str) -> Session:
        base = await self.base_url(login_at_domain)
        token = await self._login(base, login_at_domain, password)
        return self.adopt(login_at_domain, password, token, base)

    def invalidate(self, login_at_domain: str) -> None:
        """Forget the user's session (obm-sync rejected it)."""
        self._sessions.pop(self._key(login_at_domain), None)

    async def call(
        self, credentials: Credentials, handler: str, method: str, params: Params
    ) -> _Element | None:
        """A sid-carrying call for this user; renews the session once if obm-sync forgot it."""
        who = credentials.user.login_at_domain
        for attempt in (1, 2):
            session = await self.session(who, credentials.password)
            session.last_used = self._clock.seconds()
            try:
                return await self.post(
                    session.base_url, handler, method, [("sid", session.sid), *params]
                )
            except AuthFault as e:
                if attempt == 2 or not e.invalid_token:
                    raise
                log.info("obm-sync session of {user} expired, logging in again", user=who)
                if self._sessions.get(self._key(who)) is session:
                    self.invalidate(who)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Log every session out (opush stops)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            if self._clock.seconds() - s.last_used >= self.session_idle_seconds:
                continue
            try:
                await self.logout(s.base_url, s.sid)
            except Exception as e:
                log.debug("doLogout of {user} failed: {e}", user=s.key, e=str(e))

    # --------------------------------------------------------------------------- helpers

    async def _document(
        self, credentials: Credentials, handler: str, method: str, params: Params
    ) -> _Element:
        root = await self.call(credentials, handler, method, params)
        if root is None:
            raise ObmSyncUnavailable(f"obm-sync {handler}/{method}: empty answer")
        return root

    async def _scalar(
        self, credentials: Credentials, handler: str, method: str, params: Params
    ) -> str:
        root = await self._document(credentials, handler, method, params)
        try:
            return xml.parse_scalar(root)
        except xml.ObmXmlError as e:
            raise ObmSyncUnavailable(f"obm-sync {handler}/{method}: {e}") from e

    async def _parsed(
        self,
        credentials: Credentials,
        handler: str,
        method: str,
        params: Params,
        parse: Callable[[_Element], T],
    ) -> T:
        root = await self._document(credentials, handler, method, params)
        try:
            return parse(root)
        except xml.ObmXmlError as e:
            raise ObmSyncUnavailable(f"obm-sync {handler}/{method}: {e}") from e

    # --------------------------------------------------------------------------- calendar

    async def get_user_email(self, credentials: Credentials, handler: str = "calendar") -> str:
        """``calendar/getUserEmail`` (or ``user/getUserEmail``): the user's address."""
        return await self._scalar(credentials, handler, "getUserEmail", [])

    async def _changes(
        self, credentials: Credentials, method: str, calendar: str, last_sync: int
    ) -> xml.EventChanges:
        return await self._parsed(
            credentials,
            "calendar",
            method,
            [("calendar", calendar), ("lastSync", last_sync)],
            xml.parse_event_changes,
        )

    async def get_sync(
        self, credentials: Credentials, calendar: str, last_sync: int
    ) -> xml.EventChanges:
        return await self._changes(credentials, "getSync", calendar, last_sync)

    async def get_first_sync(
        self, credentials: Credentials, calendar: str, last_sync: int
    ) -> xml.EventChanges:
        return await self._changes(credentials, "getFirstSync", calendar, last_sync)

    async def get_sync_event_date(
        self, credentials: Credentials, calendar: str, last_sync: int
    ) -> xml.EventChanges:
        return await self._changes(credentials, "getSyncEventDate", calendar, last_sync)

    async def get_first_sync_event_date(
        self, credentials: Credentials, calendar: str, last_sync: int
    ) -> xml.EventChanges:
        return await self._changes(credentials, "getFirstSyncEventDate", calendar, last_sync)

    async def get_event_from_id(
        self, credentials: Credentials, calendar: str, event_id: int
    ) -> xml.Event:
        return await self._parsed(
            credentials,
            "calendar",
            "getEventFromId",
            [("calendar", calendar), ("id", event_id)],
            xml.parse_single_event,
        )

    async def get_event_from_ext_id(
        self, credentials: Credentials, calendar: str, ext_id: str
    ) -> xml.Event:
        return await self._parsed(
            credentials,
            "calendar",
            "getEventFromExtId",
            [("calendar", calendar), ("extId", ext_id)],
            xml.parse_single_event,
        )

    async def get_event_obm_id_from_ext_id(
        self, credentials: Credentials, calendar: str, ext_id: str
    ) -> int:
        text = await self._scalar(
            credentials,
            "calendar",
            "getEventObmIdFromExtId",
            [("calendar", calendar), ("extId", ext_id)],
        )
        return _parse_int(text, "getEventObmIdFromExtId")

    async def create_event(
        self,
        credentials: Credentials,
        calendar: str,
        event: xml.Event,
        *,
        notification: bool,
        client_id: str | None,
    ) -> int:
        """The new event's id.  `EventAlreadyExists` when its extId is already in the
        calendar (Opush then asks `get_event_obm_id_from_ext_id`)."""
        if event.id is not None:
            raise ServerFault("createEvent: an event to create has no id")
        text = await self._scalar(
            credentials,
            "calendar",
            "createEvent",
            [
                ("calendar", calendar),
                ("event", _event_param(event)),
                ("notification", notification),
                ("clientId", client_id),
            ],
        )
        return _parse_int(text, "createEvent")

    async def modify_event(
        self,
        credentials: Credentials,
        calendar: str,
        event: xml.Event,
        *,
        update_attendees: bool,
        notification: bool,
    ) -> xml.Event:
        """The stored event; ServerFault ``Event did not exist.`` when it is unknown."""
        return await self._parsed(
            credentials,
            "calendar",
            "modifyEvent",
            [
                ("calendar", calendar),
                ("event", _event_param(event)),
                ("updateAttendees", update_attendees),
                ("notification", notification),
            ],
            xml.parse_single_event,
        )

    async def remove_event(
        self,
        credentials: Credentials,
        calendar: str,
        event_id: int,
        sequence: int,
        *,
        notification: bool,
    ) -> None:
        """Deletes the owner's event, or declines someone else's; EventNotFound if unknown."""
        await self.call(
            credentials,
            "calendar",
            "removeEvent",
            [
                ("calendar", calendar),
                ("id", event_id),
                ("sequence", sequence),
                ("notification", notification),
            ],
        )

    async def change_participation_state(
        self,
        credentials: Credentials,
        calendar: str,
        ext_id: str,
        state: str,
        sequence: int,
        *,
        notification: bool,
        recurrence_id: int | None = None,
        comment: str | None = None,
    ) -> bool:
        """False when nothing changed (e.g. a stale sequence)."""
        if state not in xml.PARTICIPATION_STATES:
            raise ValueError(f"unknown participation state {state!r}")
        params: list[tuple[str, str | int | bool | None]] = [
            ("calendar", calendar),
            ("extId", ext_id),
            ("state", state),
            ("sequence", sequence),
            ("notification", notification),
        ]
        if recurrence_id is not None:
            params += [("recursive", False), ("recurrenceId", recurrence_id)]
        params.append(("comment", comment))
        return _parse_bool(
            await self._scalar(credentials, "calendar", "changeParticipationState", params)
        )

    # ------------------------------------------------------------------------------- book

    async def list_address_books_changed(
        self, credentials: Credentials, last_sync: int = 0
    ) -> xml.AddressBookChanges:
        return await self._parsed(
            credentials,
            "book",
            "listAddressBooksChanged",
            [("lastSync", last_sync)],
            xml.parse_folder_changes,
        )

    async def list_all_changes(
        self, credentials: Credentials, last_sync: int, book_id: int | None
    ) -> xml.ContactChanges:
        return await self._parsed(
            credentials,
            "book",
            "listAllChanges",
            [("lastSync", last_sync), ("bookId", book_id)],
            xml.parse_contact_changes,
        )

    async def first_list_all_changes(
        self, credentials: Credentials, last_sync: int, book_id: int | None
    ) -> xml.ContactChanges:
        return await self._parsed(
            credentials,
            "book",
            "firstListAllChanges",
            [("lastSync", last_sync), ("bookId", book_id)],
            xml.parse_contact_changes,
        )

    async def get_contact_from_id(
        self, credentials: Credentials, book_id: int, contact_id: int
    ) -> xml.Contact:
        return await self._parsed(
            credentials,
            "book",
            "getContactFromId",
            [("bookId", book_id), ("id", contact_id)],
            xml.parse_single_contact,
        )

    async def _store(
        self,
        credentials: Credentials,
        method: str,
        book_id: int,
        contact: xml.Contact,
        client_id: str | None,
    ) -> xml.Contact:
        return await self._parsed(
            credentials,
            "book",
            method,
            [("bookId", book_id), ("contact", _contact_param(contact)), ("clientId", client_id)],
            xml.parse_single_contact,
        )

    async def store_contact(
        self,
        credentials: Credentials,
        book_id: int,
        contact: xml.Contact,
        client_id: str | None = None,
    ) -> xml.Contact:
        """Creates (no uid) or updates (uid) a contact (O3); NoPermission on the users book."""
        return await self._store(credentials, "storeContact", book_id, contact, client_id)

    async def create_contact(
        self,
        credentials: Credentials,
        book_id: int,
        contact: xml.Contact,
        client_id: str | None = None,
    ) -> xml.Contact:
        return await self._store(credentials, "createContact", book_id, contact, client_id)

    async def modify_contact(
        self, credentials: Credentials, book_id: int, contact: xml.Contact
    ) -> xml.Contact:
        return await self._store(credentials, "modifyContact", book_id, contact, None)

    async def remove_contact(
        self, credentials: Credentials, book_id: int, contact_id: int
    ) -> xml.Contact:
        """The removed contact; ContactNotFound, NoPermission (users book)."""
        return await self._parsed(
            credentials,
            "book",
            "removeContact",
            [("bookId", book_id), ("id", contact_id)],
            xml.parse_single_contact,
        )

    async def list_all_books(self, credentials: Credentials) -> tuple[xml.AddressBook, ...]:
        return await self._parsed(credentials, "book", "listAllBooks", [], xml.parse_books)

    async def search_contacts(
        self, credentials: Credentials, query: str, limit: int, offset: int | None = None
    ) -> tuple[xml.Contact, ...]:
        """``searchContactsInSynchronizedAddressBooks`` (EAS Search GAL)."""
        return await self._parsed(
            credentials,
            "book",
            "searchContactsInSynchronizedAddressBooks",
            [("query", query), ("limit", limit), ("offset", offset)],
            xml.parse_contacts,
        )


def _event_param(event: xml.Event) -> str:
    return xml.serialize(xml.write_event(None, event)).decode("utf-8")


def _contact_param(contact: xml.Contact) -> str:
    return xml.serialize(xml.write_contact(None, contact)).decode("utf-8")


__all__ = [
    "ORIGIN",
    "EventAlreadyExists",
    "ObmSyncClient",
    "Session",
    "encode_form",
    "hashed_client_id",
]
