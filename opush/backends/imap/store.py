"""`MailBackend` / `MailStore` over IMAP (see opush.backends.interfaces for the contract)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import attrs

from opush.backends.imap import parser as p
from opush.backends.imap.pool import Connector, ImapPool, ImapSettings, tcp_connector
from opush.backends.imap.protocol import ImapProtocol, Literal, Result, check
from opush.backends.imap.utf7 import decode_mailbox, encode_mailbox
from opush.backends.imap.watch import start_watch
from opush.backends.interfaces import (
    ChangeTrackingUnsupported,
    Credentials,
    ExpungePolicy,
    Folder,
    FolderChanges,
    FolderStatus,
    MailBackend,
    MailBackendUnavailable,
    MailboxEvent,
    MailboxNotFound,
    MailError,
    MailStore,
    MessageFlags,
    MessageNotFound,
    MessageSummary,
    MessageTooLarge,
    SearchQuery,
    SpecialUse,
    SyncPoint,
    UserIdentity,
    Watch,
)
from opush.log import logger

log = logger("IMAP.COMMAND")
T = TypeVar("T")

#: Keep one UID FETCH command line below this (servers accept more; 8 KiB is safe).
MAX_SET_CHARS = 8000

_ROLE_BY_ATTRIBUTE = {
    "\\drafts": SpecialUse.DRAFTS,
    "\\sent": SpecialUse.SENT,
    "\\trash": SpecialUse.TRASH,
    "\\junk": SpecialUse.JUNK,
    "\\spam": SpecialUse.JUNK,  # XLIST
    "\\archive": SpecialUse.ARCHIVE,
    "\\all": SpecialUse.ALL,
    "\\allmail": SpecialUse.ALL,  # XLIST
    "\\flagged": SpecialUse.FLAGGED,
    "\\starred": SpecialUse.FLAGGED,  # XLIST
}


def mailbox_arg(name: str) -> bytes | Literal:
    """A unicode mailbox name as a command argument (modified UTF-7, quoted)."""
    if name.upper() == "INBOX":
        name = "INBOX"
    wire = encode_mailbox(name)
    if any(c in wire for c in "\r\n\x00"):
        raise ValueError(f"invalid mailbox name {name!r}")
    return p.quote(wire)


def _wire(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else encode_mailbox(name)


def _decode_name(token: p.Token) -> str:
    raw = p.text(token) or ""
    try:
        name = decode_mailbox(raw)
    except ValueError:
        name = raw  # not valid modified UTF-7: show what the server sent
    return "INBOX" if name.upper() == "INBOX" else name


def _string_arg(value: str) -> bytes | Literal:
    raw = value.encode("utf-8")
    if raw.isascii() and not any(c in raw for c in b"\r\n\x00"):
        return p.quote(raw)
    return Literal(raw)


@attrs.frozen
class SelectInfo:
    uidvalidity: int
    uidnext: int
    highestmodseq: int | None
    exists: int

    @classmethod
    def from_result(cls, result: Result) -> SelectInfo:
        values: dict[str, int] = {}
        nomodseq = False
        for code in result.codes():
            name = code[0] if code and isinstance(code[0], str) else None
            if name in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ") and len(code) > 1:
                values[name] = p.number(code[1])
            elif name == "NOMODSEQ":
                nomodseq = True
        exists = 0
        for r in result.of_kind("EXISTS"):
            exists = r.number or 0
        if "UIDVALIDITY" not in values:
            raise MailError("SELECT response without UIDVALIDITY")
        return cls(
            uidvalidity=values["UIDVALIDITY"],
            uidnext=values.get("UIDNEXT", 0),
            highestmodseq=None if nomodseq else values.get("HIGHESTMODSEQ"),
            exists=exists,
        )


def _chunks(uids: Sequence[int]) -> list[str]:
    """Compact UID sets, each short enough for one command line."""
    ordered = sorted(set(uids))
    if not ordered:
        return []
    whole = p.compact_set(ordered)
    if len(whole) <= MAX_SET_CHARS or len(ordered) == 1:
        return [whole]
    half = len(ordered) // 2
    return _chunks(ordered[:half]) + _chunks(ordered[half:])


def _message_flags(item: dict[str, p.Token]) -> MessageFlags | None:
    if "UID" not in item:
        return None  # an unsolicited FETCH without UID (server without QRESYNC)
    return MessageFlags(
        uid=p.number(item["UID"]),
        flags=p.flags(item.get("FLAGS")),
        modseq=p.number(item["MODSEQ"]) if "MODSEQ" in item else None,
        internaldate=(
            p.parse_internaldate(item["INTERNALDATE"]) if "INTERNALDATE" in item else None
        ),
    )


class ImapMailBackend:
    """The MailBackend: one pool of IMAP sessions for every user.

    `drafts`/`sent`/`trash` are mail_conf.ini's imap.mailbox.* names (they win over the
    server's SPECIAL-USE attributes when such a folder exists, Opush OP-226).
    `deletes_as_moves`: a delete moves to Trash (EAS DeletesAsMoves default) unless the
    caller says otherwise; `expunge_policy` mirrors imap.expungePolicy.  `use_notify=False`
    makes push use IDLE even where the server offers NOTIFY.
    """

    def __init__(
        self,
        reactor: Any,
        settings: ImapSettings,
        *,
        drafts: str = "Drafts",
        sent: str = "Sent",
        trash: str = "Trash",
        notes: str = "Notes",
        expunge_policy: ExpungePolicy = ExpungePolicy.ALWAYS,
        use_notify: bool = True,
        connector: Connector | None = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings
        self.configured_roles = {
            SpecialUse.DRAFTS: drafts,
            SpecialUse.SENT: sent,
            SpecialUse.TRASH: trash,
            SpecialUse.NOTES: notes,
        }
        self.expunge_policy = expunge_policy
        self.use_notify = use_notify
        self.pool = ImapPool(reactor, settings, connector or tcp_connector(reactor, settings))

    def imap_login(self, user: UserIdentity) -> str:
        """imap.loginWithDomain: `user@domain` or bare `user`."""
        return user.login_at_domain if self.settings.login_with_domain else user.login

    def store(self, credentials: Credentials) -> ImapMailStore:
        return ImapMailStore(self, self.imap_login(credentials.user), credentials.password)

    async def shutdown(self) -> None:
        await self.pool.shutdown()


class ImapMailStore:
    """One user's mailbox.  Each call borrows a pooled session and gives it back."""

    def __init__(self, backend: ImapMailBackend, login: str, password: str) -> None:
        self.backend = backend
        self.login = login
        self._password = password

    def __repr__(self) -> str:
        return f"<ImapMailStore {self.login}>"

    async def _with(self, fn: Callable[[ImapProtocol], Any], idempotent: bool = False) -> Any:
        """Run `fn` on a pooled session.  A read that fails because a *reused* session
        turned out dead (dropped while idle without the pool noticing) is retried once on a
        fresh session; anything else propagates."""
        for attempt in (1, 2):
            conn = await self.backend.pool.acquire(self.login, self._password)
            reusable = False
            try:
                result = await fn(conn)
                reusable = True
                return result
            except MailError:
                reusable = True  # a NO/BAD leaves the session usable
                raise
            except MailBackendUnavailable as exc:
                if attempt == 1 and idempotent and conn.reused:
                    log.info(
                        "stale IMAP session for {login} ({error}): retrying",
                        login=self.login,
                        error=exc,
                    )
                    continue
                raise
            finally:
                self.backend.pool.release(conn, reusable=reusable and conn.connected_)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ helpers

    async def _select(
        self, conn: ImapProtocol, folder: str, force: bool = False
    ) -> SelectInfo | None:
        wire = _wire(folder)
        if not force and conn.selected == wire:
            # The session's view may predate changes made elsewhere (Dovecot answers the
            # first command after a delivery from the old view): NOOP brings it up to date.
            check(await conn.command(b"NOOP"), "NOOP")
            if conn.selected == wire:
                return None
        args: list[bytes | Literal] = [b"SELECT", mailbox_arg(folder)]
        if "CONDSTORE" in conn.capabilities and "QRESYNC" not in conn.enabled:
            args.append(b"(CONDSTORE)")
        conn.selected = None
        result = await conn.command(*args)
        if result.tagged.kind != "OK":
            if result.tagged.code_name in (None, "NONEXISTENT"):
                raise MailboxNotFound(f"SELECT {folder}: {result.tagged.text}")
            check(result, f"SELECT {folder}")
        conn.selected = wire
        conn.selected_readonly = result.tagged.code_name == "READ-ONLY"
        return SelectInfo.from_result(result)

    async def _uid_fetch(
        self,
        conn: ImapProtocol,
        uidset: str,
        items: bytes,
        modifiers: bytes | None = None,
        literal_limit: int | None = None,
    ) -> tuple[dict[int, dict[str, p.Token]], list[str]]:
        args: list[bytes | Literal] = [b"UID FETCH", uidset.encode(), items]
        if modifiers:
            args.append(modifiers)
        kwargs: dict[str, Any] = {}
        if literal_limit is not None:
            kwargs["literal_limit"] = literal_limit
        result = check(await conn.command(*args, **kwargs), "UID FETCH")
        merged: dict[int, dict[str, p.Token]] = {}
        vanished: list[str] = []
        for r in result.untagged:
            if r.kind == "FETCH":
                item = p.fetch_items(r.data)
                if "UID" in item:
                    merged.setdefault(p.number(item["UID"]), {}).update(item)
            elif r.kind == "VANISHED":
                vanished.extend(t for t in r.data if isinstance(t, str))
        return merged, vanished

    async def _fetch_flags(
        self,
        conn: ImapProtocol,
        items: bytes,
        modifiers: bytes | None = None,
        uids: bytes = b"1:*",
    ) -> tuple[dict[int, MessageFlags], list[str]]:
        """UID FETCH of flags (of `uids`), converted while the answer streams in (bounded memory
        for big folders: one small record per message, no response objects kept)."""
        found: dict[int, MessageFlags] = {}
        vanished: list[str] = []

        def consume(r: p.Response) -> bool:
            if r.kind == "FETCH":
                m = _message_flags(p.fetch_items(r.data))
                if m is not None:
                    previous = found.get(m.uid)
                    if previous is None or m.internaldate is not None:
                        found[m.uid] = m
                return True
            if r.kind == "VANISHED":
                vanished.extend(t for t in r.data if isinstance(t, str))
                return True
            return False

        args: list[bytes | Literal] = [b"UID FETCH", uids, items]
        if modifiers:
            args.append(modifiers)
        check(await conn.command(*args, on_untagged=consume), "UID FETCH")
        return found, vanished

    def _expunge_args(self, conn: ImapProtocol, uids: Sequence[int]) -> list[list[bytes]]:
        if self.backend.expunge_policy is ExpungePolicy.NEVER:
            return []
        if "UIDPLUS" in conn.capabilities:
            return [[b"UID EXPUNGE", s.encode()] for s in _chunks(uids)]
        return [[b"EXPUNGE"]]

    # ------------------------------------------------------------------ capabilities

    async def capabilities(self) -> frozenset[str]:
        async def run(conn: ImapProtocol) -> frozenset[str]:
            return conn.capabilities

        return cast(frozenset[str], await self._with(run, idempotent=True))

    # ------------------------------------------------------------------ folders

    async def list_folders(self) -> list[Folder]:
        async def run(conn: ImapProtocol) -> list[Folder]:
            caps = conn.capabilities
            subscribed: set[str] | None = None
            if "LIST-EXTENDED" in caps:
                ret = (
                    b"RETURN (SUBSCRIBED SPECIAL-USE)"
                    if "SPECIAL-USE" in caps
                    else b"RETURN (SUBSCRIBED)"
                )
                listed = check(await conn.command(b'LIST "" "*"', ret), "LIST").of_kind("LIST")
            else:
                use_xlist = "XLIST" in caps and "SPECIAL-USE" not in caps
                cmd = b'XLIST "" "*"' if use_xlist else b'LIST "" "*"'
                listed = check(await conn.command(cmd), "LIST").of_kind(
                    "XLIST" if use_xlist else "LIST"
                )
                lsub = check(await conn.command(b'LSUB "" "*"'), "LSUB").of_kind("LSUB")
                subscribed = {_decode_name(r.data[2]) for r in lsub if len(r.data) >= 3}
            return self._folders(listed, subscribed)

        return cast(list[Folder], await self._with(run, idempotent=True))

    def _folders(self, listed: list[p.Response], subscribed: set[str] | None) -> list[Folder]:
        folders: list[Folder] = []
        for r in listed:
            if len(r.data) < 3:
                continue
            attributes = frozenset(t for t in p.as_list(r.data[0]) if isinstance(t, str))
            lowered = {a.lower() for a in attributes}
            # \NonExistent entries are kept: they are parents of listed folders
            # (Folder.selectable is False for them).
            sep = p.text(r.data[1])
            name = _decode_name(r.data[2])
            role: SpecialUse | None = SpecialUse.INBOX if name == "INBOX" else None
            for attr in lowered:
                role = role or _ROLE_BY_ATTRIBUTE.get(attr)
            is_subscribed = (
                "\\subscribed" in lowered if subscribed is None else name in subscribed
            ) or name == "INBOX"
            folders.append(
                Folder(
                    name=name,
                    separator=sep,
                    attributes=attributes,
                    special_use=role,
                    subscribed=is_subscribed,
                )
            )
        names = {f.name for f in folders}
        for role, configured in self.backend.configured_roles.items():
            target = configured if configured in names else None
            if target is None:
                continue
            folders = [
                attrs.evolve(f, special_use=role)
                if f.name == target
                else (attrs.evolve(f, special_use=None) if f.special_use is role else f)
                for f in folders
            ]
        return folders

    async def create_folder(self, name: str, subscribe: bool = True) -> None:
        async def run(conn: ImapProtocol) -> None:
            check(await conn.command(b"CREATE", mailbox_arg(name)), f"CREATE {name}")
            if subscribe:
                check(await conn.command(b"SUBSCRIBE", mailbox_arg(name)), f"SUBSCRIBE {name}")

        await self._with(run)

    async def rename_folder(self, old: str, new: str) -> None:
        async def run(conn: ImapProtocol) -> None:
            if conn.selected in (_wire(old), _wire(new)):
                conn.selected = None
            result = await conn.command(b"RENAME", mailbox_arg(old), mailbox_arg(new))
            if result.tagged.kind == "NO" and result.tagged.code_name is None:
                # Servers without RFC 5530 codes: tell "missing" from other refusals.
                if not await self._exists(conn, old):
                    raise MailboxNotFound(f"RENAME {old}: {result.tagged.text}")
            check(result, f"RENAME {old}")
            await conn.command(b"UNSUBSCRIBE", mailbox_arg(old))
            await conn.command(b"SUBSCRIBE", mailbox_arg(new))

        await self._with(run)

    async def _exists(self, conn: ImapProtocol, name: str) -> bool:
        result = check(await conn.command(b'LIST ""', mailbox_arg(name)), "LIST")
        return bool(result.of_kind("LIST"))

    async def delete_folder(self, name: str) -> None:
        async def run(conn: ImapProtocol) -> None:
            if conn.selected == _wire(name):
                # Some servers refuse to delete the selected mailbox.
                if "UNSELECT" in conn.capabilities:
                    await conn.command(b"UNSELECT")
                conn.selected = None
            result = await conn.command(b"DELETE", mailbox_arg(name))
            if result.tagged.kind == "NO" and result.tagged.code_name is None:
                if not await self._exists(conn, name):
                    raise MailboxNotFound(f"DELETE {name}: {result.tagged.text}")
            check(result, f"DELETE {name}")
            await conn.command(b"UNSUBSCRIBE", mailbox_arg(name))

        await self._with(run)

    async def subscribe(self, name: str) -> None:
        async def run(conn: ImapProtocol) -> None:
            check(await conn.command(b"SUBSCRIBE", mailbox_arg(name)), f"SUBSCRIBE {name}")

        await self._with(run)

    async def unsubscribe(self, name: str) -> None:
        async def run(conn: ImapProtocol) -> None:
            check(await conn.command(b"UNSUBSCRIBE", mailbox_arg(name)), f"UNSUBSCRIBE {name}")

        await self._with(run)

    # ------------------------------------------------------------------ change detection

    async def status(self, folder: str) -> FolderStatus:
        async def run(conn: ImapProtocol) -> FolderStatus:
            return await self._status(conn, folder)

        return cast(FolderStatus, await self._with(run, idempotent=True))

    async def _status(self, conn: ImapProtocol, folder: str) -> FolderStatus:
        if conn.selected == _wire(folder):
            # STATUS of the selected mailbox answers from the session's view (Dovecot): a new
            # delivery, or the folder deleted and recreated elsewhere (new UIDVALIDITY), would
            # go unnoticed. Leave it (RFC 3691 UNSELECT: no expunge) or at least refresh it.
            if "UNSELECT" in conn.capabilities:
                check(await conn.command(b"UNSELECT"), "UNSELECT")
                conn.selected = None
            else:
                check(await conn.command(b"NOOP"), "NOOP")
        items = b"(MESSAGES UIDNEXT UIDVALIDITY UNSEEN"
        if "CONDSTORE" in conn.capabilities:
            items += b" HIGHESTMODSEQ"
        result = await conn.command(b"STATUS", mailbox_arg(folder), items + b")")
        if result.tagged.kind == "NO" and result.tagged.code_name is None:
            raise MailboxNotFound(f"STATUS {folder}: {result.tagged.text}")
        check(result, f"STATUS {folder}")
        values: dict[str, int] = {}
        for r in result.of_kind("STATUS"):
            pairs = p.as_list(r.data[1]) if len(r.data) > 1 else []
            for i in range(0, len(pairs) - 1, 2):
                key = p.text(pairs[i])
                if key:
                    values[key.upper()] = p.number(pairs[i + 1])
        if "UIDVALIDITY" not in values:
            raise MailError(f"STATUS {folder}: no UIDVALIDITY in the answer")
        modseq = values.get("HIGHESTMODSEQ")
        return FolderStatus(
            uidvalidity=values["UIDVALIDITY"],
            uidnext=values.get("UIDNEXT", 0),
            highestmodseq=modseq if modseq else None,
            messages=values.get("MESSAGES", 0),
            unseen=values.get("UNSEEN", 0),
        )

    async def changes_since(
        self,
        folder: str,
        point: SyncPoint | None,
        known: Mapping[int, frozenset[str]] | None = None,
    ) -> FolderChanges:
        async def run(conn: ImapProtocol) -> FolderChanges:
            condstore = "CONDSTORE" in conn.enabled or "CONDSTORE" in conn.capabilities
            if condstore and point is not None and point.highestmodseq is not None:
                # Fast path, the common Sync/Ping case: STATUS is far cheaper than SELECT on
                # a big folder (Dovecot 20k messages: ~1 ms vs ~40 ms).
                st = await self._status(conn, folder)
                if (st.uidvalidity, st.highestmodseq) == (
                    point.uidvalidity,
                    point.highestmodseq,
                ):
                    method = "qresync" if "QRESYNC" in conn.enabled else "condstore"
                    return FolderChanges(
                        SyncPoint(st.uidvalidity, st.uidnext, st.highestmodseq),
                        (),
                        frozenset(),
                        method=method,
                    )
            # Something changed: a fresh SELECT gives a consistent view to fetch from.
            info = await self._select(conn, folder, force=True)
            assert info is not None
            modseq = info.highestmodseq if condstore else None
            now = SyncPoint(info.uidvalidity, info.uidnext, modseq)
            items = (
                b"(FLAGS INTERNALDATE MODSEQ)" if modseq is not None else b"(FLAGS INTERNALDATE)"
            )

            async def full(reset: bool) -> FolderChanges:
                listing: list[MessageFlags] = []
                if info.exists:
                    fetched, _ = await self._fetch_flags(conn, items)
                    listing = sorted(fetched.values(), key=lambda m: m.uid)
                return FolderChanges(
                    point=now,
                    changed=tuple(listing),
                    vanished=frozenset(),
                    uidvalidity_changed=reset,
                    method="full",
                )

            if point is None:
                return await full(reset=False)
            if point.uidvalidity != info.uidvalidity:
                log.info(
                    "UIDVALIDITY of {folder} changed {old} -> {new}: full resync",
                    folder=folder,
                    old=point.uidvalidity,
                    new=info.uidvalidity,
                )
                return await full(reset=True)
            if modseq is not None and point.highestmodseq is not None:
                if modseq < point.highestmodseq:
                    log.warn(
                        "HIGHESTMODSEQ of {folder} went backwards ({old} -> {new}): full resync",
                        folder=folder,
                        old=point.highestmodseq,
                        new=modseq,
                    )
                    return await full(reset=True)
                method = "qresync" if "QRESYNC" in conn.enabled else "condstore"
                if modseq == point.highestmodseq:
                    return FolderChanges(now, (), frozenset(), method=method)
                # Even for an emptied folder: the VANISHED (EARLIER) answer lists the expunges.
                modifier = b"(CHANGEDSINCE %d%s)" % (
                    point.highestmodseq,
                    b" VANISHED" if method == "qresync" else b"",
                )
                # VANISHED covers only the UIDs of the fetched set (RFC 7162 3.2.6), and in
                # "1:*" the * is the highest UID still present (RFC 3501 6.4.8): Cyrus then
                # omits expunges above it (Dovecot does not).  Name every UID below UIDNEXT.
                uids = b"1:%d" % (info.uidnext - 1) if info.uidnext > 1 else b"1:*"
                fetched, vanished_specs = await self._fetch_flags(conn, items, modifier, uids)
                changed = sorted(fetched.values(), key=lambda m: m.uid)
                if method == "qresync":
                    gone: set[int] = set()
                    for spec in vanished_specs:
                        gone |= p.parse_sequence_set_bounded(spec, point.uidnext)
                elif known is None:
                    raise ChangeTrackingUnsupported(
                        "server has CONDSTORE without QRESYNC: pass the known uids"
                    )
                else:
                    gone = set(known) - await self._existing(conn, list(known))
                if known is not None:
                    gone &= set(known)
                gone -= {m.uid for m in changed}
                return FolderChanges(now, tuple(changed), frozenset(gone), method=method)
            if known is None:
                raise ChangeTrackingUnsupported(
                    "server has no CONDSTORE: pass the uids and flags seen last time"
                )
            current: dict[int, MessageFlags] = {}
            if info.exists:
                current, _ = await self._fetch_flags(conn, items)
            changed_plain = sorted(
                (m for uid, m in current.items() if known.get(uid) != m.flags), key=lambda m: m.uid
            )
            return FolderChanges(
                now,
                tuple(changed_plain),
                frozenset(set(known) - set(current)),
                method="diff",
            )

        return cast(FolderChanges, await self._with(run, idempotent=True))

    async def _existing(self, conn: ImapProtocol, uids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for chunk in _chunks(uids):
            result = check(await conn.command(b"UID SEARCH UID", chunk.encode()), "UID SEARCH")
            for r in result.of_kind("SEARCH"):
                found.update(p.number(t) for t in r.data if isinstance(t, str) and t.isdigit())
        return found

    # ------------------------------------------------------------------ messages

    async def search(self, folder: str, query: SearchQuery) -> list[int]:
        async def run(conn: ImapProtocol) -> list[int]:
            return await self._search(conn, folder, query)

        return cast(list[int], await self._with(run, idempotent=True))

    async def search_folders(
        self, folders: Sequence[str], query: SearchQuery
    ) -> dict[str, list[int]]:
        """The same search in several folders over one session (EAS DeepTraversal).
        Folders that vanished meanwhile are left out."""

        async def run(conn: ImapProtocol) -> dict[str, list[int]]:
            out: dict[str, list[int]] = {}
            for folder in folders:
                try:
                    out[folder] = await self._search(conn, folder, query)
                except MailboxNotFound:
                    continue
            return out

        return cast(dict[str, list[int]], await self._with(run, idempotent=True))

    async def _search(self, conn: ImapProtocol, folder: str, query: SearchQuery) -> list[int]:
        await self._select(conn, folder)
        args: list[bytes | Literal] = [b"UID SEARCH"]
        criteria: list[bytes | Literal] = []
        if query.undeleted:
            criteria.append(b"UNDELETED")
        if query.since is not None:
            criteria += [b"SINCE", p.format_search_date(query.since).encode()]
        if query.before is not None:
            criteria += [b"BEFORE", p.format_search_date(query.before).encode()]
        utf8 = False
        if query.text:
            arg = _string_arg(query.text)
            utf8 = utf8 or isinstance(arg, Literal)
            criteria += [b"TEXT", arg]
        if query.subject:
            arg = _string_arg(query.subject)
            utf8 = utf8 or isinstance(arg, Literal)
            criteria += [b"SUBJECT", arg]
        if query.thread:
            msgid = _string_arg(query.thread)
            criteria += [b"OR OR HEADER MESSAGE-ID", msgid, b"HEADER REFERENCES", msgid]
            criteria += [b"HEADER IN-REPLY-TO", msgid]
        if utf8:
            args.append(b"CHARSET UTF-8")
        result = check(await conn.command(*args, *(criteria or [b"ALL"])), "UID SEARCH")
        uids: set[int] = set()
        for r in result.of_kind("SEARCH"):
            uids.update(int(t) for t in r.data if isinstance(t, str) and t.isdigit())
        return sorted(uids)

    async def fetch_summaries(
        self, folder: str, uids: Sequence[int], headers: bool = False
    ) -> list[MessageSummary]:
        async def run(conn: ImapProtocol) -> list[MessageSummary]:
            await self._select(conn, folder)
            items = b"(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE"
            if "CONDSTORE" in conn.capabilities:
                items += b" MODSEQ"
            if headers:
                items += b" BODY.PEEK[HEADER]"
            items += b")"
            merged: dict[int, dict[str, p.Token]] = {}
            for chunk in _chunks(uids):
                fetched, _ = await self._uid_fetch(conn, chunk, items)
                merged.update(fetched)
            out: list[MessageSummary] = []
            for uid in uids:
                item = merged.get(uid)
                if item is None or "ENVELOPE" not in item:
                    continue
                header = item.get("BODY[HEADER]")
                out.append(
                    MessageSummary(
                        uid=uid,
                        flags=p.flags(item.get("FLAGS")),
                        modseq=p.number(item["MODSEQ"]) if "MODSEQ" in item else None,
                        internaldate=p.parse_internaldate(item["INTERNALDATE"])
                        if "INTERNALDATE" in item
                        else None,
                        size=p.number(item["RFC822.SIZE"]) if "RFC822.SIZE" in item else None,
                        envelope=p.parse_envelope(item["ENVELOPE"]),
                        body=p.parse_bodystructure(item["BODYSTRUCTURE"])
                        if "BODYSTRUCTURE" in item
                        else None,
                        headers=header if isinstance(header, bytes) else None,
                    )
                )
            return out

        return cast(list[MessageSummary], await self._with(run, idempotent=True))

    async def fetch_body(
        self,
        folder: str,
        uid: int,
        section: str = "",
        partial: tuple[int, int] | None = None,
        max_size: int | None = None,
    ) -> bytes:
        if any(c in section for c in " []<>\r\n"):
            raise ValueError(f"bad body section {section!r}")

        async def run(conn: ImapProtocol) -> bytes:
            await self._select(conn, folder)
            spec = f"BODY.PEEK[{section}]"
            if partial is not None:
                spec += f"<{partial[0]}.{partial[1]}>"
            kwargs: dict[str, Any] = {}
            if max_size is not None:
                kwargs["literal_limit"] = max_size
            fetched, _ = await self._uid_fetch(conn, str(uid), f"(UID {spec})".encode(), **kwargs)
            item = fetched.get(uid)
            key = f"BODY[{section.upper()}]"
            if item is None or key not in item:
                raise MessageNotFound(f"no message {uid} in {folder}")
            value = item[key]
            if isinstance(value, p.TooLarge):
                raise MessageTooLarge(f"message {uid} part {section!r} is {value.size} bytes")
            if value is None:
                return b""
            if isinstance(value, str):
                return value.encode("utf-8", "surrogateescape")
            if not isinstance(value, bytes):
                raise MailError(f"unexpected body value for {uid}")
            return value

        return cast(bytes, await self._with(run, idempotent=True))

    async def set_flags(
        self,
        folder: str,
        uids: Sequence[int],
        add: Iterable[str] = (),
        remove: Iterable[str] = (),
    ) -> None:
        to_add = [p.check_flag(f) for f in add]
        to_remove = [p.check_flag(f) for f in remove]
        if not uids or not (to_add or to_remove):
            return

        async def run(conn: ImapProtocol) -> None:
            await self._select(conn, folder)
            for chunk in _chunks(uids):
                for op, flags in ((b"+FLAGS.SILENT", to_add), (b"-FLAGS.SILENT", to_remove)):
                    if flags:
                        listed = b"(" + " ".join(flags).encode() + b")"
                        check(
                            await conn.command(b"UID STORE", chunk.encode(), op, listed),
                            "UID STORE",
                        )

        await self._with(run, idempotent=True)

    async def move(self, folder: str, uids: Sequence[int], destination: str) -> dict[int, int]:
        if not uids:
            return {}

        async def run(conn: ImapProtocol) -> dict[int, int]:
            await self._select(conn, folder)
            mapping: dict[int, int] = {}
            for chunk in _chunks(uids):
                if "MOVE" in conn.capabilities:
                    result = await conn.command(
                        b"UID MOVE", chunk.encode(), mailbox_arg(destination)
                    )
                    _check_copy(result, destination)
                else:
                    result = await conn.command(
                        b"UID COPY", chunk.encode(), mailbox_arg(destination)
                    )
                    _check_copy(result, destination)
                    check(
                        await conn.command(
                            b"UID STORE", chunk.encode(), b"+FLAGS.SILENT (\\Deleted)"
                        ),
                        "UID STORE",
                    )
                    if "UIDPLUS" in conn.capabilities:
                        check(await conn.command(b"UID EXPUNGE", chunk.encode()), "UID EXPUNGE")
                    elif self.backend.expunge_policy is ExpungePolicy.ALWAYS:
                        check(await conn.command(b"EXPUNGE"), "EXPUNGE")
                mapping.update(_copyuid(result))
            return mapping

        return cast(dict[int, int], await self._with(run))

    async def delete(self, folder: str, uids: Sequence[int], move_to_trash: bool = True) -> None:
        if not uids:
            return
        trash = self.backend.configured_roles[SpecialUse.TRASH]
        if move_to_trash and _wire(folder) != _wire(trash):
            try:
                await self.move(folder, uids, trash)
                return
            except MailError as refused:
                folders = await self.list_folders()
                # Without altnamespace, Cyrus refuses a top-level "Trash" (outside the user's
                # namespace) with a plain NO, no [TRYCREATE]: as missing (Opush OP-226).
                configured_exists = any(_wire(f.name) == _wire(trash) for f in folders)
                if configured_exists and not isinstance(refused, MailboxNotFound):
                    raise
                server_trash = [f.name for f in folders if f.special_use is SpecialUse.TRASH]
                if server_trash and _wire(server_trash[0]) != _wire(folder):
                    await self.move(folder, uids, server_trash[0])
                    return
                log.warn("no Trash folder for {login}: deleting for good", login=self.login)

        async def run(conn: ImapProtocol) -> None:
            await self._select(conn, folder)
            for chunk in _chunks(uids):
                check(
                    await conn.command(b"UID STORE", chunk.encode(), b"+FLAGS.SILENT (\\Deleted)"),
                    "UID STORE",
                )
            for args in self._expunge_args(conn, uids):
                check(await conn.command(*args), "EXPUNGE")

        await self._with(run)

    async def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        date: datetime | None = None,
    ) -> int | None:
        checked = [p.check_flag(f) for f in flags]

        async def run(conn: ImapProtocol) -> int | None:
            args: list[bytes | Literal] = [b"APPEND", mailbox_arg(folder)]
            args.append(b"(" + " ".join(checked).encode() + b")")
            if date is not None:
                args.append(p.quote(p.format_internaldate(date)))
            args.append(Literal(message))
            result = await conn.command(*args)
            if result.tagged.code_name == "TRYCREATE":
                raise MailboxNotFound(f"APPEND {folder}: {result.tagged.text}")
            check(result, f"APPEND {folder}")
            code = result.code("APPENDUID")
            if code and len(code) >= 3 and isinstance(code[2], str) and code[2].isdigit():
                return int(code[2])
            return None

        return cast(int | None, await self._with(run))

    async def empty_folder(self, folder: str) -> None:
        async def run(conn: ImapProtocol) -> None:
            info = await self._select(conn, folder, force=True)
            if info is None or not info.exists:
                return
            check(await conn.command(b"UID STORE 1:* +FLAGS.SILENT (\\Deleted)"), "UID STORE")
            if self.backend.expunge_policy is ExpungePolicy.ALWAYS:
                check(await conn.command(b"EXPUNGE"), "EXPUNGE")

        await self._with(run)

    # ------------------------------------------------------------------ push

    async def watch(
        self, folders: Sequence[str], callback: Callable[[MailboxEvent], None]
    ) -> Watch:
        """IDLE (one session per folder) or NOTIFY (one session) until `stop()`."""
        return await start_watch(
            self.backend.pool,
            self.login,
            self._password,
            folders,
            callback,
            use_notify=self.backend.use_notify,
        )

    async def close(self) -> None:
        """Nothing to do: every call already gave its session back to the pool."""


def _check_copy(result: Result, destination: str) -> None:
    if result.tagged.kind != "OK" and result.tagged.code_name in ("TRYCREATE", "NONEXISTENT"):
        raise MailboxNotFound(f"{destination}: {result.tagged.text}")
    check(result, f"MOVE/COPY to {destination}")


def _copyuid(result: Result) -> dict[int, int]:
    code = result.code("COPYUID")
    if not code or len(code) < 4 or not all(isinstance(t, str) for t in code[2:4]):
        return {}
    src = p.parse_sequence_set(cast(str, code[2]))
    dst = p.parse_sequence_set(cast(str, code[3]))
    return dict(zip(src, dst, strict=False))


def _conforms(backend: ImapMailBackend, store: ImapMailStore) -> tuple[MailBackend, MailStore]:
    """mypy checks here that the classes implement the interfaces' protocols."""
    return backend, store
