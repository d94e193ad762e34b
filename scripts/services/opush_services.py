#!/usr/bin/env python3
"""Local services for opush's demo and tests, started as plain processes on 127.0.0.1.

Dovecot (IMAP + LMTP), Postfix (SMTP -> Dovecot LMTP), OpenLDAP slapd, PostgreSQL and Radicale
(CalDAV/CardDAV), plus an optional Cyrus IMAP.  Everything lives under one state directory,
``$OPUSH_SERVICES_DIR`` (default ``<repo>/var/services``): configuration rendered from the
templates next to this file, data, logs and pid files.  No systemd: each service is a process
this script starts and stops through its pid file.

Used by ``scripts/start-services``, ``scripts/stop-services``, ``scripts/services-status`` and
by the pytest fixtures (``tests/support/services.py`` imports the constants below).  Standard
library only, so it runs with any Python 3.11 (the venv's or the system's).  Must run as root.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

HOST = "127.0.0.1"
DOMAIN = "example.org"
PASSWORD = "secret"
IMAP_PORT = 1143
LMTP_PORT = 2424
SIEVE_PORT = 5190
SMTP_PORT = 2525
LDAP_PORT = 3389
POSTGRES_PORT = 5433
RADICALE_PORT = 5232
CYRUS_IMAP_PORT = 1144
CYRUS_LMTP_PORT = 2425
# The same Cyrus mailboxes without altnamespace (folders under INBOX/, Opush OP-226).
CYRUS_INBOX_IMAP_PORT = 1146
# Unpacked by scripts/install-cyrus (cyrus-imapd cannot be installed beside dovecot-imapd).
CYRUS_HOME = Path(os.environ.get("OPUSH_CYRUS_DIR") or "/opt/opush-cyrus")
CYRUS_USER = "cyrus"  # the Unix user master drops to (compiled into Debian's binaries)
CYRUS_ADMIN = f"cyrus@{DOMAIN}"  # admin of the domain (imapd.conf admins), password PASSWORD

LDAP_URL = f"ldap://{HOST}:{LDAP_PORT}/"
LDAP_BASE = "dc=example,dc=org"
LDAP_USERS_BASE = f"ou=users,{LDAP_BASE}"
LDAP_ADMIN_DN = f"cn=admin,{LDAP_BASE}"
LDAP_ADMIN_PASSWORD = "admin"
POSTGRES_USER = "postgres"

# (login, given name, surname, telephone): the demo users, everywhere (IMAP, LDAP, Radicale).
DEMO_USERS = (
    ("alice", "Alice", "Martin", "+33 1 23 45 67 01"),
    ("bob", "Bob", "Durand", "+33 1 23 45 67 02"),
    ("carol", "Carol", "Petit", "+33 1 23 45 67 03"),
)
# Mail sent to any other domain through Postfix lands in this mailbox.
CATCHALL = f"catchall@{DOMAIN}"
# user0001..user1000@example.org exist in Dovecot only (push benchmark).
POOL_SIZE = 1000
# Any fresh-<anything>@example.org logs into Dovecot with PASSWORD (one empty mailbox per test).
FRESH_PREFIX = "fresh-"

DEFAULT_SERVICES = ("dovecot", "postfix", "ldap", "postgres", "radicale")
OPTIONAL_SERVICES = ("cyrus",)
ALL_SERVICES = DEFAULT_SERVICES + OPTIONAL_SERVICES
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def pool_user(n: int) -> str:
    return f"user{n:04d}@{DOMAIN}"


def demo_address(login: str) -> str:
    return f"{login}@{DOMAIN}"


def state_dir() -> Path:
    return Path(os.environ.get("OPUSH_SERVICES_DIR") or REPO / "var" / "services").absolute()


class ServiceError(Exception):
    """A service could not be started or stopped; the message says why (with its log tail)."""


# ---------------------------------------------------------------------------------------------
# small helpers


def render(template: str, **values: object) -> str:
    """Fill ``@@NAME@@`` placeholders (``$`` and ``%`` are taken by the configs themselves)."""
    text = (HERE / template).read_text()

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise ServiceError(f"{template}: no value for @@{m.group(1)}@@")
        return str(values[m.group(1)])

    return re.sub(r"@@([A-Z_]+)@@", one, text)


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(mode)
    tmp.replace(path)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        data = path.read_bytes()[-20000:].decode("utf-8", "replace").splitlines()
    except OSError:
        return f"    (no log at {path})"
    if not data:
        return f"    (log {path} is empty)"
    return "\n".join("    " + line for line in data[-lines:])


def run(cmd: list[str], *, log: Path | None = None, check: bool = True, **kw: object) -> str:
    """Run a short command; never lets a daemon keep our stdout (fixtures capture it)."""
    if log is not None:
        with open(log, "ab") as out:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, **kw)  # type: ignore[call-overload]
        output = ""
    else:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
        output = proc.stdout + proc.stderr
    if check and proc.returncode != 0:
        tail = log_tail(log) if log else "\n".join("    " + x for x in output.splitlines()[-25:])
        raise ServiceError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return output


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int | None, name: str | None = None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":  # zombie: dead, not yet reaped
        return False
    if name is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return name in cmdline or name in stat


def read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split()[0]
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ]
        )
        return pwd.getpwnam(name)


def make_dirs(*paths: Path, owner: str | None = None, mode: int = 0o755) -> None:
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)
        p.chmod(mode)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(p, pw.pw_uid, pw.pw_gid)


def check_reachable(path: Path, user: str) -> None:
    """Fail early, and clearly, when a service user cannot walk down to its directory."""
    pw = pwd.getpwnam(user)
    groups = {pw.pw_gid} | {g for g in os.getgrouplist(user, pw.pw_gid)}
    for parent in reversed(path.parents):
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            raise ServiceError(
                f"user {user} cannot enter {parent} (mode {oct(st.st_mode & 0o777)}); set "
                f"OPUSH_SERVICES_DIR to a directory every user can traverse, e.g. /var/tmp/opush"
            )


def which(*candidates: str) -> str:
    for c in candidates:
        found = shutil.which(c) or (c if os.access(c, os.X_OK) and "/" in c else None)
        if found:
            return found
    raise ServiceError(f"not installed: {candidates[0]} (run scripts/bootstrap)")


# ---------------------------------------------------------------------------------------------
# services


class Service:
    """One local service: where it lives, how to start it, how to know it is up."""

    name = ""
    ports: tuple[int, ...] = ()
    process_name: str | None = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / self.name

    @property
    def pidfile(self) -> Path:
        raise NotImplementedError

    @property
    def log(self) -> Path:
        return self.dir / f"{self.name}.log"

    def pid(self) -> int | None:
        pid = read_pid(self.pidfile)
        return pid if pid_alive(pid, self.process_name) else None

    def running(self) -> bool:
        return self.pid() is not None

    def healthy(self) -> bool:
        return self.running() and all(port_open(p) for p in self.ports)

    def prepare(self) -> None:
        """Create directories and configuration; cheap, run before every start."""

    def launch(self) -> None:
        raise NotImplementedError

    def start(self) -> bool:
        """Start unless running; True if started.  Waits until every port answers."""
        if self.running():
            self.wait_ready()
            return False
        for port in self.ports:
            if port_open(port):
                raise ServiceError(
                    f"{self.name}: port {HOST}:{port} is already taken by another process "
                    f"(not the one in {self.pidfile}); stop it first"
                )
        self.prepare()
        self.launch()
        self.wait_ready()
        return True

    def wait_ready(self) -> None:
        began = time.monotonic()
        while time.monotonic() < began + START_TIMEOUT:
            running = self.running()
            if running and all(port_open(p) for p in self.ports):
                return
            if not running and time.monotonic() > began + 3 and not _launching():
                break  # no process after 3 s: it died (its log says why)
            time.sleep(0.02)
        state = "is running but not listening" if self.running() else "did not start"
        ports = ", ".join(f"{HOST}:{p}" for p in self.ports)
        raise ServiceError(
            f"{self.name} {state} on {ports}; last lines of {self.log}:\n{log_tail(self.log)}"
        )

    def stop(self) -> bool:
        """Stop if running; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        children = descendants(pid)
        self.terminate(pid)
        self.wait_gone(pid, children)
        return True

    def terminate(self, pid: int) -> None:
        os.kill(pid, signal.SIGTERM)

    def wait_gone(self, pid: int, children: Sequence[int] = ()) -> None:
        """Until the service, its children and its ports are gone (a restart can bind again)."""
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if (
                not pid_alive(pid)
                and not any(pid_alive(c) for c in children)
                and not any(port_open(p) for p in self.ports)
            ):
                break
            time.sleep(0.02)
        else:
            raise ServiceError(
                f"{self.name} (pid {pid}) did not stop within {STOP_TIMEOUT:.0f} s:\n"
                + log_tail(self.log)
            )
        # Dead, but a zombie until init reaps it, and daemons check their old pid with
        # kill(pid, 0), which a zombie passes ("already running").  Wait for the reaping; if
        # init never reaps, the pid file goes (the process is certainly dead).
        reaped = time.monotonic() + 3
        while Path(f"/proc/{pid}").exists():
            if time.monotonic() > reaped:
                self.pidfile.unlink(missing_ok=True)
                return
            time.sleep(0.01)

    def kill(self) -> bool:
        """A crash: SIGKILL the service and all its children, leaving its files as they are."""
        pid = self.pid()
        if pid is None:
            return False
        children = descendants(pid)
        for p in [pid, *children]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self.wait_gone(pid, children)
        return True


class Dovecot(Service):
    name = "dovecot"
    ports = (IMAP_PORT, LMTP_PORT, SIEVE_PORT)
    process_name = "dovecot"

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "run" / "master.pid"

    @property
    def users_file(self) -> Path:
        return self.dir / "users"

    @property
    def mail(self) -> Path:
        return self.dir / "mail"

    def prepare(self) -> None:
        vmail = ensure_user("vmail")
        make_dirs(self.dir, self.dir / "run", self.dir / "state")
        # A stale socket would make auth retry it for 5 s; missing, the penalty is just off.
        (self.dir / "run" / "anvil-auth-penalty").unlink(missing_ok=True)
        make_dirs(self.mail, owner="vmail", mode=0o750)
        check_reachable(self.mail, "vmail")
        # Throwaway test mailboxes from earlier runs.
        for home in (self.mail / DOMAIN).glob(FRESH_PREFIX + "*"):
            shutil.rmtree(home, ignore_errors=True)
        lines = [
            f"{demo_address(login)}:{{PLAIN}}{PASSWORD}::::{first} {last}::"
            for login, first, last, _ in DEMO_USERS
        ]
        lines.append(f"{CATCHALL}:{{PLAIN}}{PASSWORD}::::Catch All::")
        lines += [
            f"{pool_user(n)}:{{PLAIN}}{PASSWORD}::::User {n:04d}::" for n in range(1, POOL_SIZE + 1)
        ]
        write_if_changed(self.users_file, "\n".join(lines) + "\n", 0o640)
        os.chown(self.users_file, 0, pwd.getpwnam("dovecot").pw_gid)
        write_if_changed(
            self.conf,
            render(
                "dovecot.conf",
                RUN=self.dir / "run",
                STATE=self.dir / "state",
                LOG=self.log,
                VMAIL_UID=vmail.pw_uid,
                VMAIL_GID=vmail.pw_gid,
                USERS=self.users_file,
                MAIL=self.mail,
                IMAP_PORT=IMAP_PORT,
                LMTP_PORT=LMTP_PORT,
                SIEVE_PORT=SIEVE_PORT,
                SMTP_PORT=SMTP_PORT,
                DOMAIN=DOMAIN,
                PASSWORD=PASSWORD,
                FRESH_PREFIX=FRESH_PREFIX,
            ),
        )

    def launch(self) -> None:
        dovecot = which("dovecot", "/usr/sbin/dovecot")
        run([dovecot, "-c", str(self.conf)], log=self.log)

    def doveadm(self, *args: str) -> str:
        return run([which("doveadm", "/usr/bin/doveadm"), "-c", str(self.conf), *args])


class Postfix(Service):
    name = "postfix"
    ports = (SMTP_PORT,)
    process_name = "master"

    @property
    def etc(self) -> Path:
        return self.dir / "etc"

    @property
    def pidfile(self) -> Path:
        return self.dir / "spool" / "pid" / "master.pid"

    @property
    def log(self) -> Path:
        return self.dir / "maillog"

    def prepare(self) -> None:
        make_dirs(self.dir, self.etc, self.dir / "spool")
        make_dirs(self.dir / "data", owner="postfix", mode=0o700)
        main = render(
            "postfix-main.cf",
            SPOOL=self.dir / "spool",
            DATA=self.dir / "data",
            LOG=self.log,
            STATE_ROOT=self.dir,
            ETC=self.etc,
            SMTP_PORT=SMTP_PORT,
            LMTP_PORT=LMTP_PORT,
            DOMAIN=DOMAIN,
            CATCHALL=CATCHALL,
        )
        write_if_changed(self.etc / "main.cf", main)
        dist = Path("/usr/share/postfix/master.cf.dist").read_text()
        # smtpd on our port only, and no chroot anywhere (nothing is set up inside the spool).
        master = re.sub(
            r"(?m)^smtp      inet  n       -       y",
            f"{HOST}:{SMTP_PORT} inet n       -       n",
            dist,
        )
        master = re.sub(r"(?m)^([a-z]+\s+(?:unix|fifo|unix-dgram)\s+\S+\s+\S+\s+)y", r"\1n", master)
        write_if_changed(self.etc / "master.cf", master)
        domain = re.escape(DOMAIN).replace("\\.", "\\.")
        write_if_changed(
            self.etc / "catchall.regexp",
            f"# Every recipient outside {DOMAIN} is delivered to {CATCHALL}.\n"
            f"if !/@{domain}$/\n/^.*$/ {CATCHALL}\nendif\n",
        )

    def postfix(self, *args: str, check: bool = True) -> str:
        return run([which("postfix", "/usr/sbin/postfix"), "-c", str(self.etc), *args], check=check)

    def launch(self) -> None:
        # `postfix start` checks the whole installation (~1 s); once the spool exists, start the
        # master directly like postfix-script does (`master -w` returns when it is up).
        if (self.dir / "spool" / "pid").is_dir() and (self.dir / "spool" / "maildrop").is_dir():
            try:
                run(["/usr/lib/postfix/sbin/master", "-c", str(self.etc), "-w"], log=self.log)
                return
            except ServiceError:
                pass
        try:
            self.postfix("start")
        except ServiceError as e:
            # Without a tty Postfix reports fatal errors to syslog only; `script` gives it one.
            out = run(["script", "-qc", f"postfix -c {self.etc} check", "/dev/null"], check=False)
            raise ServiceError(f"{e}\npostfix check says:\n{out}") from None

    def terminate(self, pid: int) -> None:
        try:
            self.postfix("stop")
        except ServiceError:
            os.kill(pid, signal.SIGTERM)


class Ldap(Service):
    name = "ldap"
    ports = (LDAP_PORT,)
    process_name = "slapd"

    @property
    def conf(self) -> Path:
        return self.dir / "slapd.conf"

    @property
    def pidfile(self) -> Path:
        return self.dir / "run" / "slapd.pid"

    @property
    def log(self) -> Path:
        return self.dir / "slapd.log"

    def ldif(self) -> str:
        out = [
            f"dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: example\no: Example\n",
            f"dn: {LDAP_USERS_BASE}\nobjectClass: organizationalUnit\nou: users\n",
        ]
        for login, first, last, phone in DEMO_USERS:
            out.append(
                f"dn: uid={login},{LDAP_USERS_BASE}\nobjectClass: inetOrgPerson\nuid: {login}\n"
                f"cn: {first} {last}\nsn: {last}\ngivenName: {first}\ndisplayName: {first} {last}\n"
                f"mail: {demo_address(login)}\ntelephoneNumber: {phone}\nuserPassword: {PASSWORD}\n"
            )
        return "\n".join(out)

    def prepare(self) -> None:
        db = self.dir / "db"
        make_dirs(self.dir, self.dir / "run")
        conf = render(
            "slapd.conf",
            PIDFILE=self.pidfile,
            BASE=LDAP_BASE,
            ADMIN_DN=LDAP_ADMIN_DN,
            ADMIN_PASSWORD=LDAP_ADMIN_PASSWORD,
            DB=db,
        )
        write_if_changed(self.conf, conf, 0o600)
        ldif = self.ldif()
        stamp = db / "loaded.sha256"
        digest = hashlib.sha256((conf + ldif).encode()).hexdigest()
        if not (db / "data.mdb").exists() or not stamp.exists() or stamp.read_text() != digest:
            shutil.rmtree(db, ignore_errors=True)
            make_dirs(db, mode=0o700)
            (self.dir / "base.ldif").write_text(ldif)
            run(
                [
                    which("slapadd", "/usr/sbin/slapadd"),
                    "-q",
                    "-f",
                    str(self.conf),
                    "-l",
                    str(self.dir / "base.ldif"),
                ],
                log=self.log,
            )
            stamp.write_text(digest)

    def launch(self) -> None:
        slapd = which("slapd", "/usr/sbin/slapd")
        # Foreground (-d) under our own session so its messages reach slapd.log (no syslog here).
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [slapd, "-d", "none", "-f", str(self.conf), "-h", LDAP_URL],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        _reap_later(proc)


class Postgres(Service):
    name = "postgres"
    ports = (POSTGRES_PORT,)
    process_name = "postgres"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def pidfile(self) -> Path:
        return self.data / "postmaster.pid"

    @property
    def log(self) -> Path:
        return self.dir / "postgres.log"

    def bindir(self) -> Path:
        found = sorted(
            glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
        )
        if not found:
            raise ServiceError("PostgreSQL is not installed (run scripts/bootstrap)")
        return Path(found[-1]).parent

    def as_postgres(self, *cmd: str, log: Path | None = None) -> str:
        return run(["runuser", "-u", "postgres", "--", *cmd], log=log, cwd="/")

    def prepare(self) -> None:
        make_dirs(self.dir, self.dir / "run", owner="postgres")
        check_reachable(self.dir, "postgres")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            self.log.touch()
            os.chown(self.log, pwd.getpwnam("postgres").pw_uid, -1)
            self.as_postgres(
                str(self.bindir() / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                POSTGRES_USER,
                "--no-instructions",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                log=self.log,
            )
        log = self.log
        log.touch()
        os.chown(log, pwd.getpwnam("postgres").pw_uid, -1)

    def launch(self) -> None:
        # Throwaway data: durability off for speed.
        options = (
            f"-c listen_addresses={HOST} -p {POSTGRES_PORT} -k {self.dir / 'run'} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self.as_postgres(
            str(self.bindir() / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
            log=self.log,
        )

    def terminate(self, pid: int) -> None:
        os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, then exit


#: Radicale account that may read every calendar (opush's free/busy, dav.freebusy.login).
FREEBUSY_READER = f"freebusy@{DOMAIN}"
#: Radicale rights (first matching section wins): the reader, then owner_only.
RADICALE_RIGHTS = f"""[freebusy]
user: {re.escape(FREEBUSY_READER)}
collection: .*
permissions: Rr

[owner]
user: .+
collection: {{user}}(/.*)?
permissions: RrWw

[root]
user: .+
collection:
permissions: R
"""


class Radicale(Service):
    name = "radicale"
    ports = (RADICALE_PORT,)
    process_name = "radicale"

    @property
    def pidfile(self) -> Path:
        return self.dir / "radicale.pid"

    @property
    def users_file(self) -> Path:
        return self.dir / "users"

    def python(self) -> str:
        for candidate in (
            os.environ.get("OPUSH_RADICALE_PYTHON"),
            str(REPO / ".venv" / "bin" / "python"),
            sys.executable,
        ):
            if candidate and os.access(candidate, os.X_OK):
                probe = subprocess.run([candidate, "-c", "import radicale"], capture_output=True)
                if probe.returncode == 0:
                    return candidate
        raise ServiceError("radicale is not installed in .venv (run scripts/bootstrap)")

    def prepare(self) -> None:
        make_dirs(self.dir, self.dir / "collections")
        users = self.users_file
        demo = "".join(f"{demo_address(login)}:{PASSWORD}\n" for login, *_ in DEMO_USERS)
        demo += f"{FREEBUSY_READER}:{PASSWORD}\n"
        # Keep fresh-* users that tests appended while another session runs; rewrite the rest.
        if not users.exists() or not users.read_text().startswith(demo):
            users.write_text(demo)
        write_if_changed(self.dir / "rights", RADICALE_RIGHTS)
        write_if_changed(
            self.dir / "config",
            render(
                "radicale.conf",
                PORT=RADICALE_PORT,
                USERS=users,
                COLLECTIONS=self.dir / "collections",
                RIGHTS=self.dir / "rights",
            ),
        )

    def launch(self) -> None:
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [self.python(), "-m", "radicale", "--config", str(self.dir / "config")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=self.dir,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        _reap_later(proc)


class Cyrus(Service):
    """Cyrus IMAP (OBM's server) on 1144/2425, beside Dovecot; 1146 shows the same mailboxes
    without altnamespace (folders under INBOX/).

    cyrus-imapd conflicts with dovecot-imapd in apt, so ``scripts/install-cyrus`` unpacks it
    into `CYRUS_HOME` and this runs ``master`` from there, with the unpacked libcyrus* on
    LD_LIBRARY_PATH.  Users live in a sasldb: the demo users, the catch-all and the admin
    `CYRUS_ADMIN` (all with PASSWORD); `add_user` adds more (the tests' fresh-* users).  Mailboxes
    (INBOX + Drafts/Sent/Trash with special-use) are created on first login or delivery.
    Cyrus logs only to syslog (nothing listens here); master's own stderr goes to cyrus.log.
    """

    name = "cyrus"
    ports = (CYRUS_IMAP_PORT, CYRUS_LMTP_PORT, CYRUS_INBOX_IMAP_PORT)
    process_name = "master"

    @property
    def pidfile(self) -> Path:
        return self.dir / "run" / "master.pid"

    @property
    def conf(self) -> Path:
        return self.dir / "imapd.conf"

    @property
    def inbox_conf(self) -> Path:
        """For the IMAP service without altnamespace (CYRUS_INBOX_IMAP_PORT)."""
        return self.dir / "imapd-inbox.conf"

    @property
    def sasldb(self) -> Path:
        return self.dir / "sasldb2"

    @property
    def bin(self) -> Path:
        return CYRUS_HOME / "usr" / "lib" / "cyrus" / "bin"

    def env(self) -> dict[str, str]:
        libs = glob.glob(str(CYRUS_HOME / "usr" / "lib" / "*" / "libcyrus.so.0"))
        if not (self.bin / "master").exists() or not libs:
            raise ServiceError(
                f"cyrus is not installed in {CYRUS_HOME} (run scripts/bootstrap, which runs "
                "scripts/install-cyrus; $OPUSH_CYRUS_DIR overrides the place)"
            )
        env = {**os.environ, "LD_LIBRARY_PATH": str(Path(libs[0]).parent)}
        # Throwaway data: without fsync (libeatmydata) Cyrus is 4x faster on a slow disk.
        eatmydata = glob.glob("/usr/lib/*/libeatmydata.so.1")
        if eatmydata:
            env["LD_PRELOAD"] = eatmydata[0]
        return env

    def prepare(self) -> None:
        self.env()
        ensure_user(CYRUS_USER)
        make_dirs(self.dir)
        run_dir = self.dir / "run"
        make_dirs(
            self.dir / "conf",
            self.dir / "conf" / "socket",  # imapd binds its IDLE client socket there
            self.dir / "spool",
            run_dir,
            run_dir / "proc",
            run_dir / "lock",
            run_dir / "socket",
            owner=CYRUS_USER,
            mode=0o750,
        )
        check_reachable(self.dir / "conf", CYRUS_USER)
        for conf, altnamespace in ((self.conf, "yes"), (self.inbox_conf, "no")):
            write_if_changed(
                conf,
                render(
                    "cyrus-imapd.conf",
                    CONF=self.dir / "conf",
                    SPOOL=self.dir / "spool",
                    RUN=run_dir,
                    PIDFILE=self.pidfile,
                    ADMIN=CYRUS_ADMIN,
                    SASLDB=self.sasldb,
                    DOMAIN=DOMAIN,
                    ALTNAMESPACE=altnamespace,
                ),
            )
        write_if_changed(
            self.dir / "cyrus.conf",
            render(
                "cyrus.conf",
                BIN=self.bin,
                IMAPD_CONF=self.conf,
                IMAPD_INBOX_CONF=self.inbox_conf,
                HOST=HOST,
                IMAP_PORT=CYRUS_IMAP_PORT,
                INBOX_IMAP_PORT=CYRUS_INBOX_IMAP_PORT,
                LMTP_PORT=CYRUS_LMTP_PORT,
            ),
        )
        known = self.users()
        for login, *_ in DEMO_USERS:
            if demo_address(login) not in known:
                self.add_user(demo_address(login))
        for user in (CATCHALL, CYRUS_ADMIN):
            if user not in known:
                self.add_user(user)
        self.log.touch()

    def users(self) -> set[str]:
        """Everyone in the sasldb, as ``login@domain``."""
        if not self.sasldb.exists():
            return set()
        out = run([which("sasldblistusers2", "/usr/sbin/sasldblistusers2"), "-f", str(self.sasldb)])
        return {line.partition(":")[0] for line in out.splitlines() if ":" in line}

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        """A login for ``address`` (``login@domain``) with ``password``; idempotent."""
        login, _, domain = address.partition("@")
        cmd = [which("saslpasswd2", "/usr/sbin/saslpasswd2"), "-p", "-c", "-f", str(self.sasldb)]
        with self._sasldb_locked():
            proc = subprocess.run(
                [*cmd, "-u", domain, login], input=password, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise ServiceError(f"saslpasswd2 {address} failed: {proc.stdout}{proc.stderr}")
            pw = pwd.getpwnam(CYRUS_USER)
            os.chown(self.sasldb, pw.pw_uid, pw.pw_gid)
            self.sasldb.chmod(0o640)

    def remove_user(self, address: str) -> None:
        login, _, domain = address.partition("@")
        saslpasswd2 = which("saslpasswd2", "/usr/sbin/saslpasswd2")
        with self._sasldb_locked():
            run([saslpasswd2, "-d", "-f", str(self.sasldb), "-u", domain, login])

    @contextlib.contextmanager
    def _sasldb_locked(self) -> Iterator[None]:
        """One writer at a time (test sessions running side by side add users)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".sasldb.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def launch(self) -> None:
        run(
            [
                str(self.bin / "master"),
                "-C",
                str(self.conf),
                "-M",
                str(self.dir / "cyrus.conf"),
                "-p",
                str(self.pidfile),
                "-L",
                str(self.log),
                "-d",
            ],
            log=self.log,
            env=self.env(),
        )


_children: list[subprocess.Popen[bytes]] = []


def _launching() -> bool:
    """True while a process we spawned directly is still alive (it may not have its pid yet)."""
    return any(p.poll() is None for p in _children)


def _reap_later(proc: subprocess.Popen[bytes]) -> None:
    """Keep the Popen alive so a daemon that dies young is reaped (and seen dead) by poll()."""
    _children.append(proc)
    proc.poll()


SERVICE_CLASSES: dict[str, type[Service]] = {
    "dovecot": Dovecot,
    "postfix": Postfix,
    "ldap": Ldap,
    "postgres": Postgres,
    "radicale": Radicale,
    "cyrus": Cyrus,
}
ALIASES = {
    "slapd": "ldap",
    "postgresql": "postgres",
    "imap": "dovecot",
    "smtp": "postfix",
    "dav": "radicale",
}


def service(name: str, root: Path | None = None) -> Service:
    name = ALIASES.get(name, name)
    if name not in SERVICE_CLASSES:
        raise ServiceError(f"unknown service {name!r}; known: {', '.join(ALL_SERVICES)}")
    return SERVICE_CLASSES[name](root or state_dir())


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """One start/stop at a time per state directory (test sessions may run side by side)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    with open(root / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def resolve(names: list[str], default: tuple[str, ...]) -> list[str]:
    if not names or names == ["all"]:
        return list(default)
    out = []
    for n in names:
        s = service(n, Path("/")).name
        if s not in out:
            out.append(s)
    return out


# Start order matters: Postfix delivers to Dovecot.
ORDER = {n: i for i, n in enumerate(ALL_SERVICES)}


def start(names: list[str], say: Callable[[str], None] = print) -> list[str]:
    if os.geteuid() != 0:
        raise ServiceError("start-services must run as root (it drops privileges per service)")
    root = state_dir()
    started = []
    with locked(root):
        for name in sorted(resolve(names, DEFAULT_SERVICES), key=ORDER.__getitem__):
            svc = service(name, root)
            t0 = time.monotonic()
            if svc.start():
                started.append(name)
                say(
                    f"started {name:9} {_where(name)}  "
                    f"({time.monotonic() - t0:.2f} s, pid {svc.pid()})"
                )
            else:
                say(f"running {name:9} {_where(name)}  (pid {svc.pid()})")
    return started


def stop(names: list[str], say: Callable[[str], None] = print, *, kill: bool = False) -> list[str]:
    root = state_dir()
    stopped = []
    with locked(root):
        for name in sorted(resolve(names, ALL_SERVICES), key=ORDER.__getitem__, reverse=True):
            svc = service(name, root)
            if svc.kill() if kill else svc.stop():
                stopped.append(name)
                say(f"{'killed' if kill else 'stopped'} {name}")
            elif names and names != ["all"]:
                say(f"not running: {name}")
    return stopped


def status(names: list[str], say: Callable[[str], None] = print) -> bool:
    """Print each service's state; True if every requested (default: every default) one is up."""
    root = state_dir()
    wanted = resolve(names, DEFAULT_SERVICES)
    ok = True
    for name in sorted(resolve(names, ALL_SERVICES), key=ORDER.__getitem__):
        svc = service(name, root)
        pid = svc.pid()
        if pid is None:
            say(f"{name:9} stopped")
            ok = ok and name not in wanted
            continue
        listening = all(port_open(p) for p in svc.ports)
        say(f"{name:9} {'running' if listening else 'NOT LISTENING'}  pid {pid}  {_where(name)}")
        ok = ok and listening
    return ok


def _where(name: str) -> str:
    return {
        "dovecot": f"imap://{HOST}:{IMAP_PORT} lmtp {HOST}:{LMTP_PORT} "
        f"managesieve {HOST}:{SIEVE_PORT}",
        "postfix": f"smtp://{HOST}:{SMTP_PORT}",
        "ldap": f"{LDAP_URL} {LDAP_BASE}",
        "postgres": f"postgresql://{POSTGRES_USER}@{HOST}:{POSTGRES_PORT}/",
        "radicale": f"http://{HOST}:{RADICALE_PORT}/",
        "cyrus": f"imap://{HOST}:{CYRUS_IMAP_PORT} lmtp {HOST}:{CYRUS_LMTP_PORT} "
        f"(no altnamespace: imap://{HOST}:{CYRUS_INBOX_IMAP_PORT})",
    }[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="opush-services",
        description=f"Local services for opush's demo and tests; state in {state_dir()} "
        f"($OPUSH_SERVICES_DIR). Services: {', '.join(DEFAULT_SERVICES)} (default) "
        f"and {', '.join(OPTIONAL_SERVICES)}.",
    )
    parser.add_argument("action", choices=("start", "stop", "restart", "kill", "status"))
    parser.add_argument("names", nargs="*", help="services (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            start(args.names)
        elif args.action == "stop":
            if not stop(args.names) and not args.names:
                print("nothing was running")
        elif args.action == "kill":
            stop(args.names, kill=True)
        elif args.action == "restart":
            stop(args.names)
            start(args.names)
        else:
            return 0 if status(args.names) else 3
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
