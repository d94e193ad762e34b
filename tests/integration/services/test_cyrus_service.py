"""The optional Cyrus IMAP service (scripts/install-cyrus + opush_services.py `cyrus`)."""

from __future__ import annotations

import imaplib

import pytest

from tests.support.services import PASSWORD, LocalServices

pytestmark = pytest.mark.integration


def _names(client: imaplib.IMAP4) -> dict[str, bytes]:
    typ, data = client.list()
    assert typ == "OK"
    out = {}
    for line in data:
        assert isinstance(line, bytes)
        attributes, _, name = line.partition(b' "/" ')
        out[name.decode().strip('"')] = attributes.lower()
    return out


def test_demo_users_log_in_and_bad_password_is_refused(cyrus: LocalServices) -> None:
    with cyrus.imap("alice", port=cyrus.cyrus_imap_port) as client:
        assert "QRESYNC" in client.capabilities and "SPECIAL-USE" in client.capabilities
    client = imaplib.IMAP4(cyrus.host, cyrus.cyrus_imap_port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login("alice@example.org", "wrong")
    finally:
        client.shutdown()


def test_fresh_user_gets_special_folders_and_lmtp_delivery(cyrus: LocalServices) -> None:
    user = cyrus.cyrus_user()
    try:
        cyrus.deliver(user, cyrus.message(user, "first"), port=cyrus.cyrus_lmtp_port)
        with cyrus.imap(user, port=cyrus.cyrus_imap_port) as client:
            names = _names(client)
            assert client.select("INBOX") == ("OK", [b"1"])
        assert set(names) == {"INBOX", "Drafts", "Sent", "Trash"}
        assert b"\\sent" in names["Sent"] and b"\\trash" in names["Trash"]
        # The same mailboxes without altnamespace (OBM's other layout): under INBOX/.
        with cyrus.imap(user, port=cyrus.cyrus_inbox_imap_port) as client:
            assert set(_names(client)) == {"INBOX", "INBOX/Drafts", "INBOX/Sent", "INBOX/Trash"}
    finally:
        cyrus.cyrus_remove_user(user)
    client = imaplib.IMAP4(cyrus.host, cyrus.cyrus_imap_port, timeout=10)
    try:
        with pytest.raises(imaplib.IMAP4.error):
            client.login(user, PASSWORD)  # removed: its login is gone
    finally:
        client.shutdown()


def test_kick_ends_the_users_sessions(cyrus: LocalServices) -> None:
    user = cyrus.cyrus_user()
    try:
        client = cyrus.imap(user, port=cyrus.cyrus_imap_port)
        client.select("INBOX")
        cyrus.cyrus_kick(user)
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            client.noop()
    finally:
        cyrus.cyrus_remove_user(user)
