"""Settings (MS-ASCMD 2.2.1.18): DeviceInformation, UserInformation,
RightsManagementInformation, Oof and DevicePassword.

- DeviceInformation Set is stored on the device record (DeviceRegistry.update_device_information).
- UserInformation Get answers the SMTP address; from 14.1 on inside Accounts/Account with
  the display name and PrimarySmtpAddress (MS-ASCMD 2.2.3.8, 2.2.3.142).
- RightsManagementInformation Get (14.1+) answers no templates: IRM is not offered.
- Oof: no backend offers out-of-office yet, so Get and Set answer Status 7, "denied by
  policy / disabled by the administrator" (MS-ASCMD 2.2.3.177.13).
- DevicePassword Set (recovery password): not kept, Status 7 for the same reason.
"""

from __future__ import annotations

from lxml import etree
from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.http.errors import EasStatusError
from opush.storage.interfaces import DeviceInformation
from opush.wbxml import E

NS = "Settings:"

# Settings Status (MS-ASCMD 2.2.3.177.13).
SUCCESS = 1
PROTOCOL_ERROR = 2
DENIED_BY_POLICY = 7

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
            _sub(_sub(root, "Oof"), "Status", str(DENIED_BY_POLICY))
        elif name == "DevicePassword":
            _sub(_sub(root, "DevicePassword"), "Status", str(DENIED_BY_POLICY))
        else:
            raise EasStatusError(PROTOCOL_ERROR, message=f"unknown Settings element {name}")
    return CommandResult.wbxml(root)
