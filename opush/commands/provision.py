"""Provision (MS-ASPROV): the two-step policy handshake and remote wipe delivery.

1. Initial request (MS-ASPROV 3.1.5.1.1): the device asks for the policy; we answer the
   EASProvisionDoc from policy.ini and a *temporary* key, stored as the device's pending key.
2. Acknowledgement (3.1.5.1.2.1): the device echoes the temporary key with its status; we
   answer the *final* key, which every other command must then carry (policy gate in
   opush.http.devices).  A wrong temporary key gets Policy Status 5.

A wipe requested by an administrator (DeviceRegistry.request_wipe) is delivered instead of
the policy: RemoteWipe, or AccountOnlyRemoteWipe for 16.1 devices (2.2.2.1); the device's
acknowledgement (3.1.5.1.2.2/3) is recorded with DeviceRegistry.acknowledge_wipe.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from lxml import etree
from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.commands.settings import apply_device_information
from opush.http.errors import EasStatusError, GlobalStatus
from opush.log import logger
from opush.runtime import EAS_PROVISION_DOC_ORDER, PolicyValue, policy_fingerprint
from opush.storage.interfaces import WipeState
from opush.wbxml import E

log = logger("opush.commands.provision")

PROV = "Provision:"
SETTINGS = "Settings:"
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"  # 12.0+ (MS-ASPROV 2.2.2.42)

# Provision Status (MS-ASPROV 2.2.2.54.1) and Policy Status (2.2.2.54.2).
STATUS_SUCCESS = 1
STATUS_PROTOCOL_ERROR = 2
POLICY_UNKNOWN_TYPE = 3
POLICY_WRONG_KEY = 5

# EASProvisionDoc elements that exist in 12.0 (MS-ASWBXML code page 14, 0x0E..0x1A); the
# rest are 12.1+.
_FIRST_12_1 = EAS_PROVISION_DOC_ORDER.index("AllowStorageCard")
_V12_0_ELEMENTS = frozenset(EAS_PROVISION_DOC_ORDER[:_FIRST_12_1])


def _p(tag: str) -> str:
    return f"{{{PROV}}}{tag}"


def _sub(parent: _Element, tag: str, text: str | None = None, ns: str = PROV) -> _Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _root(status: int) -> _Element:
    root = E(PROV, "Provision")
    _sub(root, "Status", str(status))
    return root


def new_policy_key(avoid: int | None = None, fingerprint: int | None = None) -> int:
    """A random non-zero 32-bit key (0 means "no key" in MS-ASPROV).  With `fingerprint`
    (a final key) its low 16 bits are the policy's fingerprint (runtime.policy_fingerprint)."""
    while True:
        if fingerprint is None:
            key = secrets.randbelow(2**32 - 1) + 1
        else:
            key = (secrets.randbelow(2**16) << 16) | fingerprint
        if key not in (0, avoid):
            return key


def _render_value(value: PolicyValue) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def provision_doc(policy: Mapping[str, PolicyValue], version: tuple[int, int]) -> _Element:
    """EASProvisionDoc (MS-ASPROV 2.2.2.27) in schema order, limited to the version's elements."""
    doc = etree.Element(_p("EASProvisionDoc"))
    for name in EAS_PROVISION_DOC_ORDER:
        if name not in policy or policy[name] is None:
            continue
        if version < (12, 1) and name not in _V12_0_ELEMENTS:
            continue
        _sub(doc, name, _render_value(policy[name]))
    return doc


def _text(el: _Element | None) -> str | None:
    return None if el is None or el.text is None else el.text.strip()


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    registry = ctx.runtime.devices
    user, device_id = ctx.device.user, ctx.device.device_id
    if request is not None and request.tag != _p("Provision"):
        raise EasStatusError(STATUS_PROTOCOL_ERROR, message=f"unexpected root {request.tag}")

    info = request.find(f"{{{SETTINGS}}}DeviceInformation") if request is not None else None
    device_info_status: int | None = None
    if info is not None:
        device_info_status = await apply_device_information(ctx, info)

    def finish(root: _Element) -> CommandResult:
        if device_info_status is not None:
            # 14.1+: the settings:DeviceInformation status follows Status (MS-ASPROV 2.2.2.52).
            di = E(SETTINGS, "DeviceInformation")
            _sub(di, "Status", str(device_info_status), ns=SETTINGS)
            root.insert(1, di)
        return CommandResult.wbxml(root)

    # -- wipe acknowledgement (MS-ASPROV 3.1.5.1.2.2 / 3.1.5.1.2.3)
    for tag, pending in (
        ("RemoteWipe", WipeState.WIPE_PENDING),
        ("AccountOnlyRemoteWipe", WipeState.ACCOUNT_ONLY_WIPE_PENDING),
    ):
        ack = request.find(_p(tag)) if request is not None else None
        if ack is not None:
            status = _text(ack.find(_p("Status")))
            if ctx.device.wipe is pending and status == "1":
                await registry.acknowledge_wipe(user, device_id)
                log.warn(
                    "{user}/{device} acknowledged {kind}", user=user, device=device_id, kind=tag
                )
            else:
                log.warn(
                    "{user}/{device} sent {kind} status {status} (wipe state {state})",
                    user=user,
                    device=device_id,
                    kind=tag,
                    status=status,
                    state=ctx.device.wipe.value,
                )
            return finish(_root(STATUS_SUCCESS))

    # -- wipe delivery (MS-ASPROV 3.2.5.1.2)
    if ctx.device.wipe is WipeState.WIPE_PENDING:
        root = _root(STATUS_SUCCESS)
        _sub(root, "RemoteWipe")
        return finish(root)
    if ctx.device.wipe is WipeState.ACCOUNT_ONLY_WIPE_PENDING:
        if ctx.version >= (16, 1):
            root = _root(STATUS_SUCCESS)
            _sub(root, "AccountOnlyRemoteWipe")
            return finish(root)
        # Before 16.1 the device cannot be told to drop just the account, and a full wipe
        # of someone's phone is not what the administrator asked: keep it out instead.
        raise EasStatusError(
            GlobalStatus.DEVICE_IS_BLOCKED_FOR_THIS_USER,
            message="account-only wipe pending for a pre-16.1 device",
            level="warn",
        )

    policy = request.find(f"{_p('Policies')}/{_p('Policy')}") if request is not None else None
    if policy is None:
        raise EasStatusError(STATUS_PROTOCOL_ERROR, message="Provision without Policies/Policy")
    policy_type = _text(policy.find(_p("PolicyType")))
    root = _root(STATUS_SUCCESS)
    out = _sub(_sub(root, "Policies"), "Policy")
    _sub(out, "PolicyType", policy_type or POLICY_TYPE)
    if policy_type != POLICY_TYPE:
        _sub(out, "Status", str(POLICY_UNKNOWN_TYPE))
        return finish(root)

    sent_key_text = _text(policy.find(_p("PolicyKey")))
    if sent_key_text is None:
        # Initial request: a temporary key; the current key (if any) stays valid until
        # the device acknowledges, so an interrupted re-provisioning loses nothing.
        temporary = new_policy_key(avoid=ctx.device.policy_key)
        await registry.set_policy_keys(
            user, device_id, policy_key=ctx.device.policy_key, pending_policy_key=temporary
        )
        _sub(out, "Status", str(STATUS_SUCCESS))
        _sub(out, "PolicyKey", str(temporary))
        data = _sub(out, "Data")
        data.append(provision_doc(ctx.runtime.settings.policy, ctx.version))
        return finish(root)

    # Acknowledgement.
    try:
        sent_key = int(sent_key_text)
    except ValueError:
        raise EasStatusError(
            STATUS_PROTOCOL_ERROR, message=f"malformed PolicyKey {sent_key_text!r}"
        ) from None
    client_status = _text(policy.find(_p("Status")))
    if ctx.device.pending_policy_key is None or sent_key != ctx.device.pending_policy_key:
        _sub(out, "Status", str(POLICY_WRONG_KEY))
        return finish(root)
    if client_status not in ("1", None):
        # 2 = partially applied, 3 = not applied, 4 = externally managed (MS-ASPROV
        # 2.2.2.54.2): the server-side policy is advisory, the device is let in and noted.
        log.warn(
            "{user}/{device} acknowledged the policy with status {status}",
            user=user,
            device=device_id,
            status=client_status,
        )
    final = new_policy_key(
        avoid=sent_key, fingerprint=policy_fingerprint(ctx.runtime.settings.policy)
    )
    await registry.set_policy_keys(user, device_id, policy_key=final, pending_policy_key=None)
    _sub(out, "Status", str(STATUS_SUCCESS))
    _sub(out, "PolicyKey", str(final))
    return finish(root)
