"""Helpers for tests that need a configuration directory."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_DIR = REPO / "conf"
DEMO_DIR = REPO / "conf" / "demo"

# The smallest valid standalone configuration.
STANDALONE = {
    "opush.ini": "backend=standalone\n",
    "mail_conf.ini": "imap.host=127.0.0.1\nsmtp.host=127.0.0.1\n",
}

# The smallest valid obm-profile opush.ini.
OBM_OPUSH_INI = (
    "host=192.168.56.3\ndbtype=PGSQL\ndb=obm\nuser=obm\npassword=obm\n"
    "external-url=opush.example.org\n"
)


def write_config(directory: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (name -> text) into ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory
