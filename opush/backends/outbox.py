"""Sending as the user, outside the SendMail command: 16.x drafts with email2:Send
(MS-ASEMAIL 2.2.2.69) go out through the same SMTP client and land in the same Sent Items
folder as SendMail's mail (``opush.commands.compose`` uses these helpers too)."""

from __future__ import annotations

from typing import Any

import attrs

from opush.backends.interfaces import Credentials, SpecialUse
from opush.backends.smtp import SmtpClient, SmtpUnavailable, settings_from_config
from opush.content.email import Identity, prepare_outgoing


def smtp_client_for(runtime: Any) -> SmtpClient:
    """`runtime.services["smtp"]` (the profiles put it there); in the obm profile without one,
    a client that finds the server through obm-locator (``MailHosts.smtp``)."""
    services = runtime.services
    client = services.get("smtp")
    if client is not None:
        return client  # type: ignore[no-any-return]
    hosts = services.get("mail_hosts")
    config = runtime.config
    if hosts is not None or getattr(getattr(config, "mail", None), "smtp_host", None):
        settings = settings_from_config(config) if config is not None else None
        if settings is not None:
            client = SmtpClient(
                runtime.clock,
                settings,
                locate=getattr(hosts, "smtp", None) if hosts is not None else None,
            )
            services["smtp"] = client
            return client
    raise SmtpUnavailable("no SMTP server configured (mail_conf.ini smtp.host)")


def sent_folder_for(runtime: Any) -> str:
    """mail_conf.ini imap.mailbox.sent, else the mail backend's Sent role, else "Sent"."""
    mail = getattr(runtime.config, "mail", None)
    name = getattr(mail, "imap_mailbox_sent", None)
    if isinstance(name, str) and name:
        return name
    roles = getattr(runtime.mail, "configured_roles", None)
    if isinstance(roles, dict) and roles.get(SpecialUse.SENT):
        return str(roles[SpecialUse.SENT])
    return "Sent"


@attrs.define
class SmtpOutbox:
    """``opush.backends.mailsource.Outbox`` over SMTP as the authenticated user."""

    runtime: Any
    credentials: Credentials

    @property
    def sent_folder(self) -> str:
        return sent_folder_for(self.runtime)

    async def send(self, message: bytes) -> None:
        user = self.credentials.user
        out = prepare_outgoing(
            message, Identity(address=user.email, display_name=user.display_name)
        )
        if not out.recipients:
            raise ValueError("the draft has no To, Cc or Bcc recipient")
        client = smtp_client_for(self.runtime)
        await client.send(out.mail_from, out.recipients, out.data, credentials=self.credentials)
