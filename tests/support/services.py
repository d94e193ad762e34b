"""The local services (Dovecot, Postfix, slapd, PostgreSQL, Radicale) as tests see them.

The fixtures in ``tests/conftest.py`` hand out one `LocalServices`: where each service listens,
the demo users, and blocking helpers (deliver over LMTP, send through Postfix, log into IMAP,
reset a mailbox, stop/start a service).  Services are started by ``scripts/start-services``
(logic and constants in ``scripts/services/opush_services.py``, loaded here so the two never
disagree).  Sessions running side by side share the services: each session takes a lease, and
the last session to leave stops what a fixture started (``OPUSH_KEEP_SERVICES=1`` keeps them).
"""

from __future__ import annotations

import contextlib
import fcntl
import imaplib
import importlib.util
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from email.message import EmailMessage, Message
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "services" / "opush_services.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opush_services", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("opush_services", module)
    spec.loader.exec_module(module)
    return module


svc: Any = sys.modules.get("opush_services") or _load_script()

HOST: str = svc.HOST
DOMAIN: str = svc.DOMAIN
PASSWORD: str = svc.PASSWORD
SERVICES: tuple[str, ...] = svc.DEFAULT_SERVICES


class ServicesError(Exception):
    """A local service could not be started, stopped or used; the message has the details."""


@attrs.frozen
class DemoUser:
    """One of alice, bob, carol: in Dovecot, LDAP and Radicale, password ``secret``."""

    login: str
    given_name: str
    surname: str
    telephone: str
    password: str = PASSWORD

    @property
    def address(self) -> str:
        return f"{self.login}@{DOMAIN}"

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}"

    @property
    def ldap_dn(self) -> str:
        return f"uid={self.login},{svc.LDAP_USERS_BASE}"


DEMO_USERS = tuple(DemoUser(*fields) for fields in svc.DEMO_USERS)


def address(user: str | DemoUser) -> str:
    """``alice`` -> ``alice@example.org``; full addresses and DemoUsers pass through."""
    if isinstance(user, DemoUser):
        return user.address
    return user if "@" in user else f"{user}@{DOMAIN}"


def new_address(tag: str = "t") -> str:
    """A never-used Dovecot account (``fresh-*`` logs in with PASSWORD, empty mailbox)."""
    return f"{svc.FRESH_PREFIX}{tag}-{uuid.uuid4().hex[:12]}@{DOMAIN}"


def as_bytes(message: bytes | str | Message) -> bytes:
    """A message as CRLF bytes, whatever the caller built."""
    if isinstance(message, Message):
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    elif isinstance(message, str):
        data = message.encode("utf-8")
    else:
        data = message
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


@attrs.frozen
class Delivery:
    """What Postfix did with one message: queue id and final status per recipient."""

    queue_id: str
    status: dict[str, str]
    log: str

    @property
    def all_sent(self) -> bool:
        return bool(self.status) and all(s == "sent" for s in self.status.values())


def run_script(action: str, *names: str) -> str:
    """``scripts/start-services`` and friends, as a subprocess; raises with its output."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), action, *names],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise ServicesError(f"{action} {' '.join(names)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def cyrus_installed() -> bool:
    """Whether scripts/install-cyrus has unpacked Cyrus (it cannot be apt-installed here)."""
    return bool((svc.CYRUS_HOME / "usr" / "lib" / "cyrus" / "bin" / "master").exists())


@attrs.define
class LocalServices:
    """Addresses, users and helpers for the local services; one per test session."""

    state_dir: Path = attrs.field(factory=lambda: svc.state_dir())
    host: str = HOST
    domain: str = DOMAIN
    password: str = PASSWORD
    imap_port: int = svc.IMAP_PORT
    lmtp_port: int = svc.LMTP_PORT
    sieve_port: int = svc.SIEVE_PORT  # Dovecot's ManageSieve
    smtp_port: int = svc.SMTP_PORT
    ldap_port: int = svc.LDAP_PORT
    postgres_port: int = svc.POSTGRES_PORT
    radicale_port: int = svc.RADICALE_PORT
    cyrus_imap_port: int = svc.CYRUS_IMAP_PORT
    cyrus_lmtp_port: int = svc.CYRUS_LMTP_PORT
    cyrus_inbox_imap_port: int = svc.CYRUS_INBOX_IMAP_PORT  # the same without altnamespace
    ldap_url: str = svc.LDAP_URL
    ldap_base: str = svc.LDAP_BASE
    ldap_users_base: str = svc.LDAP_USERS_BASE
    ldap_admin_dn: str = svc.LDAP_ADMIN_DN
    ldap_admin_password: str = svc.LDAP_ADMIN_PASSWORD
    catchall: str = svc.CATCHALL
    users: tuple[DemoUser, ...] = DEMO_USERS

    # --- who --------------------------------------------------------------------------------

    @property
    def alice(self) -> DemoUser:
        return self.users[0]

    @property
    def bob(self) -> DemoUser:
        return self.users[1]

    @property
    def carol(self) -> DemoUser:
        return self.users[2]

    def pool_user(self, n: int) -> str:
        """``user0001@example.org`` .. ``user1000@example.org`` (Dovecot only)."""
        if not 1 <= n <= svc.POOL_SIZE:
            raise ValueError(f"pool users are 1..{svc.POOL_SIZE}")
        return str(svc.pool_user(n))

    def new_user(self, tag: str = "t") -> str:
        return new_address(tag)

    # --- where ------------------------------------------------------------------------------

    @property
    def pg_connect_params(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg2.connect`` (trust auth, no password)."""
        return {
            "host": self.host,
            "port": self.postgres_port,
            "user": svc.POSTGRES_USER,
            "dbname": "postgres",
        }

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://{svc.POSTGRES_USER}@{self.host}:{self.postgres_port}/postgres"

    @property
    def radicale_url(self) -> str:
        return f"http://{self.host}:{self.radicale_port}/"

    def log_path(self, name: str) -> Path:
        return Path(svc.service(name, self.state_dir).log)

    # --- mail -------------------------------------------------------------------------------

    def imap(
        self, user: str | DemoUser, password: str | None = None, port: int | None = None
    ) -> imaplib.IMAP4:
        """A logged-in blocking client; use it as ``with services.imap("bob") as c:``.

        ``port=services.cyrus_imap_port`` for Cyrus."""
        client = imaplib.IMAP4(self.host, port or self.imap_port, timeout=30)
        try:
            client.login(address(user), password or PASSWORD)
        except BaseException:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise
        return client

    def deliver(
        self,
        rcpt: str | DemoUser | Iterable[str | DemoUser],
        message: bytes | str | Message,
        sender: str = f"sender@{DOMAIN}",
        port: int | None = None,
    ) -> None:
        """Store a message straight into Dovecot over LMTP; it is in the mailbox on return.

        ``port=services.cyrus_lmtp_port`` delivers into Cyrus instead."""
        rcpts = [address(rcpt)] if isinstance(rcpt, str | DemoUser) else [address(r) for r in rcpt]
        with smtplib.LMTP(self.host, port or self.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail(sender, rcpts, as_bytes(message))
        if refused:
            raise ServicesError(f"LMTP refused {refused}")

    def message(
        self,
        to: str | DemoUser,
        subject: str | None = None,
        body: str = "hello\n",
        sender: str = f"sender@{DOMAIN}",
        **headers: str,
    ) -> EmailMessage:
        """A small text message with a unique subject and Message-ID unless given.

        Extra headers as keywords, ``_`` for ``-`` (``In_Reply_To="<x@y>"``).
        """
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = address(to)
        msg["Subject"] = subject or f"test {uuid.uuid4().hex}"
        if "Message_ID" not in headers:
            msg["Message-ID"] = f"<{uuid.uuid4().hex}@{DOMAIN}>"
        for name, value in headers.items():
            msg[name.replace("_", "-")] = value
        msg.set_content(body)
        return msg

    def smtp_send(
        self,
        message: bytes | str | Message,
        *,
        sender: str | None = None,
        recipients: Iterable[str | DemoUser] | None = None,
        wait: bool = True,
        timeout: float = 15.0,
    ) -> Delivery:
        """Submit through Postfix (127.0.0.1:2525); by default wait until Postfix is done with it.

        Recipients default to the To/Cc/Bcc of an email.message; the sender to its From.  The
        returned `Delivery` says per recipient ``sent``/``bounced``/``deferred`` (from the
        maillog).  Mail to other domains is delivered to ``catchall@example.org``.
        """
        if isinstance(message, Message):
            if sender is None:
                sender = _addresses(message.get_all("From", []))[0] if message["From"] else None
            if recipients is None:
                recipients = _addresses(
                    [
                        *message.get_all("To", []),
                        *message.get_all("Cc", []),
                        *message.get_all("Bcc", []),
                    ]
                )
        if recipients is None:
            raise ValueError("smtp_send needs recipients for a raw message")
        rcpts = [address(r) for r in recipients]
        data = as_bytes(message)
        if isinstance(message, Message) and message["Bcc"]:
            data = as_bytes(_without_bcc(message))
        maillog = self.log_path("postfix")
        offset = maillog.stat().st_size if maillog.exists() else 0
        with smtplib.SMTP(self.host, self.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            code, resp = smtp.mail(sender or f"sender@{DOMAIN}")
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, sender or "")
            refused = {}
            for r in rcpts:
                code, resp = smtp.rcpt(r)
                if code not in (250, 251):
                    refused[r] = (code, resp)
            if len(refused) == len(rcpts):
                raise smtplib.SMTPRecipientsRefused(refused)
            code, resp = smtp.data(data)
            if code != 250:
                raise smtplib.SMTPDataError(code, resp)
        found = re.search(rb"queued as ([0-9A-Za-z]+)", resp)
        if not found:
            raise ServicesError(f"no queue id in Postfix's answer {resp!r}")
        queue_id = found.group(1).decode()
        status = {r: "refused" for r in refused}
        if not wait:
            return Delivery(queue_id, status, "")
        deadline = time.monotonic() + timeout
        text = ""
        while True:
            with open(maillog, "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
            mine = [line for line in text.splitlines() if f" {queue_id}: " in line]
            for line in mine:
                m = re.search(r"to=<([^>]*)>.*?(?:orig_to=<([^>]*)>.*?)?status=(\w+)", line)
                if m:
                    status[m.group(2) or m.group(1)] = m.group(3)
            if any(line.endswith(f"{queue_id}: removed") for line in mine):
                return Delivery(queue_id, status, "\n".join(mine))
            if time.monotonic() > deadline:
                raise ServicesError(
                    f"Postfix still holds {queue_id} after {timeout:.0f} s; status {status}; "
                    "maillog:\n" + "\n".join(mine[-20:])
                )
            time.sleep(0.02)

    def wait_for_messages(
        self,
        user: str | DemoUser,
        *criteria: str,
        count: int = 1,
        mailbox: str = "INBOX",
        timeout: float = 10.0,
    ) -> list[bytes]:
        """Poll IMAP SEARCH until ``count`` messages match (e.g. ``'SUBJECT', '"xyz"'``); UIDs."""
        deadline = time.monotonic() + timeout
        with self.imap(user) as client:
            while True:
                client.select(_quote(mailbox), readonly=True)
                typ, data = client.uid("SEARCH", *(criteria or ("ALL",)))
                uids = data[0].split() if typ == "OK" and data and data[0] else []
                if len(uids) >= count:
                    return uids
                if time.monotonic() > deadline:
                    raise ServicesError(
                        f"{len(uids)} of {count} messages in {address(user)} {mailbox} "
                        f"after {timeout} s"
                    )
                time.sleep(0.02)

    def doveadm(self, *args: str) -> str:
        try:
            return str(svc.service("dovecot", self.state_dir).doveadm(*args))
        except svc.ServiceError as e:
            raise ServicesError(str(e)) from None

    def kick(self, user: str | DemoUser) -> None:
        """Drop every IMAP connection of ``user`` (as if the server killed its process)."""
        self.doveadm("kick", address(user))

    def reset_mailbox(self, user: str | DemoUser) -> None:
        """Empty every folder of ``user`` and delete all but INBOX/Sent/Drafts/Trash.

        UIDVALIDITY stays; UIDs keep growing.  Prefer the ``fresh_user`` fixture, which costs
        nothing and gives a brand-new mailbox.
        """
        user = address(user)
        keep = {"INBOX", "Sent", "Drafts", "Trash"}
        names = [n for n in self.doveadm("mailbox", "list", "-u", user).splitlines() if n]
        # Children first, so each delete is of a leaf.
        for name in sorted((n for n in names if n not in keep), key=lambda n: -n.count("/")):
            try:
                self.doveadm("mailbox", "delete", "-u", user, "-s", name)
            except ServicesError as e:
                if "doesn't exist" not in str(e):  # a parent that only holds children
                    raise
        self.doveadm("expunge", "-u", user, "mailbox", "*", "all")

    def remove_mailbox(self, user: str) -> None:
        """Kick and delete a throwaway (``fresh-*``) user's whole home, best effort."""
        if not user.split("@")[0].startswith(svc.FRESH_PREFIX):
            raise ValueError(f"only fresh-* users are removed, not {user}")
        with contextlib.suppress(ServicesError):
            self.kick(user)
        local, _, domain = user.partition("@")
        shutil.rmtree(self.state_dir / "dovecot" / "mail" / domain / local, ignore_errors=True)

    # --- Cyrus (optional service, the ``cyrus`` fixture) -------------------------------------

    def cyrus_user(self, user: str | None = None, password: str = PASSWORD) -> str:
        """A Cyrus login (a new ``fresh-*`` address unless given); returns its address.

        Its INBOX, Drafts, Sent and Trash appear on first login or delivery."""
        user = address(user) if user else new_address()
        try:
            svc.service("cyrus", self.state_dir).add_user(user, password)
        except svc.ServiceError as e:
            raise ServicesError(str(e)) from None
        return user

    def cyrus_kick(self, user: str | DemoUser) -> None:
        """End every Cyrus IMAP session of ``user`` (SIGTERM to its imapd processes)."""
        procs = self.state_dir / "cyrus" / "run" / "proc"
        for entry in procs.iterdir() if procs.is_dir() else ():
            with contextlib.suppress(OSError, ValueError):
                fields = entry.read_text().split("\t")
                if fields[0].startswith("imap") and fields[2:3] == [address(user)]:
                    os.kill(int(entry.name), signal.SIGTERM)

    def cyrus_remove_user(self, user: str) -> None:
        """Delete a throwaway (``fresh-*``) Cyrus user's mailboxes and login, best effort."""
        if not user.split("@")[0].startswith(svc.FRESH_PREFIX):
            raise ValueError(f"only fresh-* users are removed, not {user}")
        self.cyrus_kick(user)
        local, _, domain = user.partition("@")
        with contextlib.suppress(Exception):
            with self.imap(svc.CYRUS_ADMIN, port=self.cyrus_imap_port) as admin:
                box = _quote(f"user/{local}@{domain}")
                admin.setacl(box, svc.CYRUS_ADMIN, "lrswipkxtecda")  # admins may delete
                admin.delete(box)
        with contextlib.suppress(svc.ServiceError):
            svc.service("cyrus", self.state_dir).remove_user(user)

    # --- DAV --------------------------------------------------------------------------------

    def add_dav_user(self, user: str, password: str = PASSWORD) -> None:
        """Radicale reads its users file on every login: appending is enough."""
        users = self.state_dir / "radicale" / "users"
        with open(users, "a") as f:
            f.write(f"{address(user)}:{password}\n")

    # --- control ----------------------------------------------------------------------------

    def is_running(self, name: str) -> bool:
        return bool(svc.service(name, self.state_dir).healthy())

    def start(self, *names: str) -> str:
        return run_script("start", *names)

    def stop(self, *names: str) -> str:
        """Stop cleanly (others sharing these services see it too: keep it short)."""
        if not names:
            raise ValueError("name the services to stop")
        return run_script("stop", *names)

    def kill(self, *names: str) -> str:
        """SIGKILL the service and its children (a crash); `start` brings it back."""
        if not names:
            raise ValueError("name the services to kill")
        return run_script("kill", *names)

    def restart(self, *names: str) -> str:
        return run_script("restart", *names)


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addresses(values: Iterable[Any]) -> list[str]:
    from email.utils import getaddresses

    return [addr for _, addr in getaddresses([str(v) for v in values]) if addr]


def _without_bcc(message: Message) -> Message:
    import copy

    clone = copy.copy(message)
    del clone["Bcc"]
    return clone


class ServicesLease:
    """This session's hold on the shared services.

    `ensure` starts what is missing (through the script) and remembers, in the state directory,
    that a fixture started it.  `release` drops the lease; when no other live session holds one,
    the services fixtures started are stopped.  Services someone started by hand stay up.
    """

    def __init__(self, services: LocalServices | None = None) -> None:
        self.services = services or LocalServices()
        self.root = self.services.state_dir
        self.lease: Path | None = None
        self.ensured: set[str] = set()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".leases.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def ensure(self, *names: str) -> LocalServices:
        wanted = [n for n in names if n not in self.ensured]
        if not wanted:
            return self.services
        with self._locked():
            if self.lease is None:
                (self.root / "leases").mkdir(exist_ok=True)
                self.lease = self.root / "leases" / str(os.getpid())
                self.lease.write_text(f"{os.getpid()}\n")
            before = {n for n in wanted if self.services.is_running(n)}
            if len(before) < len(wanted):
                run_script("start", *wanted)
            markers = self.root / "fixture-started"
            markers.mkdir(exist_ok=True)
            for n in set(wanted) - before:
                (markers / n).touch()
        self.ensured.update(wanted)
        return self.services

    def release(self) -> list[str]:
        """Drop the lease; stop what fixtures started if nobody else holds one.  Returns those."""
        if self.lease is None:
            return []
        with self._locked():
            self.lease.unlink(missing_ok=True)
            self.lease = None
            for other in (self.root / "leases").iterdir():
                pid = int(other.name) if other.name.isdigit() else 0
                if svc.pid_alive(pid):
                    return []
                other.unlink(missing_ok=True)
            if os.environ.get("OPUSH_KEEP_SERVICES"):
                return []
            markers = self.root / "fixture-started"
            names = sorted(m.name for m in markers.iterdir()) if markers.is_dir() else []
            if names:
                run_script("stop", *names)
            for n in names:
                (markers / n).unlink(missing_ok=True)
            return names


@attrs.define
class ServiceControl:
    """Stop/kill/start services inside one test; whatever it stopped is running again after."""

    services: LocalServices
    touched: set[str] = attrs.field(factory=set)

    def stop(self, name: str) -> None:
        self.touched.add(name)
        self.services.stop(name)

    def kill(self, name: str) -> None:
        self.touched.add(name)
        self.services.kill(name)

    def start(self, name: str) -> None:
        self.services.start(name)

    def restart(self, name: str) -> None:
        self.touched.add(name)
        self.services.restart(name)

    def restore(self) -> None:
        if self.touched:
            self.services.start(*sorted(self.touched))
            self.touched.clear()
