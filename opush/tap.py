"""``twistd opush``: command-line options and the service tree.

``makeService`` only builds services; nothing listens until twistd starts them, so tests can
inspect the tree without a reactor running.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService
from twisted.python import usage


class Options(usage.Options):
    """twistd opush [--config-dir DIR] [--http ENDPOINT] [--console ENDPOINT]."""

    synopsis = "[--config-dir DIR] [--http ENDPOINT] [--console ENDPOINT]"
    longdesc = (
        "Exchange ActiveSync server. Configuration files (opush.ini, cassandra.ini, "
        "ldap_conf.ini, mail_conf.ini, sync_perms.ini, remote_console.ini, policy.ini, "
        "logback.xml) are read from the configuration directory; opush.ini falls back to "
        "/etc/obm/obm_conf.ini as the Java Opush did. ENDPOINTs are Twisted strports "
        "strings, e.g. tcp:8082 or tcp:8082:interface=127.0.0.1."
    )
    optParameters = [
        ["config-dir", "c", "/etc/opush", "Directory holding opush.ini and the other files."],
        ["http", None, "tcp:8082", "Endpoint of the ActiveSync/Autodiscover HTTP server."],
        ["console", None, "tcp:5665", "Endpoint of the SSH administration console."],
    ]


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """Build the opush service tree from the options (see module docstring)."""
    root = MultiService()
    root.setName("opush")
    return root
