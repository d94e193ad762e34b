"""Settings (MS-ASCMD 2.2.1.18): DeviceInformation, UserInformation,
RightsManagementInformation, Oof and DevicePassword.

- DeviceInformation Set is stored on the device record (DeviceRegistry.update_device_information).
- UserInformation Get answers the SMTP address; from 14.1 on inside Accounts/Account with
  the display name and PrimarySmtpAddress (MS-ASCMD 2.2.3.8, 2.2.3.142).
- RightsManagementInformation Get (14.1+) answers no templates: IRM is not offered.
- Oof (MS-ASCMD 2.2.3.119): a Sieve vacation script over ManageSieve when mail_conf.ini has
  ``sieve.port`` (``opush.backends.sieve``); otherwise Status 7, "denied by policy / disabled
  by the administrator" (MS-ASCMD 2.2.3.177.13).
- DevicePassword Set (recovery password): not kept, Status 7 for the same reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree
from lxml.etree import _Element

from opush.backends.interfaces import BackendUnavailable
from opush.commands.context import CommandContext, CommandResult
from opush.content.email import htmltext
from opush.http.errors import EasStatusError
from opush.log import logger
from opush.storage.interfaces import DeviceInformation
from opush.wbxml import E

NS = "Settings:"

# Settings Status (MS-ASCMD 2.2.3.177.13).
SUCCESS = 1
PROTOCOL_ERROR = 2
ACCESS_DENIED = 3
SERVER_UNAVAILABLE = 4
INVALID_ARGUMENTS = 5
DENIED_BY_POLICY = 7

log = logger("opush.commands.settings")

# DeviceInformation/Set children (MS-ASCMD 2.2.3.48) -> DeviceInformation field.
_DEVICE_FIELDS = {
    "Model": "model",
    "IMEI": "imei",
    "FriendlyName": "friendly_name",
    "OS": "os",
    "OSLanguage": "os_language",
    "PhoneNumber": "phone_number",
    "MobileOperator": "mobile_operator",
    "UserAgent": "user_agent",
}


def _s(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: _Element, tag: str, text: str | None = None) -> _Element:
    el = etree.SubElement(parent, _s(tag))
    if text is not None:
        el.text = text
    return el


async def apply_device_information(ctx: CommandContext, element: _Element) -> int:
    """Store a DeviceInformation/Set (also sent inside Provision from 14.1); its Status."""
    set_el = element.find(_s("Set"))
    if set_el is None:
        return PROTOCOL_ERROR
    values: dict[str, str | None] = {}
    for child in set_el:
        if not isinstance(child.tag, str):
            continue
        field = _DEVICE_FIELDS.get(etree.QName(child).localname)
        if field is not None:
            values[field] = (child.text or "").strip() or None
    info = DeviceInformation(**values)
    device = await ctx.runtime.devices.update_device_information(
        ctx.device.user, ctx.device.device_id, info
    )
    ctx.device = device
    return SUCCESS


def _user_information(ctx: CommandContext, parent: _Element) -> None:
    user = ctx.user
    out = _sub(parent, "UserInformation")
    _sub(out, "Status", str(SUCCESS))
    get = _sub(out, "Get")
    if ctx.version >= (14, 1):
        account = _sub(_sub(get, "Accounts"), "Account")
        if user.display_name:
            _sub(account, "UserDisplayName", user.display_name)
        addresses = _sub(account, "EmailAddresses")
        _sub(addresses, "SMTPAddress", user.email)
        _sub(addresses, "PrimarySmtpAddress", user.email)
    else:
        _sub(_sub(get, "EmailAddresses"), "SMTPAddress", user.email)


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    if request is None or request.tag != _s("Settings"):
        raise EasStatusError(PROTOCOL_ERROR, message="Settings without a Settings body")
    root = E(NS, "Settings")
    _sub(root, "Status", str(SUCCESS))
    for child in request:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        if name == "DeviceInformation":
            status = await apply_device_information(ctx, child)
            _sub(_sub(root, "DeviceInformation"), "Status", str(status))
        elif name == "UserInformation":
            if child.find(_s("Get")) is None:
                _sub(_sub(root, "UserInformation"), "Status", str(PROTOCOL_ERROR))
            else:
                _user_information(ctx, root)
        elif name == "RightsManagementInformation":
            if ctx.version < (14, 1):  # a 14.1 element (MS-ASCMD 2.2.3.148)
                raise EasStatusError(PROTOCOL_ERROR, message="RightsManagementInformation < 14.1")
            out = _sub(root, "RightsManagementInformation")
            _sub(out, "Status", str(SUCCESS))
            _sub(out, "Get")  # no rights management templates
        elif name == "Oof":
            await _oof(ctx, child, root)
        elif name == "DevicePassword":
            _sub(_sub(root, "DevicePassword"), "Status", str(DENIED_BY_POLICY))
        else:
            raise EasStatusError(PROTOCOL_ERROR, message=f"unknown Settings element {name}")
    return CommandResult.wbxml(root)


# --------------------------------------------------------------------------- Oof

_AUDIENCES = ("AppliesToInternal", "AppliesToExternalKnown", "AppliesToExternalUnknown")


def _eas_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _child_text(el: _Element, name: str) -> str | None:
    found = el.find(_s(name))
    return found.text.strip() if found is not None and found.text else None


def _oof_settings(set_el: _Element) -> Any:
    """MS-ASCMD 2.2.3.119 Oof/Set -> OofSettings; ValueError when unusable."""
    from opush.backends.sieve import OofMessage, OofSettings

    state_text = _child_text(set_el, "OofState")
    state = int(state_text) if state_text and state_text.isdigit() else -1
    if state not in (0, 1, 2):
        raise ValueError(f"OofState {state_text!r}")
    start, end = (
        _parse_time(_child_text(set_el, "StartTime")),
        _parse_time(_child_text(set_el, "EndTime")),
    )
    if state == 2 and (start is None or end is None or end <= start):
        raise ValueError("time-based OofState needs StartTime before EndTime")
    messages: dict[str, OofMessage] = {}
    for m in set_el.findall(_s("OofMessage")):
        audience = next((a for a in _AUDIENCES if m.find(_s(a)) is not None), None)
        if audience is None:
            raise ValueError("OofMessage without AppliesTo")
        messages[audience] = OofMessage(
            enabled=_child_text(m, "Enabled") == "1",
            reply=(m.findtext(_s("ReplyMessage")) or ""),
            html=(_child_text(m, "BodyType") or "Text").upper() == "HTML",
        )
    return OofSettings(
        state=state,
        start=start if state == 2 else None,
        end=end if state == 2 else None,
        internal=messages.get(_AUDIENCES[0], OofMessage()),
        external_known=messages.get(_AUDIENCES[1], OofMessage()),
        external_unknown=messages.get(_AUDIENCES[2], OofMessage()),
    )


def _render_oof(get: _Element, settings: Any, want_html: bool) -> None:
    _sub(get, "OofState", str(settings.state))
    if settings.state == 2 and settings.start and settings.end:
        _sub(get, "StartTime", _eas_time(settings.start))
        _sub(get, "EndTime", _eas_time(settings.end))
    for audience, message in zip(
        _AUDIENCES,
        (settings.internal, settings.external_known, settings.external_unknown),
        strict=True,
    ):
        out = _sub(get, "OofMessage")
        _sub(out, audience)
        _sub(out, "Enabled", "1" if message.enabled else "0")
        reply = message.reply
        if message.html and not want_html:
            reply = htmltext.html_to_text(reply)
        elif want_html and not message.html:
            reply = htmltext.text_to_html(reply)
        _sub(out, "ReplyMessage", reply)
        _sub(out, "BodyType", "HTML" if want_html else "Text")


async def _oof(ctx: CommandContext, request: _Element, root: _Element) -> None:
    from opush.backends.sieve import SieveError

    out = _sub(root, "Oof")
    status_el = _sub(out, "Status", str(SUCCESS))
    backend = ctx.runtime.services.get("oof")
    if backend is None:
        status_el.text = str(DENIED_BY_POLICY)
        return
    mail: Any = ctx.runtime.mail
    login = mail.imap_login(ctx.user) if hasattr(mail, "imap_login") else ctx.user.login_at_domain
    password = ctx.credentials.password
    get_el, set_el = request.find(_s("Get")), request.find(_s("Set"))
    try:
        if get_el is not None:
            settings = await backend.get(login, password)
            want_html = (_child_text(get_el, "BodyType") or "Text").upper() == "HTML"
            _render_oof(_sub(out, "Get"), settings, want_html)
        elif set_el is not None:
            try:
                wanted = _oof_settings(set_el)
            except ValueError as e:
                log.info("Oof Set refused: {why}", why=str(e))
                status_el.text = str(INVALID_ARGUMENTS)
                return
            domain = ctx.user.domain or ctx.user.email.rpartition("@")[2] or None
            await backend.set(login, password, wanted, address=ctx.user.email, domain=domain)
        else:
            status_el.text = str(PROTOCOL_ERROR)
    except BackendUnavailable as e:
        log.warn("out-of-office server unavailable: {error}", error=e)
        status_el.text = str(SERVER_UNAVAILABLE)
    except SieveError as e:
        log.warn("out-of-office refused by the Sieve server: {error}", error=e)
        status_el.text = str(SERVER_UNAVAILABLE)
