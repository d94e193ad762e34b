"""Loading the configuration directory: defaults, typing, profiles, errors, describe()."""

from __future__ import annotations

import io
from pathlib import Path

import attrs
import pytest

from opush.config import (
    Backend,
    ConfigError,
    DbType,
    ExpungePolicy,
    RetryPolicy,
    Storage,
    TimeUnit,
    describe,
    load,
    load_or_exit,
)
from opush.config.loader import SECTION_CLASSES
from opush.config.sample import LOGBACK_SAMPLE, ini_sample, readme
from opush.config.schema import snake_case, specs
from tests.support.config import DEMO_DIR, OBM_OPUSH_INI, SAMPLE_DIR, STANDALONE, write_config


def standalone(tmp_path: Path, **extra: str) -> Path:
    files = dict(STANDALONE)
    for name, text in extra.items():
        file = name.replace("__", ".")
        files[file] = files.get(file, "") + text
    return write_config(tmp_path / "etc", files)


def errors(directory: Path, obm_conf: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(directory, obm_conf=obm_conf)
    return [str(p) for p in info.value.problems]


# ----------------------------------------------------------------------------- defaults


def test_defaults_of_every_file(tmp_path: Path) -> None:
    config = load(standalone(tmp_path), obm_conf=None)
    o = config.opush
    assert o.backend is Backend.STANDALONE
    assert o.storage is Storage.EMBEDDED
    assert o.data_dir == Path("/var/lib/opush")
    assert o.log_dir == Path("/var/log/opush")
    assert (o.window_size, o.window_size_max) == (50, None)
    assert o.transaction_timeout_unit is TimeUnit.MINUTES
    assert o.transaction_timeout_seconds == 60
    assert o.locator_cache_timeout_seconds == 1800
    assert o.locator_client_timeout_seconds == 5
    assert o.database_max_connection_pool_size == 10
    assert (o.push_heartbeat_min, o.push_heartbeat_max) == (60, 3540)
    assert o.auth_cache_ttl == 120
    assert (o.auth_failure_window, o.auth_failure_delay, o.auth_failure_delay_max) == (900, 1, 30)
    assert o.device_queue_max == 20
    assert o.request_max_size is None
    assert (o.wbxml_max_depth, o.wbxml_max_elements) == (64, 100000)
    assert o.db_port == 5432
    c = config.cassandra
    assert c.cassandra_seeds == ()
    assert c.cassandra_retry_policy is RetryPolicy.ALWAYS_RETRY
    assert c.cassandra_max_retries == 3
    ldap = config.ldap
    assert ldap.search_ldap_filter.startswith("(&(objectClass=inetOrgPerson)")
    assert ldap.search_ldap_basedn == "dc=%d,dc=local"
    assert ldap.search_ldap_limit == 100
    assert not ldap.enabled
    m = config.mail
    assert (m.imap_port, m.smtp_port) == (143, 25)
    assert m.imap_activate_tls and m.imap_login_with_domain
    assert m.imap_timeout_in_ms == 5000
    assert m.message_max_size == 10485760
    assert m.imap_expunge_policy is ExpungePolicy.ALWAYS
    assert (m.imap_mailbox_draft, m.imap_mailbox_sent, m.imap_mailbox_trash) == (
        "Drafts",
        "Sent",
        "Trash",
    )
    assert config.sync_perms.allow_unknown_pda is True
    assert config.sync_perms.blacklist_users == ()
    con = config.console
    assert (con.console_enable, con.console_ssh_port) == (True, 5665)
    assert con.console_authentication_domain == "global.virt"
    p = config.policy
    assert p.device_password_enabled is False
    assert p.attachments_enabled is True
    assert p.min_device_password_length == 4
    assert p.max_inactivity_time_device_lock == 900
    assert p.max_attachment_size is None
    assert p.device_password_expiration is None
    assert p.allow_bluetooth == 2
    assert p.max_email_body_truncation_size == -1
    assert config.dav.dav_url is None
    assert config.loggers == ()


def test_field_names_are_snake_case_of_keys() -> None:
    for _, cls in SECTION_CLASSES:
        for attribute, spec in specs(cls):
            assert attribute.name == snake_case(spec.key), spec.key


def test_sections_are_frozen(tmp_path: Path) -> None:
    config = load(standalone(tmp_path), obm_conf=None)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.opush.window_size = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------- typing


def test_typed_values(tmp_path: Path) -> None:
    directory = standalone(
        tmp_path,
        opush__ini="window-size = 25\nwindow-size.max: 200\ntransaction-timeout=30\n"
        "transaction-timeout-unit=SECONDS\nexternal-url=opush.example.org\n",
        mail_conf__ini="imap.activateTLS=FALSE\nimap.expungePolicy=never\nmessage.maxSize=100\n",
        sync_perms__ini="blacklist.users = joe@example.org, ,ann@example.org\n",
        cassandra__ini="cassandra.seeds=10.0.0.1, 10.0.0.2\ncassandra.retry-policy="
        "retry_or_cl_downgrade\n",
        policy__ini="devicePasswordHistory=false\ndevicePasswordExpiration=30\n"
        "maxAttachmentSize=\n",
    )
    config = load(directory, obm_conf=None)
    assert (config.opush.window_size, config.opush.window_size_max) == (25, 200)
    assert config.opush.transaction_timeout_seconds == 30
    assert config.opush.external_url == "https://opush.example.org"
    assert config.opush.active_sync_url == ("https://opush.example.org/Microsoft-Server-ActiveSync")
    assert config.mail.imap_activate_tls is False
    assert config.mail.imap_expunge_policy is ExpungePolicy.NEVER
    assert config.sync_perms.blacklist_users == ("joe@example.org", "ann@example.org")
    assert config.cassandra.cassandra_seeds == ("10.0.0.1", "10.0.0.2")
    assert config.cassandra.cassandra_retry_policy is RetryPolicy.RETRY_OR_CL_DOWNGRADE
    assert config.policy.device_password_history == 0
    assert config.policy.device_password_expiration == 30
    assert config.policy.max_attachment_size is None  # empty value = not set


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        (
            "opush.ini",
            "window-size=x",
            "opush.ini: key 'window-size': expected an integer, got 'x'",
        ),
        ("opush.ini", "window-size=0", "opush.ini: key 'window-size': must be at least 1, got 0"),
        ("mail_conf.ini", "imap.port=70000", "key 'imap.port': must be at most 65535"),
        ("mail_conf.ini", "imap.activateTLS=maybe", "expected a boolean (true or false)"),
        ("opush.ini", "storage=mysql", "key 'storage': expected one of embedded, cassandra"),
        ("opush.ini", "transaction-timeout-unit=weeks", "expected one of milliseconds"),
        ("dav_conf.ini", "dav.url=ftp://x/", "key 'dav.url': expected an http:// or https:// URL"),
        ("ldap_conf.ini", "search.ldap.url=http://x", "expected an ldap:// or ldaps:// URL"),
        ("policy.ini", "allowBluetooth=3", "policy.ini: key 'allowBluetooth': must be at most 2"),
        ("opush.ini", "just some words", "opush.ini: line 2: expected key=value"),
    ],
)
def test_typing_errors_name_file_and_key(
    tmp_path: Path, file: str, line: str, expected: str
) -> None:
    directory = standalone(tmp_path, **{file.replace(".", "__"): line + "\n"})
    assert any(expected in problem for problem in errors(directory))


def test_quotes_whitespace_and_comments(tmp_path: Path) -> None:
    directory = standalone(
        tmp_path,
        opush__ini='# comment\n; also a comment\n! and this\n  external-url = "a.example.org"  \n'
        "password='s#cr;t'\n",
    )
    config = load(directory, obm_conf=None)
    assert config.opush.external_url == "https://a.example.org"
    assert config.opush.password == "s#cr;t"  # no inline comments: passwords may contain #


def test_native2ascii_escapes_and_latin1(tmp_path: Path) -> None:
    directory = standalone(tmp_path)
    (directory / "mail_conf.ini").write_bytes(
        b"imap.host=127.0.0.1\nsmtp.host=127.0.0.1\nimap.mailbox.sent=Envoy\\u00e9s\n"
        b"imap.mailbox.trash=Corbeille \xe0 papier\n"
    )
    config = load(directory, obm_conf=None)
    assert config.mail.imap_mailbox_sent == "Envoyés"
    assert config.mail.imap_mailbox_trash == "Corbeille à papier"


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="data-dir=../var/data\nlog-dir=logs\n")
    config = load(directory, obm_conf=None)
    assert config.opush.data_dir == tmp_path / "var" / "data"
    assert config.opush.log_dir == directory / "logs"


# ----------------------------------------------------------------------------- warnings


def test_unknown_and_duplicate_keys_are_warnings(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="window-sise=10\nwindow-size=10\nwindow-size=20\n")
    config = load(directory, obm_conf=None)
    assert config.opush.window_size == 20
    warnings = [str(w) for w in config.warnings]
    assert "opush.ini: key 'window-sise': unknown key, ignored; did you mean 'window-size'?" in (
        warnings
    )
    assert any("key 'window-size': set twice" in w for w in warnings)


# ----------------------------------------------------------------------------- the must-show


def test_three_mistakes_in_two_files_are_all_reported(tmp_path: Path) -> None:
    directory = standalone(
        tmp_path,
        opush__ini="window-size=many\npush.heartbeat.min=-5\n",
        mail_conf__ini="imap.timeoutInMs=soon\n",
    )
    err = io.StringIO()
    with pytest.raises(SystemExit) as info:
        load_or_exit(directory, obm_conf=None, err=err)
    assert info.value.code == 1
    lines = [x for x in err.getvalue().splitlines() if not x.startswith("warning: ")]
    assert lines[0] == "opush: 3 configuration errors:"
    assert lines[1:] == [
        "opush.ini: key 'window-size': expected an integer, got 'many'",
        "opush.ini: key 'push.heartbeat.min': must be at least 1, got -5",
        "mail_conf.ini: key 'imap.timeoutInMs': expected an integer, got 'soon'",
    ]


def test_config_error_str_is_one_problem_per_line(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="window-size=x\nstorage=y\n")
    with pytest.raises(ConfigError) as info:
        load(directory, obm_conf=None)
    assert str(info.value).splitlines() == [str(p) for p in info.value.problems]
    assert [(p.file, p.key) for p in info.value.problems] == [
        ("opush.ini", "storage"),
        ("opush.ini", "window-size"),
    ]


def test_missing_directory(tmp_path: Path) -> None:
    assert errors(tmp_path / "nope") == [f"{tmp_path / 'nope'}: configuration directory not found"]


# ----------------------------------------------------------------------------- profiles


def test_obm_profile_requires_database_and_external_url(tmp_path: Path) -> None:
    directory = write_config(tmp_path / "etc", {})
    problems = errors(directory)
    for name in ("host", "dbtype", "db", "user", "password", "external-url"):
        assert f"opush.ini: key '{name}': required in the obm profile (set it in opush.ini)" in (
            problems
        )


def test_obm_profile_loads_with_warning_without_ldap(tmp_path: Path) -> None:
    config = load(write_config(tmp_path / "etc", {"opush.ini": OBM_OPUSH_INI}), obm_conf=None)
    assert config.opush.backend is Backend.OBM
    assert config.opush.dbtype is DbType.PGSQL
    assert [str(w) for w in config.warnings] == [
        "ldap_conf.ini: key 'search.ldap.url': not set: LDAP search is disabled"
    ]


def test_mysql_is_refused(tmp_path: Path) -> None:
    text = OBM_OPUSH_INI.replace("PGSQL", "MYSQL")
    problems = errors(write_config(tmp_path / "etc", {"opush.ini": text}))
    assert problems == [
        "opush.ini: key 'dbtype': MYSQL is not supported: opush needs the OBM database on "
        "PostgreSQL (PGSQL)"
    ]


def test_obm_conf_fallback(tmp_path: Path) -> None:
    obm_conf = tmp_path / "obm" / "obm_conf.ini"
    write_config(
        obm_conf.parent,
        {
            "obm_conf.ini": "[global]\nhost = 10.0.0.9\ndbtype = PGSQL\ndb = obm\nuser = obm\n"
            'password = "p@ss word"\nexternal-url = obm.example.org\nsingleNameSpace = true\n'
            "window-size = 30\n"
        },
    )
    directory = write_config(tmp_path / "etc", {"opush.ini": "user=opush\nhost=\n"})
    config = load(directory, obm_conf=obm_conf)
    assert config.opush.host == "10.0.0.9"  # empty in opush.ini: taken from obm_conf.ini
    assert config.opush.user == "opush"  # opush.ini wins
    assert config.opush.password == "p@ss word"
    assert config.opush.window_size == 30
    # OBM's own keys and [global] are not opush's business: no warning about them
    assert all("singleNameSpace" not in str(w) for w in config.warnings)
    lines = describe(config)
    assert f"opush.ini: host = 10.0.0.9 (from {obm_conf})" in lines
    assert "opush.ini: user = opush" in lines


def test_obm_conf_values_are_checked_and_named(tmp_path: Path) -> None:
    obm_conf = write_config(tmp_path / "obm", {"obm_conf.ini": "dbtype = ORACLE\n"})
    problems = errors(
        write_config(tmp_path / "etc", {"opush.ini": "window-size=1\n"}),
        obm_conf=obm_conf / "obm_conf.ini",
    )
    assert (
        f"{obm_conf / 'obm_conf.ini'}: key 'dbtype': expected one of PGSQL, MYSQL, "
        in (problems[0])
    )
    assert any("required in the obm profile (set it in opush.ini or" in p for p in problems)


def test_standalone_ignores_obm_conf_and_requires_mail_hosts(tmp_path: Path) -> None:
    obm_conf = write_config(tmp_path / "obm", {"obm_conf.ini": "window-size=zzz\n"})
    directory = write_config(tmp_path / "etc", {"opush.ini": "backend=standalone\n"})
    assert errors(directory, obm_conf=obm_conf / "obm_conf.ini") == [
        "mail_conf.ini: key 'imap.host': required in the standalone profile",
        "mail_conf.ini: key 'smtp.host': required in the standalone profile",
    ]


def test_cassandra_storage_requires_connection_keys(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="storage=cassandra\n")
    assert errors(directory) == [
        f"cassandra.ini: key '{k}': required with storage=cassandra"
        for k in ("cassandra.seeds", "cassandra.keyspace", "cassandra.user", "cassandra.password")
    ]


def test_heartbeat_bounds_are_consistent(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="push.heartbeat.min=600\npush.heartbeat.max=300\n")
    assert errors(directory) == [
        "opush.ini: key 'push.heartbeat.min': must not exceed push.heartbeat.max (300), got 600"
    ]


# ----------------------------------------------------------------------------- logback.xml


def test_logback_levels(tmp_path: Path) -> None:
    directory = standalone(tmp_path)
    (directory / "logback.xml").write_text(
        '<included><logger name="AUTHENTICATION" level="info"/>'
        '<logger name="REQUEST.FULL" level="DEBUG" /></included>'
    )
    config = load(directory, obm_conf=None)
    assert config.loggers == (("AUTHENTICATION", "INFO"), ("REQUEST.FULL", "DEBUG"))
    assert "logback.xml: logger AUTHENTICATION = INFO" in describe(config)


def test_logback_errors(tmp_path: Path) -> None:
    directory = standalone(tmp_path)
    (directory / "logback.xml").write_text('<included><logger name="X" level="LOUD"/></included>')
    assert errors(directory) == [
        "logback.xml: key 'X': level must be one of ALL, TRACE, DEBUG, INFO, WARN, ERROR, OFF, "
        "got 'LOUD'"
    ]
    (directory / "logback.xml").write_text("<included>")
    assert errors(directory)[0].startswith("logback.xml: line 1: not well-formed XML")


# ----------------------------------------------------------------------------- describe


def test_describe_masks_passwords(tmp_path: Path) -> None:
    directory = write_config(
        tmp_path / "etc",
        {
            "opush.ini": OBM_OPUSH_INI.replace("password=obm", "password=Top$ecret")
            + "storage=cassandra\n",
            "cassandra.ini": "cassandra.seeds=a\ncassandra.keyspace=k\ncassandra.user=u\n"
            "cassandra.password=Cass$ecret\n",
        },
    )
    lines = describe(load(directory, obm_conf=None))
    text = "\n".join(lines)
    assert "Top$ecret" not in text and "Cass$ecret" not in text
    assert "opush.ini: password = *" in lines
    assert "cassandra.ini: cassandra.password = *" in lines
    assert "opush.ini: window-size = 50 (default)" in lines
    assert "opush.ini: window-size.max (not set)" in lines


def test_secret_values_never_quoted_in_errors(tmp_path: Path) -> None:
    directory = standalone(tmp_path, opush__ini="password Top$ecret\n")
    assert all("Top$ecret" not in p for p in errors(directory))


# ----------------------------------------------------------------------------- shipped files


@pytest.mark.parametrize("directory", [SAMPLE_DIR, DEMO_DIR], ids=["conf", "conf-demo"])
def test_shipped_configurations_load_without_problems(directory: Path) -> None:
    config = load(directory, obm_conf=None)
    assert config.warnings == ()


def test_demo_configuration_is_the_standalone_profile() -> None:
    config = load(DEMO_DIR, obm_conf=None)
    repo = DEMO_DIR.parents[1]
    assert config.opush.backend is Backend.STANDALONE
    assert config.opush.storage is Storage.EMBEDDED
    assert config.opush.data_dir.is_relative_to(repo / "var" / "demo")
    assert config.opush.log_dir.is_relative_to(repo / "var" / "demo")
    assert config.opush.external_url == "http://127.0.0.1:8082"
    assert (config.mail.imap_host, config.mail.imap_port) == ("127.0.0.1", 1143)
    assert (config.mail.smtp_host, config.mail.smtp_port) == ("127.0.0.1", 2525)
    assert config.dav.dav_url == "http://127.0.0.1:5232/"
    assert config.ldap.search_ldap_url == "ldap://127.0.0.1:3389"
    assert config.ldap.search_ldap_basedn == "dc=example,dc=org"
    assert config.console.console_enable and config.console.console_ssh_port == 5665
    assert config.console.console_admins == ("alice@example.org",)


def test_samples_are_up_to_date() -> None:
    """conf/ is generated by `python -m opush.config.sample conf`; rerun it after changing keys."""
    for _, cls in SECTION_CLASSES:
        assert (SAMPLE_DIR / cls.FILE).read_text() == ini_sample(cls), cls.FILE
    assert (SAMPLE_DIR / "logback.xml").read_text() == LOGBACK_SAMPLE
    assert (SAMPLE_DIR / "README.md").read_text() == readme()


def test_samples_show_every_key_with_its_default() -> None:
    for _, cls in SECTION_CLASSES:
        text = (SAMPLE_DIR / cls.FILE).read_text()
        for attribute, spec in specs(cls):
            assert f"{spec.key}=" in text, (cls.FILE, spec.key)
            if attribute.default not in (None, ()):
                assert f"#{spec.key}={spec.type.render(attribute.default)}\n" in text
