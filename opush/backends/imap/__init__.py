"""IMAP mail backend: `ImapMailBackend` (MailBackend), `ImapAuth` (Auth), `ImapSettings`.

Wiring from mail_conf.ini (tap.py)::

    settings = ImapSettings(
        host=config.mail.imap_host, port=config.mail.imap_port,
        starttls=config.mail.imap_activate_tls,
        login_with_domain=config.mail.imap_login_with_domain,
        timeout=config.mail.imap_timeout_in_ms / 1000,
    )
    mail = ImapMailBackend(
        reactor, settings,
        drafts=config.mail.imap_mailbox_draft, sent=config.mail.imap_mailbox_sent,
        trash=config.mail.imap_mailbox_trash,
        expunge_policy=ExpungePolicy(config.mail.imap_expunge_policy.value),
    )
    auth = ImapAuth(reactor, settings)          # standalone profile
    ...
    await mail.shutdown()                       # on service stop: LOGOUT pooled sessions

Modules: `protocol` (the IMAP client on LineReceiver), `parser` (responses, BODYSTRUCTURE,
ENVELOPE, sequence sets), `utf7` (mailbox names), `pool` (login + per-user pool), `store`
(MailStore), `watch` (IDLE/NOTIFY/STATUS polling), `auth` (ImapAuth).
"""

from opush.backends.imap.auth import ImapAuth
from opush.backends.imap.pool import ImapPool, ImapSettings
from opush.backends.imap.store import ImapMailBackend, ImapMailStore
from opush.backends.imap.utf7 import decode_mailbox, encode_mailbox

__all__ = [
    "ImapAuth",
    "ImapMailBackend",
    "ImapMailStore",
    "ImapPool",
    "ImapSettings",
    "decode_mailbox",
    "encode_mailbox",
]
