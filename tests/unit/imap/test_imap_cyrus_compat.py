"""The IMAP backend over a scripted server that answers as Cyrus 3.6 does (OBM's server).

The real Cyrus runs in tests/integration/imap/; these pin the differences from Dovecot that the
backend must cope with, deterministically.
"""

from __future__ import annotations

import re
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from opush.backends.imap import ImapMailBackend, ImapSettings
from opush.backends.interfaces import (
    Credentials,
    MailError,
    SpecialUse,
    SyncPoint,
    UserIdentity,
)
from tests.support.imap import Lines, Network, ScriptedImapServer, login_script

T = TypeVar("T")
# What Cyrus 3.6.1 (Debian 12) advertises after LOGIN (abridged: no NOTIFY, XLIST too).
CYRUS_CAPS = (
    "IMAP4rev1 LITERAL+ ID ENABLE ACL CHILDREN CONDSTORE CREATE-SPECIAL-USE ESEARCH "
    "LIST-EXTENDED LIST-STATUS METADATA MOVE NAMESPACE OBJECTID QRESYNC SPECIAL-USE UIDPLUS "
    "UNSELECT XLIST IDLE"
)
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


def store(net: Network) -> Any:
    settings = ImapSettings(host="imap.test", starttls=False, timeout=5.0)
    return ImapMailBackend(net.clock, settings, connector=net.connect).store(ALICE)


def cyrus_fetch(command: str, tag: str) -> Lines:
    """UID 1 is left, UID 2 (the highest) was expunged: like Cyrus, report VANISHED only for
    UIDs inside the requested set, where ``*`` is the highest UID still present (1)."""
    found = re.match(r"UID FETCH (\d+):(\d+|\*) ", command)
    assert found
    top = 1 if found.group(2) == "*" else int(found.group(2))
    lines = [
        '* 1 FETCH (UID 1 FLAGS (\\Seen) INTERNALDATE "01-Feb-2026 10:00:00 +0000" MODSEQ (4))'
    ]
    if top >= 2:
        lines.insert(0, "* VANISHED (EARLIER) 2")
    return [*lines, "{tag} OK Completed"]


def test_expunge_of_the_highest_uid_is_reported() -> None:
    net = Network(Clock())
    net.expect(
        ScriptedImapServer(
            [
                *login_script(CYRUS_CAPS),
                (
                    'STATUS "INBOX" .*',
                    [
                        "* STATUS INBOX (MESSAGES 1 UIDNEXT 3 UIDVALIDITY 7 UNSEEN 0 "
                        "HIGHESTMODSEQ 6)",
                        "{tag} OK Completed",
                    ],
                ),
                (
                    'SELECT "INBOX"',
                    [
                        "* 1 EXISTS",
                        "* OK [UIDVALIDITY 7] Ok",
                        "* OK [UIDNEXT 3] Ok",
                        "* OK [HIGHESTMODSEQ 6] Ok",
                        "{tag} OK [READ-WRITE] Completed",
                    ],
                ),
                (r"UID FETCH .* \(CHANGEDSINCE 3 VANISHED\)", cyrus_fetch),
            ]
        )
    )
    changes = run(net, store(net).changes_since("INBOX", SyncPoint(7, 3, 3)))
    assert changes.method == "qresync"
    assert [(m.uid, m.flags) for m in changes.changed] == [(1, frozenset({"\\Seen"}))]
    assert changes.vanished == {2}


def test_lowercase_special_use_attributes() -> None:
    """Cyrus writes \\drafts, \\sent, \\trash in lower case (RFC 3501: case-insensitive)."""
    net = Network(Clock())
    net.expect(
        ScriptedImapServer(
            [
                *login_script(CYRUS_CAPS),
                (
                    r'LIST "" "\*" RETURN \(SUBSCRIBED SPECIAL-USE\)',
                    [
                        '* LIST (\\HasNoChildren \\Subscribed) "/" INBOX',
                        '* LIST (\\HasNoChildren \\Subscribed \\drafts) "/" Drafts',
                        '* LIST (\\HasNoChildren \\Subscribed \\sent) "/" Sent',
                        '* LIST (\\HasNoChildren \\trash) "/" Trash',
                        "{tag} OK Completed",
                    ],
                ),
            ]
        )
    )
    folders = {f.name: f for f in run(net, store(net).list_folders())}
    assert folders["Drafts"].special_use is SpecialUse.DRAFTS
    assert folders["Sent"].special_use is SpecialUse.SENT and folders["Sent"].subscribed
    assert folders["Trash"].special_use is SpecialUse.TRASH and not folders["Trash"].subscribed


def _no_altnamespace_list(trash_exists_at_top: bool) -> tuple[str, Lines]:
    lines = [
        '* LIST (\\HasChildren \\Subscribed) "/" INBOX',
        '* LIST (\\HasNoChildren \\Subscribed \\trash) "/" INBOX/Trash',
    ]
    if trash_exists_at_top:
        lines.append('* LIST (\\HasNoChildren \\Subscribed) "/" Trash')
    return (r'LIST "" "\*" RETURN \(SUBSCRIBED SPECIAL-USE\)', [*lines, "{tag} OK Completed"])


def _inbox() -> tuple[str, Lines]:
    return (
        'SELECT "INBOX"',
        ["* 2 EXISTS", "* OK [UIDVALIDITY 7] Ok", "* OK [UIDNEXT 9] Ok", "{tag} OK Completed"],
    )


def test_delete_without_altnamespace_falls_back_to_the_special_use_trash() -> None:
    """Cyrus without altnamespace (OBM, Opush OP-226): the configured "Trash" is outside the
    user's namespace and refused with a plain NO (no [TRYCREATE]); INBOX/Trash is the one."""
    net = Network(Clock())
    srv = net.expect(
        ScriptedImapServer(
            [
                *login_script(CYRUS_CAPS),
                _inbox(),
                ('UID MOVE 5 "Trash"', ["{tag} NO Mailbox does not exist"]),
                _no_altnamespace_list(trash_exists_at_top=False),
                ("NOOP", ["{tag} OK"]),
                ('UID MOVE 5 "INBOX/Trash"', ["* OK [COPYUID 42 5 8] Ok", "{tag} OK Completed"]),
            ]
        )
    )
    run(net, store(net).delete("INBOX", [5]))
    assert srv.commands[-1] == 'UID MOVE 5 "INBOX/Trash"'


def test_refused_move_to_an_existing_configured_trash_is_an_error() -> None:
    net = Network(Clock())
    net.expect(
        ScriptedImapServer(
            [
                *login_script(CYRUS_CAPS),
                _inbox(),
                ('UID MOVE 5 "Trash"', ["{tag} NO Over quota"]),
                _no_altnamespace_list(trash_exists_at_top=True),
            ]
        )
    )
    with pytest.raises(MailError, match="Over quota"):
        run(net, store(net).delete("INBOX", [5]))
