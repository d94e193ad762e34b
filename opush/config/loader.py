"""`load()`: read every file of the configuration directory into one frozen `Config`.

Rules an administrator can rely on (conf/README.md says the same):

- Every file is optional; a missing file means every key of it has its default.  What is
  required depends on the profile: ``backend=obm`` needs host, dbtype, db, user, password and
  external-url (from opush.ini or /etc/obm/obm_conf.ini); ``backend=standalone`` needs
  mail_conf.ini ``imap.host`` and ``smtp.host``; ``storage=cassandra`` needs the four
  connection keys of cassandra.ini.
- In the obm profile a key missing (or empty) in opush.ini is taken from /etc/obm/obm_conf.ini,
  as the Java server fell back to that file.  Keys opush does not know are ignored there
  silently: that file belongs to OBM.
- Relative paths (data-dir, log-dir, console.authorized-keys) are resolved against the
  configuration directory.
- Every error is collected; `ConfigError` lists them all.  Unknown keys are warnings.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs

from opush.config import ini
from opush.config.logback import read_levels
from opush.config.problems import ConfigError, Problem
from opush.config.schema import (
    Loaded,
    known_keys,
    load_section,
    unknown_key_warnings,
)
from opush.config.sections import (
    Backend,
    CassandraSection,
    ConsoleSection,
    DavSection,
    DbType,
    LdapSection,
    MailSection,
    OpushSection,
    PolicySection,
    Storage,
    SyncPermsSection,
)
from opush.config.values import BadValue, Context, choice

DEFAULT_CONFIG_DIR = Path("/etc/opush")
DEFAULT_OBM_CONF = Path("/etc/obm/obm_conf.ini")

SECTION_CLASSES: tuple[tuple[str, type[Any]], ...] = (
    ("opush", OpushSection),
    ("cassandra", CassandraSection),
    ("ldap", LdapSection),
    ("mail", MailSection),
    ("sync_perms", SyncPermsSection),
    ("console", ConsoleSection),
    ("policy", PolicySection),
    ("dav", DavSection),
)

_OBM_REQUIRED = ("host", "dbtype", "db", "user", "password", "external-url")


@attrs.frozen
class Config:
    """The whole effective configuration.  ``origins`` maps a section's file name to
    {key: file the value was read from} for the keys that were set (describe() uses it)."""

    config_dir: Path
    opush: OpushSection
    cassandra: CassandraSection
    ldap: LdapSection
    mail: MailSection
    sync_perms: SyncPermsSection
    console: ConsoleSection
    policy: PolicySection
    dav: DavSection
    loggers: tuple[tuple[str, str], ...] = ()
    warnings: tuple[Problem, ...] = ()
    origins: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict, eq=False, repr=False)


def _backend(entries: Mapping[str, ini.Entry], ctx: Context) -> Backend:
    entry = entries.get("backend")
    if entry is None or entry.value == "":
        return Backend.OBM
    try:
        return choice(Backend).parse(entry.value, ctx)
    except BadValue:
        return Backend.OBM  # reported by load_section


def _opush_entries(
    opush_ini: ini.IniFile | None,
    obm_conf: Path | None,
    ctx: Context,
    warnings: list[Problem],
) -> dict[str, ini.Entry]:
    entries = {k: e for k, e in (opush_ini.entries if opush_ini else {}).items() if e.value}
    if obm_conf is None or _backend(entries, ctx) is not Backend.OBM:
        return entries
    fallback = ini.read(obm_conf, str(obm_conf))
    if fallback is None:
        return entries
    # OBM's file: its oddities are OBM's business, so they are only warnings here.
    warnings.extend(fallback.problems)
    known = set(known_keys(OpushSection)) - {"backend", "storage"}
    merged = {k: e for k, e in fallback.entries.items() if k in known and e.value}
    merged.update(entries)
    return merged


def _require(
    problems: list[Problem], loaded: Loaded[Any], file: str, keys: tuple[str, ...], why: str
) -> None:
    for name in keys:
        if not loaded.is_set(name):
            problems.append(Problem(file, name, f"required {why}"))


def _check(
    loaded: dict[str, Loaded[Any]],
    problems: list[Problem],
    warnings: list[Problem],
    obm_conf: Path | None,
) -> None:
    """Checks across keys and files, which depend on the profile."""
    opush: OpushSection = loaded["opush"].section
    lo = loaded["opush"]

    if opush.dbtype is DbType.MYSQL:
        problems.append(
            Problem(
                lo.origin["dbtype"],
                "dbtype",
                "MYSQL is not supported: opush needs the OBM database on PostgreSQL (PGSQL)",
            )
        )
    if opush.backend is Backend.OBM:
        where = f" or {obm_conf}" if obm_conf is not None else ""
        _require(
            problems,
            lo,
            OpushSection.FILE,
            _OBM_REQUIRED,
            f"in the obm profile (set it in opush.ini{where})",
        )
        if not loaded["ldap"].section.enabled:
            warnings.append(
                Problem(LdapSection.FILE, "search.ldap.url", "not set: LDAP search is disabled")
            )
    else:
        _require(
            problems,
            loaded["mail"],
            MailSection.FILE,
            ("imap.host", "smtp.host"),
            "in the standalone profile",
        )
        if loaded["dav"].section.dav_url is None:
            warnings.append(
                Problem(
                    DavSection.FILE,
                    "dav.url",
                    "not set: calendars and contacts are not synchronized",
                )
            )
        console: ConsoleSection = loaded["console"].section
        if console.console_enable and not console.console_admins:
            warnings.append(
                Problem(
                    ConsoleSection.FILE,
                    "console.admins",
                    "empty: nobody can log into the console in the standalone profile",
                )
            )
    _check_trust_store(
        opush, lo.origin.get("smime.trust-store", OpushSection.FILE), problems, warnings
    )
    if opush.push_heartbeat_min > opush.push_heartbeat_max:
        problems.append(
            Problem(
                lo.origin.get("push.heartbeat.min", OpushSection.FILE),
                "push.heartbeat.min",
                f"must not exceed push.heartbeat.max ({opush.push_heartbeat_max}), "
                f"got {opush.push_heartbeat_min}",
            )
        )
    if opush.storage is Storage.CASSANDRA:
        _require(
            problems,
            loaded["cassandra"],
            CassandraSection.FILE,
            ("cassandra.seeds", "cassandra.keyspace", "cassandra.user", "cassandra.password"),
            "with storage=cassandra",
        )
    mail: MailSection = loaded["mail"].section
    if opush.request_max_size is not None and opush.request_max_size < mail.message_max_size:
        warnings.append(
            Problem(
                OpushSection.FILE,
                "request.max-size",
                f"smaller than message.maxSize of mail_conf.ini ({mail.message_max_size}): "
                "large mails are refused before that limit applies",
            )
        )
    keys_file = loaded["console"].section.console_authorized_keys
    if keys_file is not None and not keys_file.exists():
        warnings.append(
            Problem(ConsoleSection.FILE, "console.authorized-keys", f"{keys_file} does not exist")
        )


def load(config_dir: Path, *, obm_conf: Path | None = DEFAULT_OBM_CONF) -> Config:
    """Read ``config_dir`` (and ``obm_conf`` as opush.ini's fallback; None to skip it).

    Raises `ConfigError` listing every problem; returns a `Config` whose ``warnings`` the
    caller should log.  Reads files only: no DNS, no connections.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError([Problem(str(config_dir), None, "configuration directory not found")])
    ctx = Context(config_dir.absolute())
    problems: list[Problem] = []
    warnings: list[Problem] = []
    loaded: dict[str, Loaded[Any]] = {}
    for attr_name, cls in SECTION_CLASSES:
        parsed = ini.read(config_dir / cls.FILE, cls.FILE)
        if parsed is not None:
            problems.extend(parsed.problems)
            warnings.extend(parsed.warnings)
            if parsed.sections:
                warnings.append(
                    Problem(cls.FILE, None, "[section] lines are ignored (the file is flat)")
                )
            warnings.extend(unknown_key_warnings(cls.FILE, parsed.entries, known_keys(cls)))
        if cls is OpushSection:
            entries = _opush_entries(parsed, obm_conf, ctx, warnings)
        else:
            entries = parsed.entries if parsed else {}
        loaded[attr_name] = load_section(cls, entries, ctx, problems)
    loggers = read_levels(config_dir / "logback.xml", problems, warnings)
    _check(loaded, problems, warnings, obm_conf)
    if problems:
        raise ConfigError(problems, warnings)
    return Config(
        config_dir=ctx.config_dir,
        loggers=loggers,
        warnings=tuple(warnings),
        origins={cls.FILE: loaded[name].origin for name, cls in SECTION_CLASSES},
        **{name: loaded[name].section for name, _ in SECTION_CLASSES},
    )


def load_or_exit(
    config_dir: Path, *, obm_conf: Path | None = DEFAULT_OBM_CONF, err: TextIO | None = None
) -> Config:
    """`load()` for the command line: on `ConfigError`, print the warnings and every problem
    (one per line, ``file: key 'k': why``) to ``err`` (stderr) and exit with status 1."""
    try:
        return load(config_dir, obm_conf=obm_conf)
    except ConfigError as e:
        out = err if err is not None else sys.stderr
        for warning in e.warnings:
            print(f"warning: {warning}", file=out)
        count = len(e.problems)
        print(f"opush: {count} configuration error{'s' if count > 1 else ''}:", file=out)
        for problem in e.problems:
            print(str(problem), file=out)
        out.flush()
        raise SystemExit(1) from None


def _check_trust_store(
    opush: OpushSection, origin: str, problems: list[Problem], warnings: list[Problem]
) -> None:
    """smime.trust-store must be a readable PEM bundle; the system bundle may be missing
    (ValidateCert then trusts nobody, which an admin should hear about)."""
    from opush.backends.pki import SYSTEM_TRUST_STORE, load_trust_store

    path = opush.smime_trust_store
    if path is None:
        if not SYSTEM_TRUST_STORE.is_file():
            warnings.append(
                Problem(
                    OpushSection.FILE,
                    "smime.trust-store",
                    f"not set and {SYSTEM_TRUST_STORE} is missing: ValidateCert trusts no "
                    "certification authority",
                )
            )
        return
    try:
        load_trust_store(path)
    except OSError as e:
        problems.append(Problem(origin, "smime.trust-store", f"cannot read {path}: {e.strerror}"))
    except ValueError as e:
        problems.append(Problem(origin, "smime.trust-store", str(e)))
