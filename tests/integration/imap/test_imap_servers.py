"""The IMAP backend against real servers, Dovecot and Cyrus (OBM's): what the sync engine,
folders and push rely on.  Each test runs once per server (`mail_server`, see conftest.py)."""

from __future__ import annotations

import imaplib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from opush.backends.imap import ImapAuth, ImapMailBackend, ImapMailStore, ImapSettings
from opush.backends.interfaces import (
    AuthenticationFailed,
    Credentials,
    MailBackendUnavailable,
    MailboxEvent,
    MailboxNotFound,
    SearchQuery,
    SpecialUse,
    UserIdentity,
)
from tests.support.imap import CuttableProxy
from tests.support.mailservers import MailServer
from tests.support.services import DOMAIN, HOST, PASSWORD

pytestmark = pytest.mark.integration

Deliver = Callable[..., None]


def settings(port: int, timeout: float = 5.0) -> ImapSettings:
    return ImapSettings(host=HOST, port=port, starttls=False, timeout=timeout)


def credentials(address: str) -> Credentials:
    login, _, domain = address.partition("@")
    return Credentials(UserIdentity(login, domain, address), PASSWORD)


@asynccontextmanager
async def mailbox(
    server: MailServer, address: str, port: int | None = None, **options: Any
) -> AsyncIterator[Any]:
    backend = ImapMailBackend(reactor, settings(port or server.imap_port), **options)
    try:
        yield backend.store(credentials(address))
    finally:
        await backend.shutdown()


def other_client(server: MailServer, address: str) -> imaplib.IMAP4:
    """A second, independent IMAP client (another device or webmail)."""
    return server.client(address)


# --------------------------------------------------------------------------- auth


@pytest_twisted.ensureDeferred
async def test_login_ok_and_bad(mail_server: MailServer) -> None:
    auth = ImapAuth(reactor, settings(mail_server.imap_port))
    who = await auth.authenticate(f"{DOMAIN}\\alice", PASSWORD)
    assert (who.login, who.domain, who.email) == ("alice", DOMAIN, f"alice@{DOMAIN}")
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"alice@{DOMAIN}", "wrong")


@pytest_twisted.ensureDeferred
async def test_server_down_is_retryable_not_bad_password() -> None:
    auth = ImapAuth(reactor, settings(port=1))  # nothing listens on port 1
    with pytest.raises(MailBackendUnavailable):
        await auth.authenticate(f"alice@{DOMAIN}", PASSWORD)


# --------------------------------------------------------------------------- folders


@pytest_twisted.ensureDeferred
async def test_special_use_folders(fresh_user: str, mail_server: MailServer) -> None:
    async with mailbox(mail_server, fresh_user) as store:
        folders = {f.special_use: f for f in await store.list_folders() if f.special_use}
    assert folders[SpecialUse.INBOX].name == "INBOX"
    assert folders[SpecialUse.SENT].name == mail_server.folder("Sent")
    assert folders[SpecialUse.DRAFTS].name == mail_server.folder("Drafts")
    assert folders[SpecialUse.TRASH].name == mail_server.folder("Trash")
    assert all(f.separator == "/" and f.subscribed for f in folders.values())


@pytest_twisted.ensureDeferred
async def test_create_rename_delete_non_ascii_folder(
    fresh_user: str, mail_server: MailServer
) -> None:
    f = mail_server.folder  # "INBOX/" first where top-level folders are not the user's
    async with mailbox(mail_server, fresh_user) as store:
        await store.create_folder(f("Été/Réunions & Co"))
        names = {f.name: f for f in await store.list_folders()}
        assert names[f("Été/Réunions & Co")].subscribed
        assert names[f("Été/Réunions & Co")].parent == f("Été")
        assert names[f("Été/Réunions & Co")].display_name == "Réunions & Co"
        await store.rename_folder(f("Été/Réunions & Co"), f("Корзина 📬"))
        names = {f.name: f for f in await store.list_folders()}
        assert f("Корзина 📬") in names and names[f("Корзина 📬")].subscribed
        assert f("Été/Réunions & Co") not in names
        await store.delete_folder(f("Корзина 📬"))
        assert f("Корзина 📬") not in {f.name for f in await store.list_folders()}
        with pytest.raises(MailboxNotFound):
            await store.delete_folder(f("Корзина 📬"))
        with pytest.raises(MailboxNotFound):
            await store.status("Nowhere")
    # The wire name really is modified UTF-7 (another client sees the same folder).
    async with mailbox(mail_server, fresh_user) as store:
        await store.create_folder(f("Café"))
    client = other_client(mail_server, fresh_user)
    try:
        typ, data = client.list('""', f'"{f("Caf*")}"')
        assert typ == "OK" and b"Caf&AOk-" in data[0]
    finally:
        client.logout()


# --------------------------------------------------------------------------- change detection


@pytest_twisted.ensureDeferred
async def test_delivery_flag_change_and_expunge_detected_via_qresync(
    fresh_user: str, mail_server: MailServer, deliver: Deliver
) -> None:
    async with mailbox(mail_server, fresh_user) as store:
        caps = await store.capabilities()
        assert {"CONDSTORE", "QRESYNC", "IDLE", "MOVE", "UIDPLUS", "SPECIAL-USE"} <= caps
        first = await store.changes_since("INBOX", None)
        assert first.changed == () and first.method == "full"

        deliver(fresh_user, "one")
        deliver(fresh_user, "two")
        new = await store.changes_since("INBOX", first.point)
        assert new.method == "qresync"
        assert [m.uid for m in new.changed] == [1, 2]
        assert all(m.flags == frozenset() and m.internaldate for m in new.changed)

        # Another client marks 1 read and expunges 2.
        client = other_client(mail_server, fresh_user)
        try:
            client.select("INBOX")
            client.uid("STORE", "1", "+FLAGS", "(\\Seen)")
            client.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
            client.expunge()
        finally:
            client.logout()
        later = await store.changes_since("INBOX", new.point)
        assert [(m.uid, m.flags) for m in later.changed] == [(1, frozenset({"\\Seen"}))]
        assert later.vanished == {2}
        assert later.point.highestmodseq is not None and new.point.highestmodseq is not None
        assert later.point.highestmodseq > new.point.highestmodseq

        quiet = await store.changes_since("INBOX", later.point)
        assert quiet.changed == () and quiet.vanished == frozenset()

        status = await store.status("INBOX")
        assert (status.messages, status.unseen, status.uidnext) == (1, 0, 3)
        assert status.highestmodseq == later.point.highestmodseq


@pytest_twisted.ensureDeferred
async def test_uidvalidity_change_reported(fresh_user: str, mail_server: MailServer) -> None:
    work = mail_server.folder("Work")
    async with mailbox(mail_server, fresh_user) as store:
        await store.create_folder(work)
        await store.append(work, b"Subject: a\r\n\r\nx\r\n")
        before = await store.changes_since(work, None)
        await store.delete_folder(work)
        await store.create_folder(work)
        await store.append(work, b"Subject: b\r\n\r\ny\r\n")
        after = await store.changes_since(work, before.point)
        if after.point.uidvalidity == before.point.uidvalidity:
            pytest.skip(f"{mail_server.name} reused the UIDVALIDITY within the same second")
        assert after.uidvalidity_changed and [m.uid for m in after.changed] == [1]


@pytest_twisted.ensureDeferred
async def test_diff_fallback_matches_qresync(
    fresh_user: str, mail_server: MailServer, deliver: Deliver
) -> None:
    """The snapshot diff (servers without CONDSTORE) finds the same changes."""
    async with mailbox(mail_server, fresh_user) as store:
        for i in range(3):
            deliver(fresh_user, f"m{i}")
        start = await store.changes_since("INBOX", None)
        known = {m.uid: m.flags for m in start.changed}
        await store.set_flags("INBOX", [2], add=["\\Flagged"])
        await store.delete("INBOX", [3], move_to_trash=False)
        plain_point = type(start.point)(start.point.uidvalidity, start.point.uidnext, None)
        # Force the no-CONDSTORE path by hiding HIGHESTMODSEQ from the point: CONDSTORE
        # without a modseq in the point still needs the snapshot.
        diff = await store.changes_since("INBOX", plain_point, known)
        qres = await store.changes_since("INBOX", start.point, known)
        assert [m.uid for m in qres.changed] == [2] and qres.vanished == {3}
        assert diff.vanished == {3} and [m.uid for m in diff.changed] == [2]


# --------------------------------------------------------------------------- messages


def _multipart() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Zoé <zoe@example.org>"
    msg["To"] = "alice@example.org"
    msg["Subject"] = "Réunion budget"
    msg.set_content("Bonjour, voici le budget.\n")
    msg.add_alternative("<p>Bonjour, voici le <b>budget</b>.</p>\n", subtype="html")
    msg.add_attachment(
        b"%PDF-1.4 " + b"x" * 2000, maintype="application", subtype="pdf", filename="budget.pdf"
    )
    return msg.as_bytes().replace(b"\n", b"\r\n")


@pytest_twisted.ensureDeferred
async def test_fetch_summaries_bodies_parts_and_partial(
    fresh_user: str, mail_server: MailServer, deliver: Deliver
) -> None:
    raw = _multipart()
    async with mailbox(mail_server, fresh_user) as store:
        when = datetime(2026, 3, 5, 9, 8, 7, tzinfo=UTC)
        uid = await store.append("INBOX", raw, ["\\Seen", "$Forwarded"], when)
        assert uid == 1
        deliver(fresh_user, "plain one")
        (summary, plain) = await store.fetch_summaries("INBOX", [1, 2], headers=True)
        assert plain.uid == 2 and plain.body is not None and plain.body.section == "1"
        assert summary.flags == {"\\Seen", "$Forwarded"} and summary.internaldate == when
        assert summary.size == len(raw)
        assert summary.envelope is not None and summary.envelope.from_[0].email == "zoe@example.org"
        assert summary.headers is not None and b"Subject:" in summary.headers
        assert summary.body is not None
        parts = {p.section: p for p in summary.body.walk() if p.type != "multipart"}
        assert (parts["1.1"].subtype, parts["1.2"].subtype) == ("plain", "html")
        assert parts["2"].disposition == "attachment"
        assert parts["2"].disposition_params["filename"] == "budget.pdf"

        assert await store.fetch_body("INBOX", 1) == raw
        html = await store.fetch_body("INBOX", 1, "1.2")
        assert b"<b>budget</b>" in html
        assert await store.fetch_body("INBOX", 1, "", partial=(0, 5)) == raw[:5]
        assert len(await store.fetch_body("INBOX", 1, "2", partial=(10, 100))) == 100
        from opush.backends.interfaces import MessageNotFound, MessageTooLarge

        with pytest.raises(MessageTooLarge):
            await store.fetch_body("INBOX", 1, max_size=100)
        with pytest.raises(MessageNotFound):
            await store.fetch_body("INBOX", 99)
        # fetching with PEEK kept the unread message unread
        assert (await store.fetch_summaries("INBOX", [2]))[0].flags == frozenset()


@pytest_twisted.ensureDeferred
async def test_move_append_search_and_empty(
    fresh_user: str, mail_server: MailServer, deliver: Deliver
) -> None:
    trash, drafts = mail_server.folder("Trash"), mail_server.folder("Drafts")
    async with mailbox(mail_server, fresh_user) as store:
        token = uuid.uuid4().hex
        deliver(fresh_user, f"budget {token}")
        deliver(fresh_user, "lunch", body="déjeuner à midi")
        deliver(fresh_user, "other")
        assert await store.search("INBOX", SearchQuery(text=token)) == [1]
        assert await store.search("INBOX", SearchQuery(text="déjeuner")) == [2]
        assert await store.search("INBOX", SearchQuery(since=date.today())) == [1, 2, 3]
        assert await store.search("INBOX", SearchQuery(before=date(2000, 1, 1))) == []
        everywhere = await store.search_folders(["INBOX", trash, "Gone"], SearchQuery(text=token))
        assert everywhere == {"INBOX": [1], trash: []}

        mapping = await store.move("INBOX", [1, 3], trash)
        assert sorted(mapping) == [1, 3] and sorted(mapping.values()) == [1, 2]
        assert await store.search("INBOX", SearchQuery()) == [2]
        with pytest.raises(MailboxNotFound):
            await store.move("INBOX", [2], mail_server.folder("Nowhere"))

        await store.delete("INBOX", [2])  # DeletesAsMoves: to Trash
        assert await store.search(trash, SearchQuery()) == [1, 2, 3]
        assert await store.search("INBOX", SearchQuery()) == []

        uid = await store.append(drafts, b"Subject: draft\r\n\r\nwip\r\n", ["\\Draft"])
        assert uid == 1
        await store.set_flags(drafts, [1], add=["\\Seen", "$label1"], remove=["\\Draft"])
        (draft,) = await store.fetch_summaries(drafts, [1])
        assert draft.flags == {"\\Seen", "$label1"}

        await store.empty_folder(trash)
        assert (await store.status(trash)).messages == 0


# --------------------------------------------------------------------------- failures


@pytest_twisted.ensureDeferred
async def test_connection_dropped_mid_command_then_reconnects(
    fresh_user: str, mail_server: MailServer
) -> None:
    proxy = CuttableProxy(HOST, mail_server.imap_port)
    port = reactor.listenTCP(0, proxy, interface=HOST)  # type: ignore[attr-defined]
    try:
        async with mailbox(mail_server, fresh_user, port=port.getHost().port) as store:
            await store.status("INBOX")  # a pooled session exists
            proxy.stall()  # the server hangs in the middle of a write ...
            pending = defer.ensureDeferred(store.create_folder("Projects"))
            await _turn()
            assert not pending.called
            proxy.cut()  # ... and then the connection dies
            with pytest.raises(MailBackendUnavailable):
                await pending
            assert (await store.status("INBOX")).messages == 0  # next call reconnects

            proxy.stall()  # the same with a read: retried once on a fresh session
            pending_read = defer.ensureDeferred(store.status("INBOX"))
            await _turn()
            proxy.cut()
            assert (await pending_read).messages == 0
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_stalled_server_times_out_retryably(fresh_user: str, mail_server: MailServer) -> None:
    proxy = CuttableProxy(HOST, mail_server.imap_port)
    port = reactor.listenTCP(0, proxy, interface=HOST)  # type: ignore[attr-defined]
    try:
        async with mailbox(mail_server, fresh_user, port=port.getHost().port) as store:
            await store.list_folders()
            # imap.timeoutInMs=300 for the pooled session only: a loaded machine must not
            # make the reconnection below time out too.
            (conn,) = list(store.backend.pool._key_of)
            conn.timeout = 0.3
            proxy.stall()
            with pytest.raises(MailBackendUnavailable, match="timed out"):
                await store.create_folder("Projects")
            assert await store.list_folders()  # a fresh session
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_session_kicked_by_server_is_replaced(
    fresh_user: str, mail_server: MailServer
) -> None:
    async with mailbox(mail_server, fresh_user) as store:
        await store.status("INBOX")
        assert isinstance(store, ImapMailStore)
        pool = store.backend.pool
        assert pool.total == 1
        mail_server.kick(fresh_user)  # doveadm kick / SIGTERM to imapd: the server ends it
        for _ in range(100):
            if pool.total == 0:
                break
            await _turn(0.02)
        assert pool.total == 0  # the pool noticed on its own
        assert (await store.status("INBOX")).messages == 0  # and reconnects on next use


async def _turn(seconds: float = 0.05) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
    await d


# --------------------------------------------------------------------------- push


async def _next_event(events: defer.DeferredQueue[MailboxEvent]) -> Any:
    d = events.get()
    d.addTimeout(10.0, reactor)
    return await d


@pytest.mark.parametrize("use_notify", [True, False], ids=["notify", "idle"])
@pytest_twisted.ensureDeferred
async def test_watch_wakes_on_delivery_and_append(
    fresh_user: str, mail_server: MailServer, use_notify: bool, deliver: Deliver
) -> None:
    events: defer.DeferredQueue[MailboxEvent] = defer.DeferredQueue()
    sent = mail_server.folder("Sent")
    async with mailbox(mail_server, fresh_user, use_notify=use_notify) as store:
        if use_notify and "NOTIFY" not in await store.capabilities():
            pytest.skip(f"{mail_server.name} offers no NOTIFY (RFC 5465): push uses IDLE there")
        watch = await store.watch(["INBOX", sent], events.put)
        try:
            deliver(fresh_user, "push me")
            event = await _next_event(events)
            assert event.folder == "INBOX"
            while events.pending:
                events.pending.pop()
            await store.append(sent, b"Subject: s\r\n\r\nx\r\n")
            folders = set()
            while sent not in folders:
                folders.add((await _next_event(events)).folder)
        finally:
            await watch.stop()
        # The watch gave its session back in a usable state.
        assert (await store.status("INBOX")).messages == 1


@pytest_twisted.ensureDeferred
async def test_reused_session_sees_mail_delivered_meanwhile(
    fresh_user: str, mail_server: MailServer, deliver: Deliver
) -> None:
    """A pooled session keeps INBOX selected; its view must not hide new mail."""
    async with mailbox(mail_server, fresh_user) as store:
        deliver(fresh_user, "first")
        start = await store.changes_since("INBOX", None)  # selects INBOX
        deliver(fresh_user, "second")
        assert (await store.status("INBOX")).messages == 2
        assert b"second" in await store.fetch_body("INBOX", 2)
        deliver(fresh_user, "third")
        changes = await store.changes_since("INBOX", start.point)
        assert [m.uid for m in changes.changed] == [2, 3]
        assert await store.search("INBOX", SearchQuery(text="third")) == [3]


@pytest_twisted.ensureDeferred
async def test_thread_and_subject_search(fresh_user: str, mail_server: MailServer) -> None:
    """SearchQuery.thread (a Message-ID in Message-ID, References or In-Reply-To) and
    .subject: what conversation searches rely on, on every server."""
    async with mailbox(mail_server, fresh_user) as store:
        mails = [
            b"Message-ID: <root@x.org>\r\nSubject: Plan\r\n\r\nA\r\n",
            b"Message-ID: <r1@x.org>\r\nIn-Reply-To: <root@x.org>\r\n"
            b"Subject: Re: Plan\r\n\r\nB\r\n",
            b"Message-ID: <r2@x.org>\r\nReferences: <root@x.org> <r1@x.org>\r\n"
            b"Subject: Re: Plan\r\n\r\nC\r\n",
            b"Message-ID: <other@x.org>\r\nSubject: Budget d\xc3\xa9jeuner\r\n\r\nD\r\n",
        ]
        for m in mails:
            await store.append("INBOX", m)
        assert await store.search("INBOX", SearchQuery(thread="<root@x.org>")) == [1, 2, 3]
        assert await store.search("INBOX", SearchQuery(thread="<r1@x.org>")) == [2, 3]
        assert await store.search("INBOX", SearchQuery(subject="Plan")) == [1, 2, 3]
        assert await store.search("INBOX", SearchQuery(subject="Budget")) == [4]
