"""MailStore logic over scripted IMAP servers: fallbacks, change detection, pool."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from opush.backends.imap import ImapAuth, ImapMailBackend, ImapSettings
from opush.backends.interfaces import (
    AuthenticationFailed,
    ChangeTrackingUnsupported,
    Credentials,
    ExpungePolicy,
    MailBackendUnavailable,
    MailboxAlreadyExists,
    MailboxEvent,
    MailboxNotFound,
    SpecialUse,
    SyncPoint,
    UserIdentity,
    parse_login,
)
from tests.support.imap import (
    DOVECOT_CAPS,
    PLAIN_CAPS,
    Network,
    ScriptedImapServer,
    login_script,
)

T = TypeVar("T")
DATE = '"01-Feb-2026 10:00:00 +0000"'
ALICE = Credentials(UserIdentity("alice", "example.org", "alice@example.org"), "secret")


def run(net: Network, coro: Coroutine[Any, Any, T]) -> T:
    d = defer.ensureDeferred(coro)
    net.pump()
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"operation did not finish; server errors: {net.errors}"
    if isinstance(results[0], defer.Failure):
        results[0].raiseException()
    assert not net.errors, net.errors
    return results[0]  # type: ignore[no-any-return]


def backend(net: Network, **kw: Any) -> ImapMailBackend:
    settings = ImapSettings(
        host="imap.test",
        starttls=False,
        timeout=5.0,
        max_connections_per_user=kw.pop("per_user", 2),
        max_connections=kw.pop("total", 10),
        idle_expiry=kw.pop("idle_expiry", 60.0),
    )
    return ImapMailBackend(net.clock, settings, connector=net.connect, **kw)


def server(caps: str, *script: tuple[str, Any]) -> ScriptedImapServer:
    return ScriptedImapServer([*login_script(caps), *script])


def select(name: str, uidvalidity: int, uidnext: int, exists: int, modseq: int | None) -> Any:
    lines = [
        f"* {exists} EXISTS",
        f"* OK [UIDVALIDITY {uidvalidity}] UIDs valid",
        f"* OK [UIDNEXT {uidnext}] Predicted next UID",
    ]
    if modseq is not None:
        lines.append(f"* OK [HIGHESTMODSEQ {modseq}] Highest")
    return (f'SELECT "{name}"', [*lines, "{tag} OK [READ-WRITE] Select completed"])


# --------------------------------------------------------------------------- change detection


def test_qresync_changes_and_vanished_bounded_by_previous_uidnext() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            status(7, 12, 40),
            select("INBOX", 7, 12, 3, 40),
            (
                r"UID FETCH 1:11 \(FLAGS INTERNALDATE MODSEQ\) \(CHANGEDSINCE 30 VANISHED\)",
                [
                    "* VANISHED (EARLIER) 2:4,9:4000000000",
                    '* 1 FETCH (UID 5 FLAGS (\\Seen) INTERNALDATE "01-Feb-2026 10:00:00 +0000"'
                    " MODSEQ (35))",
                    '* 3 FETCH (UID 11 FLAGS () INTERNALDATE "02-Feb-2026 10:00:00 +0000"'
                    " MODSEQ (40))",
                    "{tag} OK Fetch completed",
                ],
            ),
        )
    )
    store = backend(net).store(ALICE)
    changes = run(net, store.changes_since("INBOX", SyncPoint(7, 10, 30)))
    assert changes.method == "qresync" and not changes.uidvalidity_changed
    assert [(m.uid, m.flags, m.modseq) for m in changes.changed] == [
        (5, {"\\Seen"}, 35),
        (11, frozenset(), 40),
    ]
    assert changes.vanished == {2, 3, 4, 9}  # 10.. were never seen; 11 is new
    assert changes.point == SyncPoint(7, 12, 40)


def status(uidvalidity: int, uidnext: int, modseq: int) -> Any:
    return (
        'STATUS "INBOX" .*',
        [
            f"* STATUS INBOX (MESSAGES 3 UIDNEXT {uidnext} UIDVALIDITY {uidvalidity} UNSEEN 0"
            f" HIGHESTMODSEQ {modseq})",
            "{tag} OK",
        ],
    )


def test_unchanged_modseq_costs_one_status() -> None:
    net = Network(Clock())
    srv = net.expect(server(DOVECOT_CAPS, status(7, 12, 40)))
    store = backend(net).store(ALICE)
    changes = run(net, store.changes_since("INBOX", SyncPoint(7, 12, 40)))
    assert changes.changed == () and changes.vanished == frozenset()
    assert changes.point == SyncPoint(7, 12, 40)
    assert [c.split()[0] for c in srv.commands] == ["LOGIN", "ENABLE", "STATUS"]


def test_uidvalidity_change_is_reported_with_a_full_listing() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            (
                'STATUS "Work" .*',
                ["* STATUS Work (UIDVALIDITY 99 UIDNEXT 3 HIGHESTMODSEQ 5)", "{tag} OK"],
            ),
            select("Work", 99, 3, 2, 5),
            (
                r"UID FETCH 1:\* \(FLAGS INTERNALDATE MODSEQ\)",
                [
                    f"* 1 FETCH (UID 1 FLAGS () INTERNALDATE {DATE} MODSEQ (4))",
                    f"* 2 FETCH (UID 2 FLAGS () INTERNALDATE {DATE} MODSEQ (5))",
                    "{tag} OK",
                ],
            ),
        )
    )
    changes = run(net, backend(net).store(ALICE).changes_since("Work", SyncPoint(7, 50, 900)))
    assert changes.uidvalidity_changed and changes.method == "full"
    assert [m.uid for m in changes.changed] == [1, 2] and changes.vanished == frozenset()


def test_modseq_going_backwards_forces_a_resync() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            status(7, 3, 10),
            select("INBOX", 7, 3, 0, 10),
        )
    )
    changes = run(net, backend(net).store(ALICE).changes_since("INBOX", SyncPoint(7, 3, 50)))
    assert changes.uidvalidity_changed and changes.changed == ()


def test_plain_server_diffs_against_the_callers_snapshot() -> None:
    net = Network(Clock())
    net.expect(
        server(
            PLAIN_CAPS,
            select("INBOX", 7, 9, 3, None),
            (
                r"UID FETCH 1:\* \(FLAGS INTERNALDATE\)",
                [
                    '* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE "01-Feb-2026 10:00:00 +0000")',
                    '* 2 FETCH (UID 3 FLAGS () INTERNALDATE "01-Feb-2026 10:00:00 +0000")',
                    '* 3 FETCH (UID 8 FLAGS () INTERNALDATE "03-Feb-2026 10:00:00 +0000")',
                    "{tag} OK",
                ],
            ),
        )
    )
    known = {1: frozenset({"\\Seen"}), 2: frozenset(), 3: frozenset({"\\Seen"})}
    changes = run(net, backend(net).store(ALICE).changes_since("INBOX", SyncPoint(7, 4), known))
    assert changes.method == "diff"
    assert [(m.uid, m.flags) for m in changes.changed] == [(3, frozenset()), (8, frozenset())]
    assert changes.vanished == {2}
    assert changes.point == SyncPoint(7, 9, None)


def test_plain_server_without_snapshot_says_so() -> None:
    net = Network(Clock())
    net.expect(server(PLAIN_CAPS, select("INBOX", 7, 9, 3, None)))
    with pytest.raises(ChangeTrackingUnsupported):
        run(net, backend(net).store(ALICE).changes_since("INBOX", SyncPoint(7, 4)))


# --------------------------------------------------------------------------- folders


def test_list_fallback_lsub_and_configured_special_folders() -> None:
    net = Network(Clock())
    net.expect(
        server(
            PLAIN_CAPS,
            (
                'LIST "" "\\*"',
                [
                    '* LIST (\\HasChildren) "." INBOX',
                    '* LIST (\\HasNoChildren) "." "INBOX.sent"',
                    '* LIST (\\HasNoChildren) "." "Sent Items"',
                    '* LIST (\\Noselect) "." "Archives"',
                    '* LIST () "." "&AMk-t&AOk-"',
                    "{tag} OK",
                ],
            ),
            ('LSUB "" "\\*"', ['* LSUB () "." "INBOX.sent"', "{tag} OK"]),
        )
    )
    store = backend(net, sent="INBOX.sent", trash="Deleted").store(ALICE)
    folders = {f.name: f for f in run(net, store.list_folders())}
    assert set(folders) == {"INBOX", "INBOX.sent", "Sent Items", "Archives", "Été"}
    assert folders["INBOX"].special_use is SpecialUse.INBOX and folders["INBOX"].subscribed
    assert folders["INBOX.sent"].special_use is SpecialUse.SENT
    assert folders["INBOX.sent"].parent == "INBOX"
    assert folders["INBOX.sent"].display_name == "sent"
    assert folders["INBOX.sent"].subscribed and not folders["Été"].subscribed
    assert not folders["Archives"].selectable


def test_configured_name_wins_over_server_special_use() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            (
                r'LIST "" "\*" RETURN \(SUBSCRIBED SPECIAL-USE\)',
                [
                    '* LIST (\\Subscribed \\Sent) "/" "Sent Messages"',
                    '* LIST (\\Subscribed) "/" "Sent"',
                    '* LIST (\\Subscribed \\Trash) "/" "Bin"',
                    "{tag} OK",
                ],
            ),
        )
    )
    folders = {f.name: f for f in run(net, backend(net).store(ALICE).list_folders())}
    assert folders["Sent"].special_use is SpecialUse.SENT
    assert folders["Sent Messages"].special_use is None
    assert folders["Bin"].special_use is SpecialUse.TRASH  # configured "Trash" does not exist


def test_create_existing_and_delete_missing_are_typed() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            ('CREATE "Caf&AOk-"', ["{tag} NO [ALREADYEXISTS] Mailbox already exists"]),
            ('DELETE "Nope"', ["{tag} NO [NONEXISTENT] Mailbox doesn't exist"]),
        )
    )
    store = backend(net).store(ALICE)
    with pytest.raises(MailboxAlreadyExists):
        run(net, store.create_folder("Café"))
    with pytest.raises(MailboxNotFound):
        run(net, store.delete_folder("Nope"))


# --------------------------------------------------------------------------- messages


def test_move_without_move_extension_copies_flags_and_expunges_by_uid() -> None:
    net = Network(Clock())
    srv = net.expect(
        server(
            "IMAP4rev1 LITERAL+ UIDPLUS",
            select("INBOX", 7, 30, 5, None),
            ('UID COPY 3:4,9 "Trash"', ["{tag} OK [COPYUID 42 3:4,9 100:102] Done"]),
            (r"UID STORE 3:4,9 \+FLAGS.SILENT \(\\Deleted\)", ["{tag} OK"]),
            ("UID EXPUNGE 3:4,9", ["* 3 EXPUNGE", "{tag} OK"]),
        )
    )
    mapping = run(net, backend(net).store(ALICE).move("INBOX", [9, 3, 4], "Trash"))
    assert mapping == {3: 100, 4: 101, 9: 102}
    assert srv.script == []


def test_delete_moves_to_trash_or_flags_per_policy() -> None:
    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            select("INBOX", 7, 30, 5, 9),
            ('UID MOVE 5 "Trash"', ["* OK [COPYUID 42 5 8] Moved", "* VANISHED 5", "{tag} OK"]),
            ("NOOP", ["{tag} OK"]),
            (r"UID STORE 6 \+FLAGS.SILENT \(\\Deleted\)", ["{tag} OK"]),
        )
    )
    b = backend(net, expunge_policy=ExpungePolicy.NEVER)
    store = b.store(ALICE)
    run(net, store.delete("INBOX", [5]))
    run(net, store.delete("INBOX", [6], move_to_trash=False))  # same session: NOOP, no SELECT


def test_append_returns_appenduid_and_sends_flags_and_date() -> None:
    from datetime import UTC, datetime

    net = Network(Clock())
    srv = net.expect(
        server(
            DOVECOT_CAPS,
            (
                r'APPEND "Sent" \(\\Seen\) "05-Mar-2026 09:08:07 \+0000" \{12\+\}',
                ["{tag} OK [APPENDUID 77 31] Append completed"],
            ),
        )
    )
    uid = run(
        net,
        backend(net)
        .store(ALICE)
        .append("Sent", b"Subject: x\r\n", ["\\Seen"], datetime(2026, 3, 5, 9, 8, 7, tzinfo=UTC)),
    )
    assert uid == 31 and srv.literals == [b"Subject: x\r\n"]


def test_fetch_body_missing_uid_and_too_large() -> None:
    from opush.backends.interfaces import MessageNotFound, MessageTooLarge

    net = Network(Clock())
    net.expect(
        server(
            DOVECOT_CAPS,
            select("INBOX", 7, 30, 5, 9),
            (r"UID FETCH 4 \(UID BODY.PEEK\[\]\)", ["{tag} OK"]),
            ("NOOP", ["{tag} OK"]),
            (
                r"UID FETCH 5 \(UID BODY.PEEK\[2\]<0.100>\)",
                ["* 1 FETCH (UID 5 BODY[2]<0> {20}", b"x" * 20 + b")\r\n", "{tag} OK"],
            ),
        )
    )
    store = backend(net).store(ALICE)
    with pytest.raises(MessageNotFound):
        run(net, store.fetch_body("INBOX", 4))
    with pytest.raises(MessageTooLarge):
        run(net, store.fetch_body("INBOX", 5, "2", partial=(0, 100), max_size=10))


def test_search_uses_literal_and_charset_for_non_ascii() -> None:
    from datetime import date

    from opush.backends.interfaces import SearchQuery

    net = Network(Clock())
    srv = net.expect(
        server(
            DOVECOT_CAPS,
            select("INBOX", 7, 30, 5, 9),
            (
                r"UID SEARCH CHARSET UTF-8 UNDELETED SINCE 1-Feb-2026 TEXT \{6\+\}",
                ["* SEARCH 4 2 9", "{tag} OK"],
            ),
        )
    )
    query = SearchQuery(text="réunion"[:5], since=date(2026, 2, 1))
    assert run(net, backend(net).store(ALICE).search("INBOX", query)) == [2, 4, 9]
    assert srv.literals == ["réuni".encode()]


# --------------------------------------------------------------------------- pool


def test_session_is_reused_and_keyed_by_password() -> None:
    net = Network(Clock())
    srv = net.expect(
        server(
            DOVECOT_CAPS,
            (
                'STATUS "INBOX" .*',
                ["* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)", "{tag} OK"],
            ),
            (
                'STATUS "INBOX" .*',
                ["* STATUS INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY 3)", "{tag} OK"],
            ),
        )
    )
    b = backend(net)
    store = b.store(ALICE)
    run(net, store.status("INBOX"))
    run(net, store.status("INBOX"))
    assert sum(c.startswith("LOGIN") for c in srv.commands) == 1
    other = net.expect(ScriptedImapServer([(r"LOGIN .*", ["{tag} NO [AUTHENTICATIONFAILED] no"])]))
    wrong = b.store(Credentials(ALICE.user, "not-the-password"))
    with pytest.raises(AuthenticationFailed):
        run(net, wrong.status("INBOX"))
    assert other.commands[0].startswith("LOGIN")


def test_per_user_limit_waits_then_fails_retryably() -> None:
    clock = Clock()
    net = Network(clock)
    b = backend(net, per_user=1)
    net.expect(server(DOVECOT_CAPS))
    first = defer.ensureDeferred(b.pool.acquire("alice@example.org", "secret"))
    net.pump()
    assert first.called
    second = defer.ensureDeferred(b.pool.acquire("alice@example.org", "secret"))
    assert not second.called
    clock.advance(5.1)
    failures: list[BaseException] = []
    second.addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], MailBackendUnavailable)


def test_released_session_wakes_a_waiter() -> None:
    net = Network(Clock())
    b = backend(net, per_user=1)
    net.expect(server(DOVECOT_CAPS))
    first = defer.ensureDeferred(b.pool.acquire("alice@example.org", "secret"))
    net.pump()
    conn: list[Any] = []
    first.addCallback(conn.append)
    second = defer.ensureDeferred(b.pool.acquire("alice@example.org", "secret"))
    b.pool.release(conn[0])
    got: list[Any] = []
    second.addCallback(got.append)
    assert got == conn


def test_idle_session_expires_with_logout_and_dropped_session_reconnects() -> None:
    clock = Clock()
    net = Network(clock)
    b = backend(net)
    first = net.expect(
        server(
            DOVECOT_CAPS,
            ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]),
            ("LOGOUT", ["* BYE bye", "{tag} OK"]),
        )
    )
    store = b.store(ALICE)
    run(net, store.status("INBOX"))
    clock.advance(61)
    net.pump()
    assert first.commands[-1] == "LOGOUT"
    assert b.pool.total == 0
    second = net.expect(
        server(DOVECOT_CAPS, ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]))
    )
    run(net, store.status("INBOX"))
    net.wires[-1].drop()  # server goes away while the session sits in the pool
    assert b.pool.total == 0
    third = net.expect(
        server(DOVECOT_CAPS, ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]))
    )
    run(net, store.status("INBOX"))
    assert second.commands[0].startswith("LOGIN") and third.commands[0].startswith("LOGIN")


def test_drop_mid_command_is_retryable_and_next_call_reconnects() -> None:
    net = Network(Clock())
    b = backend(net)
    # The server starts answering the FETCH, then goes away in the middle of the literal.
    net.expect(
        server(
            DOVECOT_CAPS,
            select("INBOX", 7, 3, 1, 5),
            (r"UID FETCH 1 .*", ["* 1 FETCH (UID 1 BODY[] {100}", b"only part"]),
        )
    )
    store = b.store(ALICE)
    d = defer.ensureDeferred(store.fetch_body("INBOX", 1))
    net.pump()
    assert not d.called
    net.wires[-1].drop()
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert failures and isinstance(failures[0], MailBackendUnavailable)
    net.expect(
        server(DOVECOT_CAPS, ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]))
    )
    assert run(net, store.status("INBOX")).uidvalidity == 3


def test_server_down_is_unavailable() -> None:
    net = Network(Clock())
    net.refuse = True
    with pytest.raises(MailBackendUnavailable):
        run(net, backend(net).store(ALICE).list_folders())


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    ("typed", "imap_login", "email"),
    [
        ("alice@Example.ORG", "alice@example.org", "alice@example.org"),
        ("EXAMPLE.org\\alice", "alice@example.org", "alice@example.org"),
        ("alice", "alice@example.org", "alice@example.org"),  # default domain
    ],
)
def test_imap_auth_login_forms(typed: str, imap_login: str, email: str) -> None:
    net = Network(Clock())
    srv = net.expect(ScriptedImapServer([*login_script(enable=False), ("LOGOUT", ["{tag} OK"])]))
    auth = ImapAuth(
        net.clock,
        ImapSettings(host="h", starttls=False),
        default_domain="example.org",
        connector=net.connect,
    )
    identity = run(net, auth.authenticate(typed, "secret"))
    assert identity.email == email and identity.login == "alice"
    assert srv.commands[0] == f'LOGIN "{imap_login}" "secret"'


def test_imap_auth_server_down_is_not_a_bad_password() -> None:
    net = Network(Clock())
    net.refuse = True
    auth = ImapAuth(net.clock, ImapSettings(host="h", starttls=False), connector=net.connect)
    with pytest.raises(MailBackendUnavailable):
        run(net, auth.authenticate("alice@example.org", "secret"))
    with pytest.raises(AuthenticationFailed):
        run(net, auth.authenticate("@example.org", "secret"))


def test_parse_login_forms() -> None:
    assert parse_login("bob@Example.org").login_at_domain == "bob@example.org"
    assert parse_login("DOM\\bob") == parse_login("bob@dom")
    assert parse_login("bob").domain is None
    for bad in ("", "@x", "x@", "a\\", "\\b"):
        with pytest.raises(ValueError):
            parse_login(bad)


# --------------------------------------------------------------------------- push


def test_idle_watch_reports_events_and_stops_cleanly() -> None:
    net = Network(Clock())
    srv = net.expect(
        server(
            "IMAP4rev1 LITERAL+ IDLE ENABLE CONDSTORE QRESYNC",
            ('SELECT "INBOX"', ["* OK [UIDVALIDITY 1] ok", "{tag} OK [READ-WRITE] ok"]),
            ("IDLE", ["+ idling"]),
            ("DONE", ["{tag} OK Idle completed"]),
        )
    )
    events: list[MailboxEvent] = []
    watch = run(net, backend(net).store(ALICE).watch(["INBOX"], events.append))
    net.wires[-1].push("* 4 EXISTS", "* VANISHED 2", "* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (9))")
    assert [e.kind for e in events] == ["exists", "expunge", "fetch"]
    run(net, watch.stop())
    assert srv.commands[-1] == "DONE"


def test_idle_watch_reports_a_lost_session() -> None:
    net = Network(Clock())
    net.expect(
        server(
            "IMAP4rev1 LITERAL+ IDLE",
            ('SELECT "Work"', ["* OK [UIDVALIDITY 1] ok", "{tag} OK ok"]),
            ("IDLE", ["+ idling"]),
        )
    )
    events: list[MailboxEvent] = []
    run(net, backend(net).store(ALICE).watch(["Work"], events.append))
    net.wires[-1].drop()
    assert events == [MailboxEvent("Work", "lost")]


def test_notify_watch_covers_every_folder_with_one_session() -> None:
    net = Network(Clock())
    srv = net.expect(
        server(
            DOVECOT_CAPS,
            (
                r'NOTIFY SET \(MAILBOXES \("INBOX" "&AMk-t&AOk-"\) \(MessageNew MessageExpunge'
                r" FlagChange MailboxName\)\)",
                ["{tag} OK NOTIFY completed"],
            ),
            ("IDLE", ["+ idling"]),
            ("DONE", ["{tag} OK"]),
            ("NOTIFY NONE", ["{tag} OK"]),
        )
    )
    events: list[MailboxEvent] = []
    watch = run(net, backend(net).store(ALICE).watch(["INBOX", "Été"], events.append))
    net.wires[-1].push("* STATUS &AMk-t&AOk- (MESSAGES 2 UIDNEXT 3)", '* LIST () "/" INBOX')
    assert events == [MailboxEvent("Été", "status"), MailboxEvent("INBOX", "mailbox")]
    run(net, watch.stop())
    assert srv.script == [] and len(net.wires) == 1


def test_watch_without_idle_polls_status() -> None:
    clock = Clock()
    net = Network(clock)
    status = '* STATUS "INBOX" (MESSAGES {n} UIDNEXT {n} UIDVALIDITY 1 UNSEEN 0)'
    net.expect(
        server(
            "IMAP4rev1 LITERAL+",
            ('STATUS "INBOX" .*', [status.format(n=1), "{tag} OK"]),
            ('STATUS "INBOX" .*', [status.format(n=1), "{tag} OK"]),
            ('STATUS "INBOX" .*', [status.format(n=2), "{tag} OK"]),
        )
    )
    events: list[MailboxEvent] = []
    b = backend(net, idle_expiry=600.0)
    watch = run(net, b.store(ALICE).watch(["INBOX"], events.append))
    clock.advance(60)
    net.pump()
    assert events == []
    clock.advance(60)
    net.pump()
    assert events == [MailboxEvent("INBOX", "status")]
    run(net, watch.stop())


def test_global_limit_closes_idle_sessions_of_other_users() -> None:
    net = Network(Clock())
    b = backend(net, total=1)
    net.expect(server(DOVECOT_CAPS))
    first = defer.ensureDeferred(b.pool.acquire("bob@example.org", "secret"))
    net.pump()
    bob: list[Any] = []
    first.addCallback(bob.append)
    b.pool.release(bob[0])
    net.expect(server(DOVECOT_CAPS))
    second = defer.ensureDeferred(b.pool.acquire("alice@example.org", "secret"))
    net.pump()  # bob's idle session is closed to make room
    assert second.called and not bob[0].connected_
    assert b.pool.total == 1


def test_read_on_a_silently_dead_pooled_session_is_retried_once() -> None:
    clock = Clock()
    net = Network(clock)
    b = backend(net)
    status_answer = ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"])
    net.expect(server(DOVECOT_CAPS, status_answer, ('STATUS "INBOX" .*', [])))  # then silence
    store = b.store(ALICE)
    run(net, store.status("INBOX"))
    net.expect(server(DOVECOT_CAPS, status_answer))
    d = defer.ensureDeferred(store.status("INBOX"))
    net.pump()
    assert not d.called
    clock.advance(5.1)  # the reused session times out ...
    net.pump()  # ... and a fresh one answers
    got: list[Any] = []
    d.addCallback(got.append)
    assert got and got[0].uidvalidity == 3 and not net.errors


def test_write_on_a_dead_session_is_not_retried() -> None:
    clock = Clock()
    net = Network(clock)
    b = backend(net)
    net.expect(
        server(
            DOVECOT_CAPS,
            ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]),
            (r"APPEND .*", []),
        )
    )
    store = b.store(ALICE)
    run(net, store.status("INBOX"))
    d = defer.ensureDeferred(store.append("INBOX", b"Subject: x\r\n\r\n"))
    net.pump()
    clock.advance(5.1)
    net.pump()
    failures: list[BaseException] = []
    d.addErrback(lambda f: failures.append(f.value))
    assert isinstance(failures[0], MailBackendUnavailable)
    assert len(net.wires) == 1  # no second APPEND elsewhere


def test_imap_auth_skips_login_when_the_pool_has_these_credentials() -> None:
    net = Network(Clock())
    b = backend(net)
    net.expect(
        server(DOVECOT_CAPS, ('STATUS "INBOX" .*', ["* STATUS INBOX (UIDVALIDITY 3)", "{tag} OK"]))
    )
    run(net, b.store(ALICE).status("INBOX"))
    auth = ImapAuth(net.clock, b.settings, connector=net.connect, pool=b.pool)
    assert run(net, auth.authenticate("alice@example.org", "secret")).email == "alice@example.org"
    assert len(net.wires) == 1  # no new connection
    net.expect(ScriptedImapServer([(r"LOGIN .*", ["{tag} NO [AUTHENTICATIONFAILED] no"])]))
    with pytest.raises(AuthenticationFailed):
        run(net, auth.authenticate("alice@example.org", "guess"))
