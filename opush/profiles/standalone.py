"""The standalone profile: IMAP LOGIN is the authority, mail over IMAP/SMTP, devices in the
state store (DESIGN.md "Config": `backend = standalone`)."""

from __future__ import annotations

from typing import Any

from opush.backends.imap import ImapAuth, ImapMailBackend, ImapSettings
from opush.backends.interfaces import ExpungePolicy
from opush.config import Config
from opush.profiles import Backends


def imap_settings(config: Config, host: str | None = None) -> ImapSettings:
    """mail_conf.ini's IMAP keys; `host` overrides imap.host (obm-locator in the obm profile)."""
    mail = config.mail
    return ImapSettings(
        host=host or mail.imap_host or "localhost",
        port=mail.imap_port,
        starttls=mail.imap_activate_tls,
        login_with_domain=mail.imap_login_with_domain,
        timeout=mail.imap_timeout_in_ms / 1000.0,
    )


def mail_backend(config: Config, reactor: Any, settings: ImapSettings) -> ImapMailBackend:
    mail = config.mail
    return ImapMailBackend(
        reactor,
        settings,
        drafts=mail.imap_mailbox_draft,
        sent=mail.imap_mailbox_sent,
        trash=mail.imap_mailbox_trash,
        notes=mail.imap_mailbox_notes,
        expunge_policy=ExpungePolicy(mail.imap_expunge_policy.value),
    )


def oof_services(config: Config, reactor: Any) -> dict[str, Any]:
    """``oof`` (EAS Settings Oof as Sieve vacation) when mail_conf.ini has sieve.port; the
    server is sieve.host, else imap.host (in the obm profile one of them must be set: the
    ManageSieve server is not looked up in obm-locator)."""
    mail = config.mail
    host = mail.sieve_host or mail.imap_host
    if mail.sieve_port is None or not host:
        return {}
    from opush.backends.sieve import ManageSieve, SieveOof

    timeout = mail.imap_timeout_in_ms / 1000.0
    return {"oof": SieveOof(ManageSieve(reactor, host, mail.sieve_port, timeout))}


def standalone_backends(config: Config, reactor: Any) -> Backends:
    from opush.backends.smtp import SmtpClient, settings_from_config

    settings = imap_settings(config)
    services: dict[str, Any] = {
        "smtp": SmtpClient(reactor, settings_from_config(config)),
        **oof_services(config, reactor),
    }
    closeables: list[Any] = []
    if config.dav.dav_url:
        # Address books over CardDAV (dav_conf.ini dav.url), accounts as for IMAP.
        from opush.backends.dav import DavAccounts, dav_services

        accounts = DavAccounts(
            reactor,
            config.dav.dav_url,
            login_with_domain=config.mail.imap_login_with_domain,
            timeout=config.mail.imap_timeout_in_ms / 1000.0,
        )
        services.update(dav_services(accounts))
        from opush.backends.dav.freebusy import DavAvailability

        services["availability"] = DavAvailability(
            accounts, config.dav.dav_freebusy_login, config.dav.dav_freebusy_password
        )
        closeables.append(accounts)
    return Backends(
        auth=ImapAuth(reactor, settings),
        mail=mail_backend(config, reactor, settings),
        services=services,
        closeables=closeables,
    )
