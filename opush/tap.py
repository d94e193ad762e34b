# mypy: disallow-untyped-calls=False
"""``twistd opush``: command-line options and the service tree.

``makeService`` loads and validates the whole configuration first (every error printed, exit 1,
before anything listens), then only *builds* services: nothing connects or listens until twistd
starts them, so tests can inspect the tree without a running reactor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from twisted.application import strports
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogLevel
from twisted.python import usage

from opush.config import Config, describe, load_or_exit
from opush.config.sections import Backend, Storage
from opush.log import LoggingService, install_access_log, logger
from opush.runtime import FrontDoorSettings, Runtime

log = logger("CONTAINER")


class Options(usage.Options):
    """twistd opush [--config-dir DIR] [--http ENDPOINT] [--console ENDPOINT]."""

    synopsis = "[--config-dir DIR] [--http ENDPOINT] [--console ENDPOINT]"
    longdesc = (
        "Exchange ActiveSync server. Configuration files (opush.ini, cassandra.ini, "
        "ldap_conf.ini, mail_conf.ini, sync_perms.ini, remote_console.ini, policy.ini, "
        "dav_conf.ini, logback.xml) are read from the configuration directory; opush.ini "
        "falls back to /etc/obm/obm_conf.ini as the Java Opush did. ENDPOINTs are Twisted "
        "strports strings, e.g. tcp:8082 or tcp:8082:interface=127.0.0.1."
    )
    optParameters = [
        ["config-dir", "c", "/etc/opush", "Directory holding opush.ini and the other files."],
        ["http", None, "tcp:8082", "Endpoint of the ActiveSync/Autodiscover HTTP server."],
        [
            "console",
            None,
            None,
            "Endpoint of the SSH administration console "
            "(default: tcp:<console.ssh.port of remote_console.ini>, i.e. tcp:5665).",
        ],
    ]


def _foreground(options: Options) -> bool:
    """True under ``twistd -n``: logs then also go to stdout."""
    parent = getattr(options, "parent", None)
    return bool(parent is not None and parent.get("nodaemon"))


class OpushService(MultiService):
    """The root service: logging first, then storage checks, then the listeners.

    The schema check is asynchronous; HTTP listens at once but device requests are refused
    (503) until the state store's schema is usable (DESIGN.md "Schema versions").
    """

    def __init__(self, config: Config, runtime: Runtime, stores: list[Any]) -> None:
        super().__init__()
        self.setName("opush")
        self.config = config
        self.runtime = runtime
        self._stores = stores
        self.ready: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        log.info("opush {version} starting", version=_version())
        self.ready = ensureDeferred(self._check_storage())

    async def _check_storage(self) -> None:
        from opush.storage.startup import check_schema_at_startup

        try:
            await check_schema_at_startup(self.runtime, self.config)
        except Exception:
            log.failure("Storage check failed; device requests are refused")

    def stopService(self) -> Deferred[None]:
        return ensureDeferred(self._stop())

    async def _stop(self) -> None:
        site = self.runtime.services.get("site")
        if site is not None:
            site.interrupt_requests()
        await super().stopService()
        mail = self.runtime.mail
        if mail is not None and hasattr(mail, "shutdown"):
            await mail.shutdown()
        for store in self._stores:
            close = getattr(store, "close", None)
            if close is not None:
                result = close()
                if isinstance(result, Deferred):
                    await result


def _version() -> str:
    import opush

    return opush.__version__


def _log_configuration(config: Config) -> None:
    conf_log = logger("CONFIGURATION")
    for warning in config.warnings:
        conf_log.warn("{warning}", warning=str(warning))
    for line in describe(config):
        conf_log.info("{line}", line=line)


def build_runtime(config: Config, reactor: Any) -> tuple[Runtime, list[Any]]:
    """Storage and backends for the configured profile (`backend`, `storage`)."""
    stores: list[Any] = []
    if config.opush.storage is Storage.CASSANDRA:
        from opush.storage.cassandra import CassandraSettings, CassandraStore

        state: Any = CassandraStore.open(
            CassandraSettings.from_section(config.cassandra), reactor=reactor
        )
    else:
        from opush.storage.embedded import EmbeddedStore

        state = EmbeddedStore(config.opush.state_file, reactor=reactor)
    stores.append(state)

    if config.opush.backend is Backend.STANDALONE:
        from opush.profiles.standalone import standalone_backends

        backends = standalone_backends(config, reactor)
    else:
        from opush.profiles.obm import obm_backends

        backends = obm_backends(config, reactor)
    stores.extend(backends.closeables)
    devices = backends.devices if backends.devices is not None else state
    runtime = Runtime(
        clock=reactor,
        auth=backends.auth,
        devices=devices,
        state=state,
        mail=backends.mail,
        config=config,
        settings=FrontDoorSettings.from_config(config),
    )
    runtime.services.update(backends.services)
    runtime.services["validatecert"] = certificate_validator(config, reactor)
    from opush.push import install as install_push

    install_push(runtime)  # Ping/Sync Wait watchers; registers services["sync_wait"]
    return runtime, stores


def certificate_validator(config: Config, reactor: Any) -> Any:
    """ValidateCert's validator: opush.ini smime.trust-store (checked at load), else the
    system bundle when present (none: every signer is untrusted, warned at load)."""
    from opush.backends.pki import (
        SYSTEM_TRUST_STORE,
        CertificateValidator,
        http_crl_fetcher,
        load_trust_store,
    )

    path = config.opush.smime_trust_store or SYSTEM_TRUST_STORE
    try:
        anchors = load_trust_store(path)
    except (OSError, ValueError):
        anchors = []
    return CertificateValidator(
        anchors, fetch_crl=http_crl_fetcher(reactor, config.opush.smime_crl_timeout)
    )


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """Build the opush service tree from the options (see module docstring)."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    config_dir = Path(options["config-dir"])
    config = load_or_exit(config_dir)

    logging_service = LoggingService(
        config.opush.log_dir,
        config_dir / "logback.xml",
        foreground=_foreground(options),
        clock=reactor,
    )
    runtime, stores = build_runtime(config, reactor)
    root = OpushService(config, runtime, stores)
    # Logging first, so every later startup message reaches opush.log.
    logging_service.setServiceParent(root)
    _ConfigurationLogger(config).setServiceParent(root)

    from opush.http.site import make_site

    site = make_site(runtime)
    install_access_log(site, logging_service.access_log)
    runtime.services["site"] = site
    http = strports.service(options["http"], cast(Any, site), reactor=reactor)
    http.setName("http")
    http.setServiceParent(root)

    console = _console_service(config, runtime, options, reactor)
    if console is not None:
        cast(Any, console).setServiceParent(root)
    return root


def _console_service(
    config: Config, runtime: Runtime, options: Options, reactor: Any
) -> IService | None:
    """The SSH console when `console.enable` is true (remote_console.ini)."""
    if not config.console.console_enable:
        return None
    try:
        from opush.console.service import make_console_service
    except ImportError:
        log.warn("SSH console not available in this build")
        return None
    endpoint = options["console"] or f"tcp:{config.console.console_ssh_port}"
    service: IService = make_console_service(config, runtime, endpoint, reactor)
    return service


class _ConfigurationLogger(MultiService):
    """Prints the effective configuration (passwords as `*`) once logging is up."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config

    def startService(self) -> None:
        super().startService()
        _log_configuration(self.config)


__all__ = ["LogLevel", "Options", "OpushService", "build_runtime", "makeService"]
