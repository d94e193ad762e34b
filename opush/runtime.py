"""The container of long-lived components a request needs, built once by `opush.tap`.

Commands reach everything through `ctx.runtime`: the clock (a reactor, or a `Clock` in
tests), the authenticator, the device registry, the state store, the mail backend, and the
front door's settings.  Nothing in here reads files: `opush.tap` turns the loaded `Config`
into these objects (see `FrontDoorSettings.from_config`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.interfaces import IDelayedCall

from opush.backends.interfaces import Auth, MailBackend
from opush.storage.interfaces import DeviceRegistry, StateStore

PolicyValue = str | int | bool


# EASProvisionDoc children in code-page order (MS-ASWBXML page 14; MS-ASPROV 2.2.2.27),
# with the policy.ini key that sets each.  Only settings a server can honestly ask for are
# listed; values come from policy.ini, defaults are the Java Opush's permissive ones.
EAS_PROVISION_DOC_ORDER: Sequence[str] = (
    "DevicePasswordEnabled",
    "AlphanumericDevicePasswordRequired",
    "RequireStorageCardEncryption",
    "PasswordRecoveryEnabled",
    "AttachmentsEnabled",
    "MinDevicePasswordLength",
    "MaxInactivityTimeDeviceLock",
    "MaxDevicePasswordFailedAttempts",
    "MaxAttachmentSize",
    "AllowSimpleDevicePassword",
    "DevicePasswordExpiration",
    "DevicePasswordHistory",
    "AllowStorageCard",
    "AllowCamera",
    "RequireDeviceEncryption",
    "AllowUnsignedApplications",
    "AllowUnsignedInstallationPackages",
    "MinDevicePasswordComplexCharacters",
    "AllowWiFi",
    "AllowTextMessaging",
    "AllowPOPIMAPEmail",
    "AllowBluetooth",
    "AllowIrDA",
    "RequireManualSyncWhenRoaming",
    "AllowDesktopSync",
    "MaxCalendarAgeFilter",
    "AllowHTMLEmail",
    "MaxEmailAgeFilter",
    "MaxEmailBodyTruncationSize",
    "MaxEmailHTMLBodyTruncationSize",
    "RequireSignedSMIMEMessages",
    "RequireEncryptedSMIMEMessages",
    "RequireSignedSMIMEAlgorithm",
    "RequireEncryptionSMIMEAlgorithm",
    "AllowSMIMEEncryptionAlgorithmNegotiation",
    "AllowSMIMESoftCerts",
    "AllowBrowser",
    "AllowConsumerEmail",
    "AllowRemoteDesktop",
    "AllowInternetSharing",
)

DEFAULT_POLICY: Mapping[str, PolicyValue] = {
    "DevicePasswordEnabled": False,
    "AlphanumericDevicePasswordRequired": False,
    "PasswordRecoveryEnabled": False,
    "RequireStorageCardEncryption": False,
    "AttachmentsEnabled": True,
    "MinDevicePasswordLength": 4,
    "MaxInactivityTimeDeviceLock": 900,
    "MaxDevicePasswordFailedAttempts": 8,
    "AllowSimpleDevicePassword": True,
    "DevicePasswordExpiration": 0,
    "DevicePasswordHistory": 0,
    "AllowStorageCard": True,
    "AllowCamera": True,
    "RequireDeviceEncryption": False,
    "AllowUnsignedApplications": True,
    "AllowUnsignedInstallationPackages": True,
    "MinDevicePasswordComplexCharacters": 3,
    "AllowWiFi": True,
    "AllowTextMessaging": True,
    "AllowPOPIMAPEmail": True,
    "AllowBluetooth": 2,
    "AllowIrDA": True,
    "RequireManualSyncWhenRoaming": False,
    "AllowDesktopSync": True,
    "MaxCalendarAgeFilter": 0,
    "AllowHTMLEmail": True,
    "MaxEmailAgeFilter": 0,
    "MaxEmailBodyTruncationSize": -1,
    "MaxEmailHTMLBodyTruncationSize": -1,
    "RequireSignedSMIMEMessages": False,
    "RequireEncryptedSMIMEMessages": False,
    "RequireSignedSMIMEAlgorithm": 0,
    "RequireEncryptionSMIMEAlgorithm": 0,
    "AllowSMIMEEncryptionAlgorithmNegotiation": 2,
    "AllowSMIMESoftCerts": True,
    "AllowBrowser": True,
    "AllowConsumerEmail": True,
    "AllowRemoteDesktop": True,
    "AllowInternetSharing": True,
}


def _camel(snake: str) -> str:
    """`allow_simple_device_password` -> `AllowSimpleDevicePassword` (with the few
    acronyms MS-ASPROV spells in capitals)."""
    special = {"pop": "POP", "imap": "IMAP", "html": "HTML", "smime": "SMIME", "irda": "IrDA"}
    special.update({"wifi": "WiFi"})
    return "".join(special.get(part, part.capitalize()) for part in snake.split("_"))


def policy_from_section(section: Any) -> dict[str, PolicyValue]:
    """EASProvisionDoc values from a policy.ini section: an attrs instance with snake_case
    fields, or a mapping keyed by element name.  Unknown names are ignored; missing ones
    keep DEFAULT_POLICY."""
    policy = dict(DEFAULT_POLICY)
    if section is None:
        return policy
    known = {name.lower(): name for name in EAS_PROVISION_DOC_ORDER}
    items: list[tuple[str, Any]]
    if attrs.has(type(section)):
        items = [(_camel(f.name), getattr(section, f.name)) for f in attrs.fields(type(section))]
    elif isinstance(section, Mapping):
        items = list(section.items())
    else:
        return policy
    for name, value in items:
        folded = str(name).replace("_", "").replace(".", "").lower()
        if folded == "deviceencryptionenabled":
            # The 12.0 name of RequireStorageCardEncryption (MS-ASPROV 2.2.2.22); the Java
            # policy.ini key.  Either one set asks for encryption.
            if value:
                policy["RequireStorageCardEncryption"] = True
            continue
        canonical = known.get(folded)
        if canonical is None or value is None:
            continue
        if canonical == "RequireStorageCardEncryption":
            value = bool(value) or bool(policy.get(canonical))
        policy[canonical] = value
    return policy


def policy_fingerprint(policy: Mapping[str, PolicyValue]) -> int:
    """16 bits identifying the policy's content.  Final policy keys carry it in their low
    bits, so a device holding a key issued under another policy.ini is told to re-provision
    (MS-ASCMD 2.2.2 status 143 PolicyRefresh) without storing anything more per device."""
    text = "\n".join(f"{k}={_render(policy[k])}" for k in sorted(policy))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:2], "big")


def _render(value: PolicyValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@attrs.frozen
class FrontDoorSettings:
    """What the HTTP layer decides with; defaults are the Java Opush's behaviour."""

    #: opush.ini `external-url`: host (or URL) devices reach opush through (Autodiscover).
    external_url: str = "localhost"
    #: sync_perms.ini `allow.unknown.pda` / `blacklist.users`.
    allow_unknown_pda: bool = True
    blacklist_users: frozenset[str] = frozenset()
    #: EASProvisionDoc element -> value (policy.ini).
    policy: Mapping[str, PolicyValue] = attrs.field(factory=lambda: dict(DEFAULT_POLICY))
    #: Verified credentials are trusted this long without asking the backend again.
    auth_cache_seconds: float = 120.0
    #: Failed logins are remembered this long per login and per client address ...
    auth_failure_window_seconds: float = 900.0
    #: ... and each further attempt waits base * 2**(failures-1) seconds, at most max.
    auth_failure_base_delay: float = 1.0
    auth_failure_max_delay: float = 30.0
    #: Requests of one user+device run one at a time; beyond this many waiting, 503.
    max_waiting_per_device: int = 20
    throttle_retry_after_seconds: int = 30
    #: Largest request body accepted (bytes); mail_conf.ini message.maxSize plus margin.
    max_request_bytes: int = 32 * 1024 * 1024
    #: WBXML decoding limits (opush.ini wbxml.max-depth / wbxml.max-elements).
    wbxml_max_depth: int = 64
    wbxml_max_elements: int = 100_000
    #: Largest Autodiscover request accepted (bytes).
    autodiscover_max_bytes: int = 64 * 1024

    @property
    def activesync_url(self) -> str:
        """The EAS URL devices are told about (MS-ASCMD Autodiscover Url)."""
        base = self.external_url.strip().rstrip("/")
        if "://" not in base:
            base = f"https://{base}"
        return f"{base}/Microsoft-Server-ActiveSync"

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> FrontDoorSettings:
        """Read what applies from a loaded `opush.config.Config` (duck-typed: the sections
        `opush`, `sync_perms`, `policy`, `mail`)."""
        values: dict[str, Any] = {}
        opush_section = getattr(config, "opush", None)
        external = getattr(opush_section, "external_url", None)
        if external:
            values["external_url"] = str(external)
        perms = getattr(config, "sync_perms", None)
        if perms is not None:
            allow = getattr(perms, "allow_unknown_pda", None)
            if allow is not None:
                values["allow_unknown_pda"] = bool(allow)
            black = getattr(perms, "blacklist_users", None)
            if black:
                if isinstance(black, str):
                    black = [b for b in black.replace(";", ",").split(",")]
                values["blacklist_users"] = frozenset(
                    str(b).strip().lower() for b in black if str(b).strip()
                )
        if getattr(config, "policy", None) is not None:
            values["policy"] = policy_from_section(config.policy)
        for ini, field in (
            ("auth_cache_ttl", "auth_cache_seconds"),
            ("auth_failure_window", "auth_failure_window_seconds"),
            ("auth_failure_delay", "auth_failure_base_delay"),
            ("auth_failure_delay_max", "auth_failure_max_delay"),
            ("device_queue_max", "max_waiting_per_device"),
            ("wbxml_max_depth", "wbxml_max_depth"),
            ("wbxml_max_elements", "wbxml_max_elements"),
        ):
            value = getattr(opush_section, ini, None)
            if isinstance(value, int):
                values[field] = value
        request_max = getattr(opush_section, "request_max_size", None)
        mail = getattr(config, "mail", None)
        max_size = getattr(mail, "message_max_size", None)
        if isinstance(request_max, int) and request_max > 0:
            values["max_request_bytes"] = request_max
        elif isinstance(max_size, int) and max_size > 0:
            values["max_request_bytes"] = max(max_size * 2, 1024 * 1024)
        values.update(overrides)
        return cls(**values)


class Clock(Protocol):
    """The part of IReactorTime opush uses (a reactor, or twisted.internet.task.Clock)."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> IDelayedCall: ...


@attrs.define
class Runtime:
    """Long-lived components shared by every request."""

    clock: Clock
    auth: Auth
    devices: DeviceRegistry
    state: StateStore
    settings: FrontDoorSettings = attrs.field(factory=FrontDoorSettings)
    mail: MailBackend | None = None
    #: The loaded `opush.config.Config`, for commands needing settings not copied above.
    config: Any = None
    #: Other components later modules add (calendar, contacts, directory, push...).
    services: dict[str, Any] = attrs.field(factory=dict)
