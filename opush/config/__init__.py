"""opush configuration: one loader per ini file, typed frozen attrs sections, all errors collected.

from opush.config import load, describe, ConfigError
config = load(Path("/etc/opush"))      # raises ConfigError listing every problem
config.opush.window_size, config.mail.imap_host, config.console.console_ssh_port, ...
for line in describe(config): log.info(line)   # passwords shown as *
"""

from opush.config.describe import describe
from opush.config.loader import DEFAULT_CONFIG_DIR, DEFAULT_OBM_CONF, Config, load, load_or_exit
from opush.config.problems import ConfigError, Problem
from opush.config.sections import (
    Backend,
    CassandraSection,
    ConsoleSection,
    DavSection,
    DbType,
    ExpungePolicy,
    LdapSection,
    MailSection,
    NameCheckPolicy,
    OpushSection,
    PolicySection,
    RetryPolicy,
    Storage,
    SyncPermsSection,
    TimeUnit,
)

__all__ = [
    "DEFAULT_CONFIG_DIR",
    "DEFAULT_OBM_CONF",
    "Backend",
    "CassandraSection",
    "Config",
    "ConfigError",
    "ConsoleSection",
    "DavSection",
    "DbType",
    "ExpungePolicy",
    "LdapSection",
    "MailSection",
    "NameCheckPolicy",
    "OpushSection",
    "PolicySection",
    "Problem",
    "RetryPolicy",
    "Storage",
    "SyncPermsSection",
    "TimeUnit",
    "describe",
    "load",
    "load_or_exit",
]
