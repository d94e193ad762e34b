"""A faithful test double of obm-sync and obm-locator (OBM cannot run here).

Built only from /work/shared/research/obm-sync.md: same URLs, form parameters, XML documents,
``<error>`` types and the semantics described there (§0-§6).  Where the research says nothing
the double does the least it can and says so (search is a substring match, marked a guess
there too; rights: a user reads and writes their own calendar and books, plus what a test
grants explicitly; no notifications, delegation or anonymisation).

Use it three ways:

- ``ObmSyncDouble(clock)`` holds the model (users, sessions, events, books, contacts) and
  answers ``dispatch(path, params)``;
- ``double.transport()`` is an in-memory `HttpTransport` for unit tests (no sockets);
- ``double.listen(reactor)`` serves it over real HTTP on 127.0.0.1 (obm-sync under
  ``/obm-sync/services/``, obm-locator under ``/obm-locator/location/host/``) for integration
  and end-to-end tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from lxml.etree import _Element
from twisted.internet.interfaces import IListeningPort
from twisted.web import resource, server

from opush.backends.obmsync import xml
from opush.backends.obmsync.transport import HttpResponse

XML = "text/xml;charset=UTF-8"
AUTH_FAULT = "org.obm.sync.auth.AuthFault"
SERVER_FAULT = "org.obm.sync.auth.ServerFault"
EVENT_NOT_FOUND = "org.obm.sync.auth.EventNotFoundException"
EVENT_ALREADY_EXISTS = "org.obm.sync.auth.EventAlreadyExistException"
NOT_ALLOWED = "org.obm.sync.NotAllowedException"
CONTACT_NOT_FOUND = "org.obm.sync.exception.ContactNotFoundException"
NO_PERMISSION = "javax.naming.NoPermissionException"
#: SessionManagement: sessions expire 20 min after their last use.
SESSION_TTL_MS = 20 * 60 * 1000
USERS_BOOK = -1


class Fault(Exception):
    """Becomes an ``<error>`` document (SyncServlet does this for any handler exception)."""

    def __init__(self, message: str, java_type: str | None = SERVER_FAULT) -> None:
        super().__init__(message)
        self.message = message
        self.java_type = java_type


@attrs.define
class User:
    id: int
    login: str
    domain: str
    password: str
    email: str
    display_name: str | None = None
    first: str | None = None
    last: str | None = None
    admin: bool = False
    archived: bool = False
    hidden: bool = False
    #: ms of the last change visible in the users book (creation, archive, hide).
    changed: int = 0

    @property
    def login_at_domain(self) -> str:
        return f"{self.login}@{self.domain}"


@attrs.define
class SessionRecord:
    user: User
    origin: str
    last_used: int


@attrs.define
class StoredEvent:
    event: xml.Event
    #: attendee e-mail (lower-case) -> ms of the last change of that attendee's link.
    link_updates: dict[str, int]


@attrs.define
class Book:
    id: int
    name: str
    owner: User
    syncable: bool = True
    updated: int = 0


@attrs.define
class StoredContact:
    contact: xml.Contact
    book: int
    timecreate: int
    timeupdate: int


class ObmSyncDouble:
    """The model and the answers; ``clock`` is a reactor or a twisted Clock (ms = seconds*1000)."""

    def __init__(self, clock: Any, *, domain_uuid: str | None = None) -> None:
        self.clock = clock
        self.domain_uuids: dict[str, str] = {}
        self._default_uuid = domain_uuid
        self.users: dict[int, User] = {}
        self.sessions: dict[str, SessionRecord] = {}
        self.events: dict[int, StoredEvent] = {}
        #: DeletedEvent rows: (user login@domain, id, extId, ms).
        self.deleted_events: list[tuple[str, int, str, int]] = []
        #: DeletedEventLink rows: (attendee e-mail, id, extId, ms).
        self.deleted_links: list[tuple[str, int, str, int]] = []
        #: commitedoperation: clientId -> created event id.
        self.committed_events: dict[str, int] = {}
        self.books: dict[int, Book] = {}
        #: SyncedAddressbook: user id -> {book id: subscription ms}.
        self.subscriptions: dict[int, dict[int, int]] = {}
        #: removed books / dropped subscriptions: (user id, book id, name, ms).
        self.removed_books: list[tuple[int, int, str, int]] = []
        self.contacts: dict[int, StoredContact] = {}
        #: deleted contacts: (book id, uid, ms).
        self.deleted_contacts: list[tuple[int, int, int]] = []
        self.committed_contacts: dict[str, int] = {}
        #: extra rights a test granted: (grantee login@domain, calendar login) -> write?
        self.calendar_rights: dict[tuple[str, str], bool] = {}
        #: locator: (service, property) -> answer lines.
        self.locations: dict[tuple[str, str], list[str]] = {
            ("sync", "obm_sync"): ["127.0.0.1"],
            ("mail", "imap_frontend"): ["127.0.0.1"],
            ("mail", "smtp_out"): ["127.0.0.1"],
        }
        #: Every call received: (handler, method, params), for tests that count logins.
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        #: Every obm-locator path asked.
        self.locator_paths: list[str] = []
        self._ids = 0

    # ------------------------------------------------------------------------- model setup

    def now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def add_user(
        self,
        login_at_domain: str,
        password: str = "secret",
        *,
        display_name: str | None = None,
        first: str | None = None,
        last: str | None = None,
        email: str | None = None,
        admin: bool = False,
        contacts_book: bool = True,
    ) -> User:
        login, _, domain = login_at_domain.partition("@")
        domain = domain.lower()
        if domain not in self.domain_uuids:
            self.domain_uuids[domain] = self._default_uuid or str(uuid.uuid4())
        user = User(
            id=self._next_id(),
            login=login,
            domain=domain,
            password=password,
            email=email or f"{login}@{domain}",
            display_name=display_name,
            first=first,
            last=last,
            admin=admin,
            changed=self.now(),
        )
        self.users[user.id] = user
        if contacts_book:
            # Every OBM user has a personal book named "contacts", subscribed.
            self.add_book(user, "contacts")
        return user

    def add_book(self, owner: User, name: str, *, syncable: bool = True) -> Book:
        book = Book(self._next_id(), name, owner, syncable, self.now())
        self.books[book.id] = book
        self.subscribe(owner, book)
        return book

    def subscribe(self, user: User, book: Book) -> None:
        self.subscriptions.setdefault(user.id, {})[book.id] = self.now()

    def unsubscribe(self, user: User, book: Book) -> None:
        if self.subscriptions.get(user.id, {}).pop(book.id, None) is not None:
            self.removed_books.append((user.id, book.id, book.name, self.now()))

    def archive_user(self, user: User) -> None:
        user.archived = True
        user.changed = self.now()

    def grant_calendar(self, grantee: User, calendar_owner: User, *, write: bool) -> None:
        self.calendar_rights[(grantee.login_at_domain, calendar_owner.login)] = write

    def user(self, login_at_domain: str) -> User:
        for u in self.users.values():
            if u.login_at_domain.lower() == login_at_domain.lower():
                return u
        raise KeyError(login_at_domain)

    def put_event(self, event: xml.Event) -> xml.Event:
        """Store an event as another OBM client would (an invitation, say); returns it."""
        now = self.now()
        stored = attrs.evolve(
            event,
            id=event.id or self._next_id(),
            timecreate=event.timecreate or now,
            timeupdate=now,
            ext_id=event.ext_id or str(uuid.uuid4()),
        )
        self.events[stored.id or 0] = StoredEvent(
            stored, {a.email.lower(): now for a in stored.attendees}
        )
        return stored

    # ------------------------------------------------------------------------------ HTTP

    def transport(self) -> InMemoryTransport:
        return InMemoryTransport(self)

    def listen(self, reactor: Any, port: int = 0) -> IListeningPort:
        """Serve over HTTP on 127.0.0.1 (port 0: any free one; see ``.getHost().port``)."""
        site = server.Site(_Resource(self))
        site.displayTracebacks = False
        listening: IListeningPort = reactor.listenTCP(port, site, interface="127.0.0.1")
        return listening

    def dispatch(self, path: str, params: Mapping[str, list[str]]) -> tuple[int, str, bytes]:
        """(status, content type, body) for a request to ``path`` with form ``params``."""
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["obm-locator", "location", "host"]:
            self.locator_paths.append(path)
            return self._locate(parts[3:])
        if parts[:2] != ["obm-sync", "services"]:
            return 404, "text/plain", b"not found"
        rest = parts[2:]
        if len(rest) != 2:
            return self._xml(
                xml.error_document(
                    f"Invalid query {path}", "org.obm.sync.server.QueryFormatException"
                )
            )
        handler, method = rest
        self.calls.append((handler, method, {k: list(v) for k, v in params.items()}))
        try:
            body = self._handle(handler, method, params)
        except Fault as f:
            return self._xml(xml.error_document(f.message, f.java_type))
        if body is None:
            return 200, XML, b""
        return self._xml(body)

    @staticmethod
    def _xml(root: _Element) -> tuple[int, str, bytes]:
        return 200, XML, xml.serialize(root)

    def _locate(self, parts: list[str]) -> tuple[int, str, bytes]:
        # HostLocationServlet: 403 unless service/property/login; 404 for an unknown service.
        if len(parts) != 3:
            return 403, "text/plain", b""
        service, prop, _login = parts
        lines = self.locations.get((service, prop))
        if not lines:
            return 404, "text/plain", b""
        return 200, "text/plain", ("\n".join(lines) + "\n").encode()

    # ------------------------------------------------------------------------ dispatching

    def _handle(
        self, handler: str, method: str, params: Mapping[str, list[str]]
    ) -> _Element | None:
        p = _Params(params)
        if handler == "login":
            return self._login(method, p)
        session = self._check_token(p)
        if handler in ("calendar", "user") and method == "getUserEmail":
            return xml.scalar_document(session.user.email)
        if handler == "calendar":
            fn = _CALENDAR.get(method)
            if fn is None:
                return None  # EventHandler sends an empty body
            return fn(self, session, p)
        if handler == "book":
            fn = _BOOK.get(method)
            if fn is None:
                raise Fault(f"Cannot handle method '{method}'", None)
            return fn(self, session, p)
        raise Fault("unsupported", None)

    def _check_token(self, p: _Params) -> SessionRecord:
        sid = p.get("sid")
        session = self.sessions.get(sid or "")
        now = self.now()
        if session is None or now - session.last_used >= SESSION_TTL_MS:
            self.sessions.pop(sid or "", None)
            raise Fault("Invalid access token", AUTH_FAULT)
        session.last_used = now
        return session

    # ------------------------------------------------------------------------------ login

    def _login(self, method: str, p: _Params) -> _Element | None:
        if method == "doLogout":
            self.sessions.pop(p.get("sid") or "", None)
            return None
        if method not in ("doLogin", "authenticateAdmin", "authenticateGlobalAdmin"):
            raise Fault(f"unsupported method: {method}", None)
        login, password, origin = p.get("login"), p.get("password"), p.get("origin")
        if not login or not origin:
            raise Fault("Login refused : 'origin' is mandatory", None)
        if method in ("authenticateAdmin", "authenticateGlobalAdmin"):
            domain = p.get("domainName") or ""
            name = login if "@" in login else f"{login}@{domain}"
            user = self._find_login(name)
            ok = user is not None and user.password == password and user.admin
            return xml.scalar_document("true" if ok else "false")
        user = self._find_login(login)
        if user is None or user.password != password:
            raise Fault(f"Login failed for user '{login}'", AUTH_FAULT)
        sid = str(uuid.uuid4())
        self.sessions[sid] = SessionRecord(user, origin, self.now())
        return xml.token_document(
            xml.AccessToken(
                sid=sid,
                email=user.email,
                domain=user.domain,
                domain_uuid=self.domain_uuids[user.domain],
                display_name=user.display_name,
                version=(3, 2, 1),
            )
        )

    def _find_login(self, login_at_domain: str) -> User | None:
        if "@" not in login_at_domain:
            return None
        try:
            return self.user(login_at_domain)
        except KeyError:
            return None

    # --------------------------------------------------------------------------- calendar

    def _calendar_user(self, session: SessionRecord, p: _Params, *, write: bool) -> User:
        """``calendar`` is a login (same domain) or an e-mail; unknown -> ServerFault;
        rights checked -> NotAllowedException."""
        name = p.require("calendar")
        me = session.user
        target = None
        for u in self.users.values():
            if "@" in name:
                if u.email.lower() == name.lower():
                    target = u
            elif u.login == name and u.domain == me.domain:
                target = u
        if target is None:
            raise Fault(f"Calendar '{name}' not found")
        if target.id != me.id:
            granted = self.calendar_rights.get((me.login_at_domain, target.login))
            if granted is None or (write and not granted):
                raise Fault(f"{me.login_at_domain} cannot access calendar {name}", NOT_ALLOWED)
        return target

    def _in_calendar(self, stored: StoredEvent, user: User) -> bool:
        return stored.event.attendee(user.email) is not None

    def _sync(self, session: SessionRecord, p: _Params, *, first: bool, by_date: bool) -> _Element:
        user = self._calendar_user(session, p, write=False)
        last_sync = p.int("lastSync")
        push = "push" in session.origin
        updated: list[xml.Event] = []
        removed: list[xml.RemovedEvent] = []
        for stored in sorted(self.events.values(), key=lambda s: s.event.id or 0):
            event = stored.event
            me = event.attendee(user.email)
            if me is None:
                continue
            changed = (
                (event.timecreate or 0) >= last_sync
                or (event.timeupdate or 0) >= last_sync
                or any(t >= last_sync for t in stored.link_updates.values())
            )
            if by_date and not changed:
                changed = (event.date or 0) >= last_sync or event.recurrence.recurring
            if not changed:
                continue
            if push and me.state == "NEEDS-ACTION":
                continue  # the DAO's "dirty hack": unanswered invitations stay off devices
            if me.state == "DECLINED":
                removed.append(xml.RemovedEvent(event.id or 0, event.ext_id or ""))
                continue
            updated.append(event)
        if not first:
            mine = user.login_at_domain.lower()
            for who, eid, ext, ts in self.deleted_events:
                if who == mine and ts >= last_sync:
                    removed.append(xml.RemovedEvent(eid, ext))
            for email, eid, ext, ts in self.deleted_links:
                if email == user.email.lower() and ts >= last_sync:
                    removed.append(xml.RemovedEvent(eid, ext))
        else:
            removed = []
        return xml.event_changes_document(
            xml.EventChanges(last_sync=self.now(), updated=tuple(updated), removed=tuple(removed))
        )

    def _find_event(
        self, user: User, *, event_id: int | None = None, ext_id: str | None = None
    ) -> StoredEvent:
        for stored in self.events.values():
            e = stored.event
            if (event_id is not None and e.id == event_id) or (
                ext_id is not None and e.ext_id == ext_id
            ):
                if self._in_calendar(stored, user):
                    return stored
        what = f"id {event_id}" if event_id is not None else f"extId {ext_id}"
        raise Fault(f"Event from calendar {user.login} with {what} not found", EVENT_NOT_FOUND)

    def _get_event_from_id(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=False)
        return xml.write_event(None, self._find_event(user, event_id=p.int("id")).event)

    def _get_event_from_ext_id(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=False)
        return xml.write_event(None, self._find_event(user, ext_id=p.require("extId")).event)

    def _get_obm_id(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=False)
        stored = self._find_event(user, ext_id=p.require("extId"))
        return xml.scalar_document(str(stored.event.id))

    def _parse_event_param(self, p: _Params) -> xml.Event:
        try:
            return xml.parse_single_event(xml.parse_document(p.require("event").encode("utf-8")))
        except xml.ObmXmlError as e:
            raise Fault(f"cannot parse event: {e}") from None

    def _create_event(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=True)
        event = self._parse_event_param(p)
        if event.id is not None:
            raise Fault("event id must be null when creating an event")
        client_id = p.get("clientId")
        if client_id and client_id in self.committed_events:
            return xml.scalar_document(str(self.committed_events[client_id]))
        if event.ext_id:
            for stored in self.events.values():
                if stored.event.ext_id == event.ext_id and self._in_calendar(stored, user):
                    raise Fault(
                        f"Calendar {user.login} already contains an event with extId "
                        f"{event.ext_id}",
                        EVENT_ALREADY_EXISTS,
                    )
        if not event.is_internal and event.attendee(user.email) is None:
            raise Fault(f"external event must have {user.email} as attendee")
        now = self.now()
        created = attrs.evolve(
            event,
            id=self._next_id(),
            timecreate=now,
            timeupdate=now,
            ext_id=event.ext_id or str(uuid.uuid4()),
            owner=event.owner or user.login,
            owner_email=event.owner_email or user.email,
        )
        created = attrs.evolve(
            created,
            recurrence=attrs.evolve(
                created.recurrence,
                event_exceptions=tuple(
                    attrs.evolve(x, id=self._next_id(), ext_id=created.ext_id)
                    for x in created.recurrence.event_exceptions
                ),
            ),
        )
        self.events[created.id or 0] = StoredEvent(
            created, {a.email.lower(): now for a in created.attendees}
        )
        if client_id:
            self.committed_events[client_id] = created.id or 0
        return xml.scalar_document(str(created.id))

    def _modify_event(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=False)
        event = self._parse_event_param(p)
        update_attendees = p.bool("updateAttendees")
        stored = None
        for s in self.events.values():
            if (event.id is not None and s.event.id == event.id) or (
                event.id is None and event.ext_id and s.event.ext_id == event.ext_id
            ):
                stored = s
        if stored is None or not self._in_calendar(stored, user):
            raise Fault("Event did not exist.", None)
        me = session.user
        if stored.event.owner != me.login and user.id != me.id:
            self._calendar_user(session, p, write=True)  # write right needed
        now = self.now()
        old = stored.event
        attendees = event.attendees if update_attendees else old.attendees
        if update_attendees:
            new_emails = {a.email.lower() for a in attendees}
            for a in old.attendees:
                if a.email.lower() not in new_emails:
                    self.deleted_links.append((a.email.lower(), old.id or 0, old.ext_id or "", now))
                    stored.link_updates.pop(a.email.lower(), None)
            for a in attendees:
                before = old.attendee(a.email)
                if before != a:
                    stored.link_updates[a.email.lower()] = now
        stored.event = attrs.evolve(
            event,
            id=old.id,
            ext_id=old.ext_id,
            timecreate=old.timecreate,
            timeupdate=now,
            owner=old.owner,
            owner_email=old.owner_email,
            attendees=attendees,
        )
        return xml.write_event(None, stored.event)

    def _remove_event(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=True)
        stored = self._find_event(user, event_id=p.int("id"))
        event = stored.event
        now = self.now()
        if event.is_internal and event.owner == user.login:
            del self.events[event.id or 0]
            for a in event.attendees:
                attendee = next(
                    (u for u in self.users.values() if u.email.lower() == a.email.lower()), None
                )
                if attendee is not None:
                    self.deleted_events.append(
                        (attendee.login_at_domain.lower(), event.id or 0, event.ext_id or "", now)
                    )
        else:
            self._set_state(stored, user, "DECLINED", now)
        return xml.scalar_document("true")

    def _set_state(self, stored: StoredEvent, user: User, state: str, now: int) -> bool:
        event = stored.event
        me = event.attendee(user.email)
        if me is None or me.state == state:
            return False
        attendees = tuple(attrs.evolve(a, state=state) if a is me else a for a in event.attendees)
        stored.event = attrs.evolve(event, attendees=attendees)
        stored.link_updates[user.email.lower()] = now
        return True

    def _change_participation(self, session: SessionRecord, p: _Params) -> _Element:
        user = self._calendar_user(session, p, write=True)
        state = p.require("state")
        if state not in xml.PARTICIPATION_STATES:
            raise Fault(f"unknown participation state {state}")
        stored = self._find_event(user, ext_id=p.require("extId"))
        sequence = p.int("sequence")
        if sequence < stored.event.sequence:
            return xml.scalar_document("false")  # stale sequence: nothing changed
        now = self.now()
        recurrence_id = p.get("recurrenceId")
        if recurrence_id and p.get("recursive") == "false":
            rid = int(recurrence_id)
            exceptions = stored.event.recurrence.event_exceptions
            target = next((x for x in exceptions if x.recurrence_id == rid), None)
            me = target.attendee(user.email) if target is not None else None
            if target is None or me is None or me.state == state:
                return xml.scalar_document("false")
            new_x = attrs.evolve(
                target,
                attendees=tuple(
                    attrs.evolve(a, state=state) if a is me else a for a in target.attendees
                ),
            )
            stored.event = attrs.evolve(
                stored.event,
                recurrence=attrs.evolve(
                    stored.event.recurrence,
                    event_exceptions=tuple(new_x if x is target else x for x in exceptions),
                ),
            )
            stored.link_updates[user.email.lower()] = now
            return xml.scalar_document("true")
        changed = self._set_state(stored, user, state, now)
        return xml.scalar_document("true" if changed else "false")

    # ------------------------------------------------------------------------------- book

    def _users_book_contact(self, u: User) -> xml.Contact:
        return xml.Contact(
            uid=u.id,
            first=u.first,
            last=u.last or (u.display_name if not u.first else None) or u.login,
            addressbook_id=USERS_BOOK,
            emails=(xml.EmailAddress("INTERNET;X-OBM-Ref1", u.email),),
        )

    def _visible_users(self, me: User) -> list[User]:
        return [u for u in self.users.values() if u.domain == me.domain]

    def _book_for(self, session: SessionRecord, book_id: int, *, write: bool) -> Book:
        if book_id == USERS_BOOK and write:
            raise Fault("Cannot edit the 'users' address book.", NO_PERMISSION)
        book = self.books.get(book_id)
        if book is None:
            raise Fault(f"no address book {book_id}", NO_PERMISSION if write else SERVER_FAULT)
        if book.owner.id != session.user.id and (
            write or book_id not in self.subscriptions.get(session.user.id, {})
        ):
            raise Fault(f"no right on address book {book_id}", NO_PERMISSION)
        return book

    def _list_books_changed(self, session: SessionRecord, p: _Params) -> _Element:
        me = session.user
        last_sync = p.int("lastSync")
        updated = []
        for book_id, since in sorted(self.subscriptions.get(me.id, {}).items()):
            book = self.books[book_id]
            if not (book.syncable or book.name == "contacts"):
                continue
            if max(since, book.updated) < last_sync:
                continue
            others = book.owner.id != me.id
            updated.append(
                xml.AddressBookFolder(
                    uid=book.id,
                    name=book.name,
                    owner_display_name=book.owner.display_name if others else None,
                    owner_login_at_domain=book.owner.login_at_domain,
                )
            )
        if last_sync == 0:
            updated.append(
                xml.AddressBookFolder(
                    uid=USERS_BOOK, name="users", owner_login_at_domain=me.login_at_domain
                )
            )
        removed = [
            xml.AddressBookFolder(uid=bid, name=name)
            for uid, bid, name, ts in self.removed_books
            if uid == me.id and ts >= last_sync
        ]
        return xml.folder_changes_document(
            xml.AddressBookChanges(self.now(), tuple(updated), tuple(removed))
        )

    def _contact_changes(self, session: SessionRecord, p: _Params, *, first: bool) -> _Element:
        me = session.user
        last_sync = p.int("lastSync")
        book_param = p.get("bookId")
        if book_param in (None, ""):
            books = [USERS_BOOK, *sorted(self.subscriptions.get(me.id, {}))]
        else:
            books = [int(book_param or 0)]
        updated: list[xml.Contact] = []
        removed: list[xml.RemovedContact] = []
        for book_id in books:
            if book_id == USERS_BOOK:
                for u in self._visible_users(me):
                    gone = u.archived or u.hidden
                    if u.changed < last_sync:
                        continue
                    if gone:
                        removed.append(xml.RemovedContact(u.id, USERS_BOOK))
                    else:
                        updated.append(self._users_book_contact(u))
                continue
            self._book_for(session, book_id, write=False)
            for stored in self.contacts.values():
                if stored.book == book_id and stored.timeupdate >= last_sync:
                    updated.append(stored.contact)
            for bid, uid, ts in self.deleted_contacts:
                if bid == book_id and ts >= last_sync:
                    removed.append(xml.RemovedContact(uid, bid))
        if first:
            removed = []
        return xml.contact_changes_document(
            xml.ContactChanges(self.now(), tuple(updated), tuple(removed))
        )

    def _get_contact(self, session: SessionRecord, p: _Params) -> _Element:
        book_id, cid = p.int("bookId"), p.int("id")
        if book_id == USERS_BOOK:
            user = self.users.get(cid)
            if user is None or user.domain != session.user.domain or user.archived:
                raise Fault(f"contact {cid} not found", CONTACT_NOT_FOUND)
            return xml.write_contact(None, self._users_book_contact(user))
        self._book_for(session, book_id, write=False)
        stored = self.contacts.get(cid)
        if stored is None or stored.book != book_id:
            raise Fault(f"contact {cid} not found", CONTACT_NOT_FOUND)
        return xml.write_contact(None, stored.contact)

    def _parse_contact_param(self, p: _Params) -> xml.Contact:
        try:
            return xml.parse_single_contact(
                xml.parse_document(p.require("contact").encode("utf-8"))
            )
        except xml.ObmXmlError as e:
            raise Fault(f"cannot parse contact: {e}") from None

    def _store_contact(self, session: SessionRecord, p: _Params, *, mode: str) -> _Element:
        book_id = p.int("bookId")
        self._book_for(session, book_id, write=True)
        contact = self._parse_contact_param(p)
        now = self.now()
        client_id = p.get("clientId")
        create = contact.uid is None if mode == "store" else mode == "create"
        if create:
            if client_id and client_id in self.committed_contacts:
                known = self.contacts.get(self.committed_contacts[client_id])
                if known is not None:
                    return xml.write_contact(None, known.contact)
            uid = self._next_id()
            stored = StoredContact(
                attrs.evolve(contact, uid=uid, addressbook_id=book_id), book_id, now, now
            )
            self.contacts[uid] = stored
            if client_id:
                self.committed_contacts[client_id] = uid
            return xml.write_contact(None, stored.contact)
        existing = self.contacts.get(contact.uid or 0)
        if existing is None or existing.book != book_id:
            raise Fault(f"contact {contact.uid} not found", CONTACT_NOT_FOUND)
        if mode == "store":
            # storeContact "merges and updates" (research §3): what the request leaves
            # empty keeps its stored value.
            kept = {
                f.name: getattr(existing.contact, f.name)
                for f in attrs.fields(xml.Contact)
                if getattr(contact, f.name) in (None, ())
            }
            contact = attrs.evolve(contact, **kept)
        existing.contact = attrs.evolve(contact, addressbook_id=book_id)
        existing.timeupdate = now
        return xml.write_contact(None, existing.contact)

    def _remove_contact(self, session: SessionRecord, p: _Params) -> _Element:
        book_id, cid = p.int("bookId"), p.int("id")
        self._book_for(session, book_id, write=True)
        stored = self.contacts.get(cid)
        if stored is None or stored.book != book_id:
            raise Fault(f"contact {cid} not found", CONTACT_NOT_FOUND)
        del self.contacts[cid]
        self.deleted_contacts.append((book_id, cid, self.now()))
        return xml.write_contact(None, stored.contact)

    def _list_all_books(self, session: SessionRecord, p: _Params) -> _Element:
        me = session.user
        books = [
            xml.AddressBook(b.id, b.name, b.owner.id != me.id)
            for b in sorted(self.books.values(), key=lambda b: b.id)
            if b.id in self.subscriptions.get(me.id, {})
        ]
        books.append(xml.AddressBook(USERS_BOOK, "users", True))
        return xml.books_document(books)

    def _search(self, session: SessionRecord, p: _Params) -> _Element:
        # The research marks this a guess: a case-insensitive substring match over names
        # and e-mails of the subscribed books and the users book.
        query = (p.get("query") or "").lower()
        limit, offset = p.int("limit"), p.int("offset")
        me = session.user
        candidates = [
            s.contact for s in self.contacts.values() if s.book in self.subscriptions.get(me.id, {})
        ] + [self._users_book_contact(u) for u in self._visible_users(me) if not u.archived]

        def text(c: xml.Contact) -> str:
            return " ".join(
                [c.first or "", c.last or "", c.commonname or ""] + [e.value for e in c.emails]
            ).lower()

        found = [c for c in candidates if query in text(c)]
        return xml.contacts_document(found[offset : offset + limit if limit else None])


class _Params:
    """Form parameters the way ``getParameter`` reads them (first value)."""

    def __init__(self, params: Mapping[str, list[str]]) -> None:
        self._params = params

    def get(self, name: str) -> str | None:
        values = self._params.get(name)
        return values[0] if values else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise Fault(f"missing parameter {name}")
        return value

    def int(self, name: str) -> int:
        # DateHelper/parseInt: "", "null" or missing read as 0.
        value = self.get(name)
        if value in (None, "", "null"):
            return 0
        try:
            return int(value or 0)
        except ValueError:
            raise Fault(f"{name}: not a number {value!r}") from None

    def bool(self, name: str) -> bool:
        return (self.get(name) or "").lower() == "true"


_CALENDAR: dict[str, Any] = {
    "getSync": lambda d, s, p: d._sync(s, p, first=False, by_date=False),
    "getFirstSync": lambda d, s, p: d._sync(s, p, first=True, by_date=False),
    "getSyncEventDate": lambda d, s, p: d._sync(s, p, first=False, by_date=True),
    "getFirstSyncEventDate": lambda d, s, p: d._sync(s, p, first=True, by_date=True),
    "getEventFromId": ObmSyncDouble._get_event_from_id,
    "getEventFromExtId": ObmSyncDouble._get_event_from_ext_id,
    "getEventObmIdFromExtId": ObmSyncDouble._get_obm_id,
    "createEvent": ObmSyncDouble._create_event,
    "modifyEvent": ObmSyncDouble._modify_event,
    "removeEvent": ObmSyncDouble._remove_event,
    "changeParticipationState": ObmSyncDouble._change_participation,
}

_BOOK: dict[str, Any] = {
    "listAddressBooksChanged": ObmSyncDouble._list_books_changed,
    "listAllChanges": lambda d, s, p: d._contact_changes(s, p, first=False),
    "firstListAllChanges": lambda d, s, p: d._contact_changes(s, p, first=True),
    "getContactFromId": ObmSyncDouble._get_contact,
    "storeContact": lambda d, s, p: d._store_contact(s, p, mode="store"),
    "createContact": lambda d, s, p: d._store_contact(s, p, mode="create"),
    "modifyContact": lambda d, s, p: d._store_contact(s, p, mode="modify"),
    "removeContact": ObmSyncDouble._remove_contact,
    "listAllBooks": ObmSyncDouble._list_all_books,
    "searchContactsInSynchronizedAddressBooks": ObmSyncDouble._search,
}


def _form(body: bytes | None, query: str) -> dict[str, list[str]]:
    params = parse_qs(query, keep_blank_values=True)
    if body:
        for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items():
            params.setdefault(k, []).extend(v)
    return params


class InMemoryTransport:
    """An `HttpTransport` that hands requests straight to the double (unit tests)."""

    def __init__(self, double: ObmSyncDouble) -> None:
        self.double = double
        #: Set to an exception to make every request fail with it (server down).
        self.failure: Exception | None = None

    async def request(
        self,
        method: bytes,
        url: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout_seconds: float,
    ) -> HttpResponse:
        if self.failure is not None:
            raise self.failure
        parts = urlsplit(url)
        code, ctype, data = self.double.dispatch(parts.path, _form(body, parts.query))
        return HttpResponse(code, data, ctype)


class _Resource(resource.Resource):
    isLeaf = True

    def __init__(self, double: ObmSyncDouble) -> None:
        super().__init__()
        self.double = double

    def render(self, request: Any) -> bytes:
        args: dict[str, list[str]] = {}
        for k, values in (request.args or {}).items():
            args[k.decode("utf-8")] = [v.decode("utf-8") for v in values]
        code, ctype, body = self.double.dispatch(request.path.decode("utf-8"), args)
        request.setResponseCode(code)
        request.setHeader(b"content-type", ctype.encode("ascii"))
        return body


def events_of(changes: xml.EventChanges) -> Iterable[str | None]:
    """Titles of the updated events (test helper)."""
    return [e.title for e in changes.updated]
