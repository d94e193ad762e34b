# ruff: noqa: RUF009  (key()/optional_key() return attrs.field() specifiers, not shared defaults)
"""One frozen attrs class per configuration file, with every key, its type and its default.

Names and defaults are those of the administrator guide and of the Java server's code (where the
guide is silent); keys marked "opush addition" are ours.  The docs here are the comments of the
sample files in ``conf/`` (``python -m opush.config.sample conf``).
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import ClassVar

import attrs

from opush.config.schema import key, optional_key
from opush.config.values import (
    BOOLEAN,
    EXTERNAL_URL,
    HTTP_URL,
    LDAP_URL,
    PATH,
    PORT,
    STRING,
    STRING_LIST,
    choice,
    integer,
    integer_or,
)


class Backend(enum.Enum):
    OBM = "obm"
    STANDALONE = "standalone"


class Storage(enum.Enum):
    EMBEDDED = "embedded"
    CASSANDRA = "cassandra"


class DbType(enum.Enum):
    PGSQL = "PGSQL"
    MYSQL = "MYSQL"


class TimeUnit(enum.Enum):
    """The units of the Java ``*-unit`` keys (``java.util.concurrent.TimeUnit`` names)."""

    MILLISECONDS = "milliseconds"
    SECONDS = "seconds"
    MINUTES = "minutes"
    HOURS = "hours"

    def seconds(self, amount: float) -> float:
        factor = {"milliseconds": 0.001, "seconds": 1, "minutes": 60, "hours": 3600}
        return amount * factor[self.value]


class RetryPolicy(enum.Enum):
    ALWAYS_RETRY = "ALWAYS_RETRY"
    RETRY_OR_CL_DOWNGRADE = "RETRY_OR_CL_DOWNGRADE"


class ExpungePolicy(enum.Enum):
    ALWAYS = "ALWAYS"
    NEVER = "NEVER"


class NameCheckPolicy(enum.Enum):
    ALWAYS = "ALWAYS"
    NEVER = "NEVER"


class SmtpAuth(enum.Enum):
    NONE = "none"
    USER = "user"
    FIXED = "fixed"


# ---------------------------------------------------------------------------------- opush.ini


@attrs.frozen
class OpushSection:
    """opush.ini (keys missing there are taken from /etc/obm/obm_conf.ini in the obm profile)."""

    FILE: ClassVar[str] = "opush.ini"

    backend: Backend = key(
        "backend",
        choice(Backend),
        Backend.OBM,
        "opush addition. Where users, calendars and contacts live: obm (obm-sync, OBM "
        "database, obm-locator) or standalone (IMAP login as authentication, CalDAV/CardDAV "
        "from dav_conf.ini, devices in the state store; no OBM needed).",
    )
    storage: Storage = key(
        "storage",
        choice(Storage),
        Storage.EMBEDDED,
        "opush addition. Where sync state is kept: embedded (SQLite file under data-dir) or "
        "cassandra (cluster from cassandra.ini).",
    )
    data_dir: Path = key(
        "data-dir",
        PATH,
        Path("/var/lib/opush"),
        "opush addition. Directory of the embedded state store and other server data.",
    )
    log_dir: Path = key(
        "log-dir",
        PATH,
        Path("/var/log/opush"),
        "opush addition. Directory of opush.log and access.log.",
    )
    host: str | None = optional_key(
        "host",
        STRING,
        "Locator & Database host: OBM database server, also where obm-locator runs. Required "
        "in the obm profile.",
        example="192.168.56.3",
    )
    dbtype: DbType | None = optional_key(
        "dbtype",
        choice(DbType),
        "Type of the OBM database. Only PGSQL is supported (MYSQL is refused). Required in the "
        "obm profile.",
        example="PGSQL",
    )
    port: int | None = optional_key(
        "port", PORT, "OBM database port (PostgreSQL's 5432 when not set).", example="5432"
    )
    db: str | None = optional_key(
        "db", STRING, "OBM database name. Required in the obm profile.", example="obm"
    )
    user: str | None = optional_key(
        "user", STRING, "OBM database user. Required in the obm profile.", example="obm"
    )
    password: str | None = optional_key(
        "password",
        STRING,
        "OBM database user password (surrounding quotes are stripped). Required in the obm "
        "profile.",
        secret=True,
        example="obm",
    )
    external_url: str | None = optional_key(
        "external-url",
        EXTERNAL_URL,
        "External URL of OBM/opush as devices see it: a host name (https is assumed, as in the "
        "Java server) or a full http(s) URL. Used by Autodiscover. Required in the obm profile.",
        example="opush.example.org",
    )
    database_max_connection_pool_size: int = key(
        "database-max-connection-pool-size",
        integer(1),
        10,
        "Maximum number of connections to the OBM database.",
    )
    database_min_connection_pool_size: int | None = optional_key(
        "database-min-connection-pool-size",
        integer(0),
        "Minimum number of connections to the OBM database (none kept open when not set).",
        example="1",
    )
    database_postgres_ssl_enabled: bool = key(
        "database-postgres-ssl-enabled",
        BOOLEAN,
        False,
        "Connect to PostgreSQL over SSL.",
    )
    database_postgres_ssl_non_validating_factory: bool = key(
        "database-postgres-ssl-non-validating-factory",
        BOOLEAN,
        False,
        "With SSL, do not validate the PostgreSQL server certificate.",
    )
    read_only: bool = key("read-only", BOOLEAN, False, "Open the OBM database read-only.")
    transaction_timeout: int = key(
        "transaction-timeout", integer(1), 1, "Transaction timeout (unit below)."
    )
    transaction_timeout_unit: TimeUnit = key(
        "transaction-timeout-unit",
        choice(TimeUnit),
        TimeUnit.MINUTES,
        "Transaction timeout unit (milliseconds, seconds, minutes, hours).",
    )
    locator_cache_timeout: int = key(
        "locator-cache-timeout",
        integer(0),
        30,
        "How long obm-locator answers are cached (unit below).",
    )
    locator_cache_timeunit: TimeUnit = key(
        "locator-cache-timeunit",
        choice(TimeUnit),
        TimeUnit.MINUTES,
        "Unit of locator-cache-timeout (milliseconds, seconds, minutes, hours).",
    )
    locator_client_timeout_seconds: int = key(
        "locator-client-timeout-seconds",
        integer(1),
        5,
        "Timeout of a request to obm-locator, in seconds.",
    )
    window_size: int = key(
        "window-size",
        integer(1),
        50,
        "Default window size: items per Sync response when the device asks for none.",
    )
    window_size_max: int | None = optional_key(
        "window-size.max",
        integer(1),
        "Max window size: caps what devices ask for. No value by default (no cap).",
        example="100",
    )
    push_heartbeat_min: int = key(
        "push.heartbeat.min",
        integer(1),
        60,
        "opush addition. Shortest Ping heartbeat accepted, in seconds; a shorter request gets "
        "Status 5 with this value (MS-ASCMD 2.2.3.88.1; Exchange uses 60..3540).",
    )
    push_heartbeat_max: int = key(
        "push.heartbeat.max",
        integer(1),
        3540,
        "opush addition. Longest Ping heartbeat accepted, in seconds (keep it below the idle "
        "timeout of proxies in front of opush).",
    )
    auth_cache_ttl: int = key(
        "auth.cache.ttl",
        integer(0),
        120,
        "opush addition. Seconds verified credentials are trusted (kept as a salted hash) "
        "before the backend is asked again; 0 disables the cache.",
    )
    auth_failure_window: int = key(
        "auth.failure.window",
        integer(0),
        900,
        "opush addition. Seconds failed logins are remembered, per login and per client "
        "address; 0 disables login throttling.",
    )
    auth_failure_delay: int = key(
        "auth.failure.delay",
        integer(0),
        1,
        "opush addition. Seconds the answer to a login after a failure is delayed; the delay "
        "doubles with each further failure in the window.",
    )
    auth_failure_delay_max: int = key(
        "auth.failure.delay.max",
        integer(0),
        30,
        "opush addition. Longest delay of a login answer, in seconds.",
    )
    device_queue_max: int = key(
        "device.queue.max",
        integer(1),
        20,
        "opush addition. Requests of one user+device run one at a time; at most this many may "
        "wait, further ones are refused (the Java server's qosRejectingCeilPerClient).",
    )
    request_max_size: int | None = optional_key(
        "request.max-size",
        integer(1024),
        "opush addition. Largest request body accepted, in bytes (HTTP 413 beyond). When not "
        "set: twice message.maxSize of mail_conf.ini, at least 1 MiB.",
        example="20971520",
    )
    wbxml_max_depth: int = key(
        "wbxml.max-depth",
        integer(8),
        64,
        "opush addition. Deepest element nesting accepted in a WBXML request.",
    )
    wbxml_max_elements: int = key(
        "wbxml.max-elements",
        integer(100),
        100000,
        "opush addition. Most elements accepted in one WBXML request.",
    )
    smime_trust_store: Path | None = optional_key(
        "smime.trust-store",
        PATH,
        "opush addition. PEM file of the certification authorities ValidateCert trusts for "
        "S/MIME signers. When not set: the system bundle /etc/ssl/certs/ca-certificates.crt.",
        example="/etc/opush/smime-ca.pem",
    )
    smime_crl_timeout: int = key(
        "smime.crl-timeout",
        integer(1),
        10,
        "opush addition. Seconds ValidateCert waits for a certificate revocation list (CRL) "
        "server before reporting it unreachable.",
    )

    @property
    def transaction_timeout_seconds(self) -> float:
        return self.transaction_timeout_unit.seconds(self.transaction_timeout)

    @property
    def locator_cache_timeout_seconds(self) -> float:
        return self.locator_cache_timeunit.seconds(self.locator_cache_timeout)

    @property
    def db_port(self) -> int:
        return self.port if self.port is not None else 5432

    @property
    def active_sync_url(self) -> str | None:
        """What Autodiscover advertises (the Java getActiveSyncServletUrl)."""
        if self.external_url is None:
            return None
        return self.external_url + "/Microsoft-Server-ActiveSync"

    @property
    def state_file(self) -> Path:
        """The embedded store's SQLite file."""
        return self.data_dir / "opush.sqlite"


# ------------------------------------------------------------------------------- cassandra.ini


@attrs.frozen
class CassandraSection:
    FILE: ClassVar[str] = "cassandra.ini"

    cassandra_seeds: tuple[str, ...] = key(
        "cassandra.seeds",
        STRING_LIST,
        (),
        "List of Cassandra seeds (IPs), separated by commas. Required with storage=cassandra.",
        example="192.168.56.4,192.168.56.5,192.168.56.6",
    )
    cassandra_keyspace: str | None = optional_key(
        "cassandra.keyspace",
        STRING,
        "Cassandra keyspace for Opush. Required with storage=cassandra.",
        example="opush",
    )
    cassandra_user: str | None = optional_key(
        "cassandra.user",
        STRING,
        "Cassandra user for Opush. Required with storage=cassandra.",
        example="opush",
    )
    cassandra_password: str | None = optional_key(
        "cassandra.password",
        STRING,
        "Cassandra user password for Opush. Required with storage=cassandra.",
        secret=True,
        example="opush",
    )
    cassandra_read_timeout_ms: int = key(
        "cassandra.read-timeout-ms",
        integer(0),
        12000,
        "Read timeout of the Cassandra client, in milliseconds (OP-105).",
    )
    cassandra_retry_policy: RetryPolicy = key(
        "cassandra.retry-policy",
        choice(RetryPolicy),
        RetryPolicy.ALWAYS_RETRY,
        "Retry policy values: ALWAYS_RETRY (default), RETRY_OR_CL_DOWNGRADE.",
    )
    cassandra_max_retries: int = key(
        "cassandra.max-retries", integer(1), 3, "Maximum number of retry (default 3)."
    )


# ------------------------------------------------------------------------------- ldap_conf.ini

DEFAULT_LDAP_FILTER = "(&(objectClass=inetOrgPerson) (|(mail=%q*)(sn=%q*)(givenName=%q*)))"


@attrs.frozen
class LdapSection:
    FILE: ClassVar[str] = "ldap_conf.ini"

    search_ldap_filter: str = key(
        "search.ldap.filter",
        STRING,
        DEFAULT_LDAP_FILTER,
        "The filter expression to use for the search; %q is replaced by what the user typed.",
    )
    search_ldap_url: str | None = optional_key(
        "search.ldap.url",
        LDAP_URL,
        "The address where the ldap server can be reached (ldap://... or ldaps://...; no "
        "scheme means ldap://). Required in the obm profile; in the standalone profile, no "
        "URL means no GAL search.",
        example="ldap://127.0.0.1",
    )
    search_ldap_basedn: str = key(
        "search.ldap.basedn",
        STRING,
        "dc=%d,dc=local",
        "The name of the context or object to search for; %d is replaced by the user's domain.",
    )
    search_ldap_limit: int = key(
        "search.ldap.limit",
        integer(0),
        100,
        "The max entry count to read from the ldap server (the Java code's 100; the guide's "
        "table says 20).",
    )

    @property
    def enabled(self) -> bool:
        return self.search_ldap_url is not None


# ------------------------------------------------------------------------------- mail_conf.ini


@attrs.frozen
class MailSection:
    FILE: ClassVar[str] = "mail_conf.ini"

    imap_host: str | None = optional_key(
        "imap.host",
        STRING,
        "opush addition. IMAP server; overrides obm-locator. Required in the standalone profile.",
        example="127.0.0.1",
    )
    imap_port: int = key("imap.port", PORT, 143, "opush addition. IMAP port.")
    smtp_host: str | None = optional_key(
        "smtp.host",
        STRING,
        "opush addition. SMTP server; overrides obm-locator. Required in the standalone profile.",
        example="127.0.0.1",
    )
    smtp_port: int = key("smtp.port", PORT, 25, "opush addition. SMTP port.")
    sieve_port: int | None = optional_key(
        "sieve.port",
        PORT,
        "opush addition. ManageSieve port (RFC 5804, usually 4190) of the mail server: the "
        "devices' out-of-office (EAS Settings Oof) becomes a Sieve vacation script there. "
        "Unset: out-of-office is not offered (Settings Oof answers Status 7).",
        example="4190",
    )
    sieve_host: str | None = optional_key(
        "sieve.host",
        STRING,
        "opush addition. ManageSieve server; default: the IMAP server.",
        example="127.0.0.1",
    )
    smtp_activate_tls: bool = key(
        "smtp.activateTLS",
        BOOLEAN,
        False,
        "opush addition. Opush uses STARTTLS to secure the SMTP connection (sending fails if "
        "the server does not offer it).",
    )
    smtp_auth: SmtpAuth = key(
        "smtp.auth",
        choice(SmtpAuth),
        SmtpAuth.NONE,
        "opush addition. SMTP AUTH: none; user: the device user's login and password (with "
        "@domain if imap.loginWithDomain); fixed: smtp.login and smtp.password.",
    )
    smtp_login: str | None = optional_key(
        "smtp.login", STRING, "opush addition. SMTP AUTH login when smtp.auth=fixed."
    )
    smtp_password: str | None = optional_key(
        "smtp.password",
        STRING,
        "opush addition. SMTP AUTH password when smtp.auth=fixed.",
        secret=True,
    )
    smtp_timeout_in_ms: int = key(
        "smtp.timeoutInMs",
        integer(1),
        30000,
        "opush addition. Timeout before Opush gives up connecting to or waiting for the SMTP "
        "server, in milliseconds.",
    )
    imap_activate_tls: bool = key(
        "imap.activateTLS", BOOLEAN, True, "Opush uses STARTTLS to secure the IMAP connection."
    )
    imap_login_with_domain: bool = key(
        "imap.loginWithDomain",
        BOOLEAN,
        True,
        "Opush includes @domain in the login for IMAP authentication.",
    )
    imap_timeout_in_ms: int = key(
        "imap.timeoutInMs",
        integer(1),
        5000,
        "Timeout before Opush gives up an IMAP command, in milliseconds.",
    )
    message_max_size: int = key(
        "message.maxSize",
        integer(1),
        10485760,
        "Max size allowed when sending a mail, in bytes.",
    )
    message_block_size: int = key(
        "message.blockSize",
        integer(1),
        10240,
        "Size of the blocks in which message bodies are fetched from IMAP, in bytes.",
    )
    imap_expunge_policy: ExpungePolicy = key(
        "imap.expungePolicy",
        choice(ExpungePolicy),
        ExpungePolicy.ALWAYS,
        "ALWAYS: deleted messages are expunged at once; NEVER: they are only flagged \\Deleted.",
    )
    imap_mailbox_draft: str = key(
        "imap.mailbox.draft", STRING, "Drafts", "IMAP folder of the ActiveSync Drafts folder."
    )
    imap_mailbox_sent: str = key(
        "imap.mailbox.sent", STRING, "Sent", "IMAP folder of the ActiveSync Sent folder."
    )
    imap_mailbox_trash: str = key(
        "imap.mailbox.trash", STRING, "Trash", "IMAP folder of the ActiveSync Deleted folder."
    )
    imap_mailbox_notes: str = key(
        "imap.mailbox.notes",
        STRING,
        "Notes",
        "opush addition. IMAP folder shown as the ActiveSync Notes folder (14.0+), one message "
        "per note as Apple Notes and other IMAP clients keep them. Not shown when absent.",
    )
    imap_mailbox_name_check_policy: NameCheckPolicy = key(
        "imap.mailbox.nameCheckPolicy",
        choice(NameCheckPolicy),
        NameCheckPolicy.ALWAYS,
        "ALWAYS: check that a mailbox name is valid before using it; NEVER: trust the server.",
    )


# ------------------------------------------------------------------------------ sync_perms.ini


@attrs.frozen
class SyncPermsSection:
    FILE: ClassVar[str] = "sync_perms.ini"

    allow_unknown_pda: bool = key(
        "allow.unknown.pda",
        BOOLEAN,
        True,
        "If you set to false, pda can't sync without validation by an administrator (on the "
        "OBM interface or the console). The shipped file sets true.",
    )
    blacklist_users: tuple[str, ...] = key(
        "blacklist.users",
        STRING_LIST,
        (),
        "Logins that may never sync, separated by commas.",
        example="joe@example.org,ann@example.org",
    )


# -------------------------------------------------------------------------- remote_console.ini


@attrs.frozen
class ConsoleSection:
    FILE: ClassVar[str] = "remote_console.ini"

    console_enable: bool = key(
        "console.enable", BOOLEAN, True, "May be switched to false to disable the SSH console."
    )
    console_ssh_port: int = key(
        "console.ssh.port", PORT, 5665, "The port used to connect to the SSH console."
    )
    console_authentication_domain: str = key(
        "console.authentication.domain",
        STRING,
        "global.virt",
        "The domain used for authentication (obm profile).",
    )
    console_admins: tuple[str, ...] = key(
        "console.admins",
        STRING_LIST,
        (),
        "opush addition. Logins allowed on the console, separated by commas. In the standalone "
        "profile only they may log in (with their mail password or an authorized key).",
        example="admin@example.org",
    )
    console_authorized_keys: Path | None = optional_key(
        "console.authorized-keys",
        PATH,
        "opush addition. OpenSSH authorized_keys file whose keys may log in as any of "
        "console.admins.",
        example="/etc/opush/console_authorized_keys",
    )


# ---------------------------------------------------------------------------------- policy.ini


@attrs.frozen
class PolicySection:
    """policy.ini: the EAS provisioning policy (MS-ASPROV 2.2.2); keys and defaults as the
    Java server's DefaultPolicy."""

    FILE: ClassVar[str] = "policy.ini"

    device_password_enabled: bool = key(
        "devicePasswordEnabled", BOOLEAN, False, "Require a device password."
    )
    alpha_numeric_device_password_required: bool = key(
        "alphaNumericDevicePasswordRequired",
        BOOLEAN,
        False,
        "The password must contain letters and digits.",
    )
    password_recovery_enabled: bool = key(
        "passwordRecoveryEnabled", BOOLEAN, False, "The device may send a recovery password."
    )
    device_encryption_enabled: bool = key(
        "deviceEncryptionEnabled", BOOLEAN, False, "Require device encryption."
    )
    attachments_enabled: bool = key(
        "attachmentsEnabled", BOOLEAN, True, "Attachments may be downloaded."
    )
    min_device_password_length: int = key(
        "minDevicePasswordLength", integer(1, 16), 4, "Minimum password length."
    )
    max_inactivity_time_device_lock: int = key(
        "maxInactivityTimeDeviceLock",
        integer(0, 9999),
        900,
        "Seconds of inactivity before the device locks.",
    )
    max_device_password_failed_attempts: int = key(
        "maxDevicePasswordFailedAttempts",
        integer(4, 16),
        8,
        "Failed password attempts before the device wipes itself.",
    )
    max_attachment_size: int | None = optional_key(
        "maxAttachmentSize",
        integer(0),
        "Largest attachment downloadable, in bytes (no limit when not set).",
        example="10485760",
    )
    allow_simple_device_password: bool = key(
        "allowSimpleDevicePassword", BOOLEAN, True, "Simple passwords like 1234 are allowed."
    )
    device_password_expiration: int | None = optional_key(
        "devicePasswordExpiration",
        integer_or("false", None, 0),
        "Days before a password expires (never when not set; false also means never).",
        example="false",
    )
    device_password_history: int = key(
        "devicePasswordHistory",
        integer_or("false", 0, 0),
        0,
        "Number of previous passwords that may not be reused (false means 0).",
    )
    allow_storage_card: bool = key("allowStorageCard", BOOLEAN, True, "Storage cards allowed.")
    allow_camera: bool = key("allowCamera", BOOLEAN, True, "Camera allowed.")
    require_storage_card_encryption: bool = key(
        "requireStorageCardEncryption", BOOLEAN, False, "Storage cards must be encrypted."
    )
    require_device_encryption: bool = key(
        "requireDeviceEncryption", BOOLEAN, False, "The device must be encrypted."
    )
    allow_unsigned_applications: bool = key(
        "allowUnsignedApplications", BOOLEAN, True, "Unsigned applications may run."
    )
    allow_unsigned_installation_packages: bool = key(
        "allowUnsignedInstallationPackages",
        BOOLEAN,
        True,
        "Unsigned installation packages may run.",
    )
    min_device_password_complex_characters: int = key(
        "minDevicePasswordComplexCharacters",
        integer(1, 4),
        3,
        "Character groups (lower, upper, digits, symbols) a password must mix.",
    )
    allow_wi_fi: bool = key("allowWiFi", BOOLEAN, True, "Wi-Fi allowed.")
    allow_text_messaging: bool = key("allowTextMessaging", BOOLEAN, True, "SMS allowed.")
    allow_popimap_email: bool = key(
        "allowPOPIMAPEmail", BOOLEAN, True, "POP/IMAP mail accounts allowed."
    )
    allow_bluetooth: int = key(
        "allowBluetooth",
        integer(0, 2),
        2,
        "0: Bluetooth disabled, 1: hands-free only, 2: allowed.",
    )
    allow_ir_da: bool = key("allowIrDA", BOOLEAN, True, "Infrared allowed.")
    require_manual_sync_when_roaming: bool = key(
        "requireManualSyncWhenRoaming", BOOLEAN, False, "Sync manually when roaming."
    )
    allow_desktop_sync: bool = key("allowDesktopSync", BOOLEAN, True, "Desktop sync allowed.")
    max_calendar_age_filter: int = key(
        "maxCalendarAgeFilter",
        integer(0, 7),
        0,
        "Oldest calendar items synced: 0 all, 4 two weeks, 5 one month, 6 three months, "
        "7 six months.",
    )
    allow_html_email: bool = key("allowHTMLEmail", BOOLEAN, True, "HTML mail allowed.")
    max_email_age_filter: int = key(
        "maxEmailAgeFilter",
        integer(0, 5),
        0,
        "Oldest mail synced: 0 all, 1 one day, 2 three days, 3 one week, 4 two weeks, 5 one month.",
    )
    max_email_body_truncation_size: int = key(
        "maxEmailBodyTruncationSize",
        integer(-1),
        -1,
        "Plain text bodies truncated to this many bytes (-1: no truncation).",
    )
    max_email_html_body_truncation_size: int = key(
        "maxEmailHTMLBodyTruncationSize",
        integer(-1),
        -1,
        "HTML bodies truncated to this many bytes (-1: no truncation).",
    )
    require_signed_smime_messages: bool = key(
        "requireSignedSMIMEMessages", BOOLEAN, False, "Outgoing mail must be S/MIME signed."
    )
    require_encrypted_smime_messages: bool = key(
        "requireEncryptedSMIMEMessages",
        BOOLEAN,
        False,
        "Outgoing mail must be S/MIME encrypted.",
    )
    require_signed_smime_algorithm: bool = key(
        "requireSignedSMIMEAlgorithm",
        BOOLEAN,
        False,
        "false: SHA-1 for signing, true: MD5 (MS-ASPROV).",
    )
    require_encryption_smime_algorithm: bool = key(
        "requireEncryptionSMIMEAlgorithm",
        BOOLEAN,
        False,
        "false: TripleDES for encryption, true: another algorithm (MS-ASPROV).",
    )
    allow_smime_encryption_algorithm_negotiation: int = key(
        "allowSMIMEEncryptionAlgorithmNegotiation",
        integer(0, 2),
        2,
        "0: no negotiation, 1: strong algorithms only, 2: any algorithm.",
    )
    allow_smime_soft_certs: bool = key(
        "allowSMIMESoftCerts", BOOLEAN, True, "Soft S/MIME certificates allowed."
    )
    allow_browser: bool = key("allowBrowser", BOOLEAN, True, "Web browser allowed.")
    allow_consumer_email: bool = key(
        "allowConsumerEmail", BOOLEAN, True, "Consumer mail accounts allowed."
    )
    allow_remote_desktop: bool = key("allowRemoteDesktop", BOOLEAN, True, "Remote desktop allowed.")
    allow_internet_sharing: bool = key(
        "allowInternetSharing", BOOLEAN, True, "Internet sharing (tethering) allowed."
    )


# -------------------------------------------------------------------------------- dav_conf.ini


@attrs.frozen
class DavSection:
    FILE: ClassVar[str] = "dav_conf.ini"

    dav_url: str | None = optional_key(
        "dav.url",
        HTTP_URL,
        "opush addition, standalone profile. CalDAV/CardDAV root (users' calendars and address "
        "books are found below it). Without it only mail is synchronized.",
        example="http://127.0.0.1:5232/",
    )
    dav_freebusy_login: str | None = optional_key(
        "dav.freebusy.login",
        STRING,
        "opush addition. Account opush reads other users' calendars with to answer availability "
        "(ResolveRecipients free/busy): only busy periods reach devices. Without it the asking "
        "user's own credentials are used (the CalDAV server's rights decide).",
        example="freebusy@example.org",
    )
    dav_freebusy_password: str | None = optional_key(
        "dav.freebusy.password",
        STRING,
        "opush addition. Password of dav.freebusy.login.",
        secret=True,
        example="secret",
    )
