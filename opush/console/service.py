# mypy: disallow-untyped-calls=False
"""``make_console_service``: the SSH console as a Twisted service (called by `opush.tap`
when ``console.enable`` is true).

The host key is read from, or generated in, ``<data-dir>/console_host_key`` when the service
starts, before it listens. Password and public-key authentication: `opush.console.auth`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.conch.ssh.factory import SSHFactory
from twisted.conch.ssh.keys import Key
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import ILogObserver, Logger

from opush.console.auth import AdminPasswordChecker, AdminPolicy, AuthorizedKeysChecker
from opush.console.commands import ConsoleApp
from opush.console.hostkey import host_key_fingerprint, load_or_create_host_key
from opush.console.metrics import MetricsHistory
from opush.console.session import ConsoleRealm
from opush.log import logger, opush_publisher

log = logger("CONTAINER")


class ConsoleFactory(SSHFactory):
    """Conch's SSH server with our keys; Diffie-Hellman group exchange is not offered
    (no moduli file), the fixed groups and curve25519 are."""

    #: Conch says at every connection that it has no moduli file; we know.
    _log = Logger(observer=cast(ILogObserver, lambda event: None))
    noisy = False

    def __init__(self, portal: Portal, host_key: Key) -> None:
        self.portal = portal
        self.privateKeys = {host_key.sshType(): host_key}
        self.publicKeys = {host_key.sshType(): host_key.public()}

    def getPrimes(self) -> None:
        return None


def build_portal(app: ConsoleApp, runtime: Any, config: Any) -> Portal:
    """The realm behind password and (when configured) public-key checkers."""
    section = config.console
    backend = getattr(getattr(config.opush, "backend", None), "value", "standalone")
    console_auth = runtime.services.get("console_auth")
    default_domain = section.console_authentication_domain if backend == "obm" else None
    policy = AdminPolicy.create(
        section.console_admins,
        default_domain=default_domain,
        open_to_backend=console_auth is not None,
    )
    portal = Portal(cast(IRealm, ConsoleRealm(app)))
    portal.registerChecker(
        cast(ICredentialsChecker, AdminPasswordChecker(console_auth or runtime.auth, policy))
    )
    keys = section.console_authorized_keys
    if keys is not None:
        portal.registerChecker(cast(ICredentialsChecker, AuthorizedKeysChecker(Path(keys), policy)))
    if not policy.admins and console_auth is None:
        log.warn("console.admins is empty in remote_console.ini: nobody can log in to the console")
    return portal


class ConsoleService(MultiService):
    """Keeps the dashboard's history while running; the listener is its child."""

    def __init__(
        self, config: Any, runtime: Any, endpoint: str, reactor: Any, history: MetricsHistory
    ) -> None:
        super().__init__()
        self.setName("console")
        self.config = config
        self.runtime = runtime
        self.endpoint = endpoint
        self.reactor = reactor
        self.history = history
        self.app = ConsoleApp(runtime, config, history)
        self.factory: ConsoleFactory | None = None

    def startService(self) -> None:
        key = load_or_create_host_key(Path(self.config.opush.data_dir))
        self.factory = ConsoleFactory(build_portal(self.app, self.runtime, self.config), key)
        listener = strports.service(
            self.endpoint, cast(IProtocolFactory, self.factory), reactor=self.reactor
        )
        listener.setName("console-listener")
        listener.setServiceParent(self)
        opush_publisher.addObserver(cast(ILogObserver, self.history.breakdown))
        self.history.start()
        super().startService()
        log.info(
            "SSH console listening on {endpoint} (host key {fingerprint})",
            endpoint=self.endpoint,
            fingerprint=host_key_fingerprint(key),
        )

    def stopService(self) -> Any:
        self.history.stop()
        try:
            opush_publisher.removeObserver(cast(ILogObserver, self.history.breakdown))
        except ValueError:
            pass
        return super().stopService()


def make_console_service(config: Any, runtime: Any, endpoint: str, reactor: Any) -> IService:
    """The SSH console on ``endpoint`` (a strports string such as ``tcp:5665``)."""

    def metrics() -> Any:
        site = runtime.services.get("site")
        return getattr(site, "metrics", None)

    history = MetricsHistory(metrics, reactor)
    return cast(IService, ConsoleService(config, runtime, endpoint, reactor, history))
