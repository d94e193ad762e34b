"""Each local service does what the rest of the suite relies on (tests/support/services.py)."""

from __future__ import annotations

import base64
import imaplib
import smtplib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

import psycopg2
import pytest

from tests.support.services import PASSWORD, LocalServices, ServiceControl

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- Dovecot


def test_imap_login_ok_and_bad_password_refused(dovecot: LocalServices) -> None:
    for user in dovecot.users:
        with dovecot.imap(user.address) as client:
            assert client.state == "AUTH"
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    try:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(dovecot.alice.address, "wrong")
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(f"nobody@{dovecot.domain}", PASSWORD)
    finally:
        client.shutdown()


def test_imap_capabilities(dovecot: LocalServices) -> None:
    with dovecot.imap("alice") as client:
        _, data = client.capability()
    caps = set(data[0].decode().upper().split())
    assert {
        "CONDSTORE",
        "QRESYNC",
        "IDLE",
        "ENABLE",
        "NOTIFY",
        "SPECIAL-USE",
        "MOVE",
        "UIDPLUS",
    } <= caps


def test_pool_users_log_in(dovecot: LocalServices) -> None:
    for n in (1, 1000):
        with dovecot.imap(dovecot.pool_user(n)) as client:
            assert client.state == "AUTH"


def test_fresh_user_has_special_folders_and_empty_inbox(
    dovecot: LocalServices, fresh_user: str
) -> None:
    with dovecot.imap(fresh_user) as client:
        _, folders = client.list()
        listed = {line.decode() for line in folders if line}
        _, status = client.status("INBOX", "(MESSAGES)")
    for name, flag in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Trash", "\\Trash")):
        assert any(line.endswith(f'"/" {name}') and flag in line for line in listed), listed
    assert b"(MESSAGES 0)" in status[0]


def test_lmtp_delivery_is_visible_on_return(dovecot: LocalServices, fresh_user: str) -> None:
    msg = dovecot.message(fresh_user, body="déjà vu\n")
    dovecot.deliver(fresh_user, msg)
    with dovecot.imap(fresh_user) as client:
        client.select("INBOX")
        _, data = client.search(None, "HEADER", "Message-ID", msg["Message-ID"])
        assert data[0].split() == [b"1"]


def test_idle_reports_new_mail_quickly(dovecot: LocalServices, fresh_user: str) -> None:
    with dovecot.imap(fresh_user) as client:
        client.select("INBOX")
        tag = client._new_tag()  # imaplib (3.11) has no IDLE: speak it by hand
        client.send(tag + b" IDLE\r\n")
        assert client.readline().startswith(b"+")
        started = time.monotonic()
        dovecot.deliver(fresh_user, dovecot.message(fresh_user))
        client.sock.settimeout(5)
        line = client.readline()
        while b"EXISTS" not in line:
            line = client.readline()
        assert line.strip() == b"* 1 EXISTS"
        assert time.monotonic() - started < 2
        client.send(b"DONE\r\n")
        while not line.startswith(tag):
            line = client.readline()
        assert line.startswith(tag + b" OK")


def test_reset_mailbox_empties_and_removes_folders(dovecot: LocalServices, fresh_user: str) -> None:
    with dovecot.imap(fresh_user) as client:
        assert client.create("Projets/2026")[0] == "OK"
        assert client.create("&AMk-t&AOk-")[0] == "OK"  # "Été" in modified UTF-7
    dovecot.deliver(fresh_user, dovecot.message(fresh_user))
    dovecot.reset_mailbox(fresh_user)
    with dovecot.imap(fresh_user) as client:
        _, folders = client.list()
        names = sorted(line.decode().rsplit('"/" ', 1)[1] for line in folders if line)
        _, status = client.status("INBOX", "(MESSAGES)")
    assert names == ["Drafts", "INBOX", "Notes", "Sent", "Trash"]
    assert b"(MESSAGES 0)" in status[0]


def test_kick_drops_the_users_connections(dovecot: LocalServices, fresh_user: str) -> None:
    client = dovecot.imap(fresh_user)
    try:
        client.select("INBOX")
        dovecot.kick(fresh_user)
        client.sock.settimeout(5)
        with pytest.raises((imaplib.IMAP4.abort, OSError)):
            for _ in range(5):
                client.noop()
    finally:
        client.shutdown()


# --------------------------------------------------------------------------- Postfix


def test_smtp_to_bob_lands_in_his_inbox(postfix: LocalServices) -> None:
    msg = postfix.message(postfix.bob, sender=postfix.alice.address)
    delivery = postfix.smtp_send(msg)
    assert delivery.status == {postfix.bob.address: "sent"}
    assert postfix.wait_for_messages("bob", "HEADER", "Message-ID", msg["Message-ID"], timeout=0)


def test_smtp_to_another_domain_lands_in_catchall(postfix: LocalServices, fresh_user: str) -> None:
    msg = postfix.message("someone@elsewhere.example.com", Cc=fresh_user)
    delivery = postfix.smtp_send(msg)
    assert delivery.all_sent, delivery
    assert postfix.wait_for_messages(
        postfix.catchall, "HEADER", "Message-ID", msg["Message-ID"], timeout=0
    )
    assert postfix.wait_for_messages(
        fresh_user, "HEADER", "Message-ID", msg["Message-ID"], timeout=0
    )


def test_smtp_stopped_then_restarted(
    postfix: LocalServices, service_control: ServiceControl
) -> None:
    service_control.stop("postfix")
    with pytest.raises(OSError):
        smtplib.SMTP(postfix.host, postfix.smtp_port, timeout=2)
    service_control.start("postfix")
    assert postfix.smtp_send(postfix.message("bob")).all_sent


# --------------------------------------------------------------------------- slapd


def _ldap(tool: str, services: LocalServices, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "-x", "-H", services.ldap_url, *args], capture_output=True, text=True, timeout=10
    )


def test_ldap_search_and_bind(slapd: LocalServices) -> None:
    found = _ldap("ldapsearch", slapd, "-LLL", "-b", slapd.ldap_base, "(mail=bob@example.org)")
    assert found.returncode == 0, found.stderr
    assert f"dn: {slapd.bob.ldap_dn}" in found.stdout
    for line in ("cn: Bob Durand", "sn: Durand", "givenName: Bob", "telephoneNumber: +33 1"):
        assert line in found.stdout
    assert "userPassword" not in found.stdout  # anonymous readers never see it
    ok = _ldap("ldapwhoami", slapd, "-D", slapd.alice.ldap_dn, "-w", PASSWORD)
    assert ok.returncode == 0 and slapd.alice.ldap_dn in ok.stdout
    bad = _ldap("ldapwhoami", slapd, "-D", slapd.alice.ldap_dn, "-w", "wrong")
    assert bad.returncode == 49
    admin = _ldap("ldapwhoami", slapd, "-D", slapd.ldap_admin_dn, "-w", slapd.ldap_admin_password)
    assert admin.returncode == 0, admin.stderr


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_accepts_connections(
    postgres: LocalServices, fresh_pg_database: dict[str, Any]
) -> None:
    with psycopg2.connect(**postgres.pg_connect_params) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_user, inet_server_port()")
        assert cur.fetchone() == ("postgres", postgres.postgres_port)
    conn.close()
    with psycopg2.connect(**fresh_pg_database) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x int)")
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchone() == (0,)
    conn.close()


# --------------------------------------------------------------------------- Radicale


def _propfind(url: str, user: str, password: str) -> int:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        url, method="PROPFIND", headers={"Authorization": f"Basic {auth}", "Depth": "0"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_radicale_propfind_with_auth(radicale: LocalServices, fresh_dav_user: str) -> None:
    alice = radicale.alice.address
    assert _propfind(f"{radicale.radicale_url}{alice}/", alice, PASSWORD) == 207
    assert _propfind(f"{radicale.radicale_url}{alice}/", alice, "wrong") == 401
    assert _propfind(f"{radicale.radicale_url}{fresh_dav_user}/", fresh_dav_user, PASSWORD) == 207


# --------------------------------------------------------------------------- all together


def test_local_services_all_listen(local_services: LocalServices) -> None:
    s = local_services
    for port in (
        s.imap_port,
        s.lmtp_port,
        s.smtp_port,
        s.ldap_port,
        s.postgres_port,
        s.radicale_port,
    ):
        with socket.create_connection((s.host, port), timeout=2):
            pass
    assert s.pool_user(7) == "user0007@example.org"
    assert s.new_user() != s.new_user()
