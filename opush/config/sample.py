"""Write the sample configuration files: every key commented out with its default.

    python -m opush.config.sample conf        # rewrites conf/*.ini and conf/README.md

The samples are generated from the key declarations in `opush.config.sections`, so they cannot
drift from what the loader accepts (a unit test compares them).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

from opush.config.describe import render
from opush.config.loader import SECTION_CLASSES
from opush.config.schema import Spec, specs
from opush.config.sections import CassandraSection, DavSection, OpushSection

_HEADERS = {
    "opush.ini": (
        "Main configuration. In the obm profile a key missing here is read from "
        "/etc/obm/obm_conf.ini, as the Java Opush did (you may then drop or empty this file)."
    ),
    "cassandra.ini": "Cassandra connection, used with storage=cassandra in opush.ini.",
    "ldap_conf.ini": "LDAP directory used for GAL searches (recipient auto-completion).",
    "mail_conf.ini": (
        "IMAP and SMTP. Non-ASCII folder names: write them in UTF-8, or as \\uXXXX escapes "
        "(native2ascii output is accepted)."
    ),
    "sync_perms.ini": "Which devices may synchronize.",
    "remote_console.ini": "SSH administration console (port 5665 by default).",
    "policy.ini": (
        "Default EAS security policy sent to devices at Provision (MS-ASPROV). See "
        "http://msdn.microsoft.com/en-us/library/dd299443%28v=exchg.80%29.aspx for keys details."
    ),
    "dav_conf.ini": "CalDAV/CardDAV server of the standalone profile.",
}

_RULES = """\
Format of every file: one `key=value` per line (`key = value` and `key: value` work too), no
sections. Lines starting with `#`, `;` or `!` are comments; there are no comments at the end of a
line (a password may contain `#`). One pair of surrounding quotes is stripped from a value. An
empty value means "not set" (the default applies). Booleans are `true`/`false` (also
`yes`/`no`, `on`/`off`, `1`/`0`); lists are comma-separated; relative paths are resolved against
the configuration directory. Files may be UTF-8 or ISO-8859-1, with `\\uXXXX` escapes.

Every file is optional: a missing file means all its defaults. Required keys depend on the profile:

- `backend=obm` (default): `host`, `dbtype`, `db`, `user`, `password`, `external-url` in
  opush.ini, or in `/etc/obm/obm_conf.ini` (read for every key missing or empty in opush.ini;
  its other keys are OBM's and ignored). `dbtype=MYSQL` is refused: opush needs PostgreSQL.
- `backend=standalone`: `imap.host` and `smtp.host` in mail_conf.ini (`dav.url` in dav_conf.ini
  for calendars and contacts, `search.ldap.url` for GAL search, both optional).
- `storage=cassandra`: `cassandra.seeds`, `cassandra.keyspace`, `cassandra.user`,
  `cassandra.password` in cassandra.ini.

opush reads every file at startup and checks everything before it listens on anything: all
errors are printed together, one per line, each naming the file and the key
(`opush.ini: key 'window-size': expected an integer, got 'x'`), then it exits with status 1.
Unknown keys are warnings (with the nearest known key). With the CONFIGURATION logger enabled in
logback.xml (it is in the sample), the effective configuration is logged at startup, passwords
shown as `*`.
"""


def _wrap(text: str, prefix: str = "# ") -> list[str]:
    return textwrap.wrap(
        text,
        98 - len(prefix),
        initial_indent=prefix,
        subsequent_indent=prefix,
        break_on_hyphens=False,
    )


def _default(spec: Spec[Any], attribute: Any) -> str:
    return render(spec, attribute.default)


# Keys without a default that the default (obm) profile needs: set in the sample to the guide's
# sample values, as the Java packages shipped them, so the sample directory loads as it is.
_SET_IN_SAMPLE = {
    ("opush.ini", name) for name in ("host", "dbtype", "db", "user", "password", "external-url")
} | {("ldap_conf.ini", "search.ldap.url")}


def ini_sample(cls: type[Any]) -> str:
    """The commented sample of one file."""
    lines = [f"# /etc/opush/{cls.FILE}", "#"]
    lines += _wrap(_HEADERS[cls.FILE])
    lines.append("# Every key is shown commented out with its default; uncomment to change it.")
    for attribute, spec in specs(cls):
        lines.append("")
        lines += _wrap(spec.doc)
        default = _default(spec, attribute)
        if (cls.FILE, spec.key) in _SET_IN_SAMPLE:
            lines.append("# No default; replace this sample value.")
            lines.append(f"{spec.key}={spec.example}")
        elif attribute.default is None or default == "":
            lines.append("# Default: not set." + (" Example:" if spec.example else ""))
            lines.append(f"#{spec.key}={spec.example or ''}")
        else:
            lines.append(f"#{spec.key}={default}")
    return "\n".join(lines) + "\n"


LOGBACK_SAMPLE = """\
<!-- /etc/opush/logback.xml: named loggers to enable (WARN and above are always written).
     Loggers: AUTHENTICATION, BREAKDOWN, CONFIGURATION, CONTAINER, IMAP.COMMAND, MAIL.DATA,
     MIGRATION, OBM-SYNC, REQUEST.FULL, REQUEST.TRIMMED, RESOURCES, SUMMARY.IN, SUMMARY.OUT.
     Levels: TRACE, DEBUG, INFO, WARN, ERROR, OFF. -->
<included>
        <logger name="CONFIGURATION" level="INFO" />
        <logger name="CONTAINER" level="INFO" />
        <!-- <logger name="AUTHENTICATION" level="INFO" /> -->
        <!-- <logger name="REQUEST.TRIMMED" level="INFO" /> -->
</included>
"""


def readme() -> str:
    """conf/README.md: the rules and a table of every key."""
    out = [
        "# opush configuration reference",
        "",
        "Files live in the configuration directory (`/etc/opush`, or `twistd opush "
        "--config-dir DIR`). This directory holds a commented sample of each; `demo/` is a ready "
        "standalone configuration for the local services (`scripts/demo`).",
        "",
        _RULES,
    ]
    for _, cls in SECTION_CLASSES:
        out += ["", f"## {cls.FILE}", "", _HEADERS[cls.FILE], ""]
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for attribute, spec in specs(cls):
            default = _default(spec, attribute)
            shown = f"`{default}`" if default else "not set"
            if spec.secret:
                shown += " (secret: logged as `*`)"
            doc = spec.doc.replace("|", "\\|")
            kind = spec.type.description.replace("|", "\\|")
            out.append(f"| `{spec.key}` | {kind} | {shown} | {doc} |")
    out += [
        "",
        "## logback.xml",
        "",
        'Named logger levels, as in the Java server: `<included><logger name="AUTHENTICATION" '
        'level="INFO"/></included>`. Loggers: AUTHENTICATION, BREAKDOWN, CONFIGURATION, '
        "CONTAINER, IMAP.COMMAND, MAIL.DATA, MIGRATION, OBM-SYNC, REQUEST.FULL, "
        "REQUEST.TRIMMED, RESOURCES, SUMMARY.IN, SUMMARY.OUT.",
        "",
        "## Differences from the Java Opush",
        "",
        "- Values are checked: a boolean that is not true/false, a number that is not a number "
        "or an unknown enum value is an error (Java silently used a default or `true`).",
        "- `search.ldap.limit` defaults to 100 (the Java code; the guide's table says 20).",
        "- policy.ini defaults are the Java server's effective ones (`DefaultPolicy`): "
        "`deviceEncryptionEnabled=false`, `attachmentsEnabled=true`, although the Java sample "
        "file's comments said the opposite.",
        "- `devicePasswordExpiration` and `devicePasswordHistory` take numbers (days, count) as "
        "in MS-ASPROV; `false` is still accepted.",
        f"- opush additions: `{'`, `'.join(_additions())}`.",
        "",
    ]
    return "\n".join(out)


def _additions() -> list[str]:
    found = []
    for cls in (OpushSection, CassandraSection, DavSection, *(c for _, c in SECTION_CLASSES)):
        for _, spec in specs(cls):
            if spec.doc.startswith("opush addition") and spec.key not in found:
                found.append(spec.key)
    return found


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for _, cls in SECTION_CLASSES:
        (directory / cls.FILE).write_text(ini_sample(cls), encoding="utf-8")
    (directory / "logback.xml").write_text(LOGBACK_SAMPLE, encoding="utf-8")
    (directory / "README.md").write_text(readme(), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "conf"))
