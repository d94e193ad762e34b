"""The EAS front door over raw HTTP: routing, OPTIONS, auth, devices, policy gate, Provision,
Settings, errors and per-device serialization (in-memory devices, fake clock)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from lxml import etree
from lxml.etree import _Element
from twisted.internet.defer import Deferred

from opush.commands.context import CommandContext, CommandResult
from opush.commands.registry import REGISTRY
from opush.http.errors import EasStatusError
from opush.http.query import encode_base64_query
from opush.runtime import FrontDoorSettings
from opush.storage.interfaces import DeviceInformation, Permission, WipeState
from opush.wbxml import E, decode, encode, ns
from tests.support.frontdoor import FrontDoor, Response, basic, front_door, parse_response

P = ns.PROVISION
S = ns.SETTINGS
EAS = "/Microsoft-Server-ActiveSync"
WBXML = "application/vnd.ms-sync.wbxml"


def url(cmd: str, device: str = "DEV1", user: str = "alice@example.org") -> str:
    return f"{EAS}?Cmd={cmd}&User={quote(user)}&DeviceId={device}&DeviceType=SmartPhone"


def headers(
    version: str = "14.1",
    key: int | None = None,
    user: str = "alice@example.org",
    password: str = "secret",
) -> dict[str, str]:
    h = {
        "Authorization": basic(user, password),
        "MS-ASProtocolVersion": version,
        "Content-Type": WBXML,
        "User-Agent": "TestPhone/1.0",
    }
    if key is not None:
        h["X-MS-PolicyKey"] = str(key)
    return h


def provision_request(key: int | None = None, status: int | None = None) -> bytes:
    policy = E(P, "Policy", E(P, "PolicyType", text="MS-EAS-Provisioning-WBXML"))
    if key is not None:
        policy.append(E(P, "PolicyKey", text=str(key)))
    if status is not None:
        policy.append(E(P, "Status", text=status))
    return encode(E(P, "Provision", E(P, "Policies", policy)))


def settings_request(*children: _Element) -> bytes:
    return encode(E(S, "Settings", *children))


def user_info() -> bytes:
    return settings_request(E(S, "UserInformation", E(S, "Get")))


def tree(r: Response) -> _Element:
    assert r.header("content-type") == WBXML, r
    return decode(r.body)


def text(root: _Element, path: str) -> str | None:
    found = root.find(path, namespaces={"p": P, "s": S})
    return None if found is None else found.text


def provision(fd: FrontDoor, version: str = "14.1", device: str = "DEV1") -> int:
    """Both Provision round trips; the final key."""
    first = tree(
        fd.send("POST", url("Provision", device), headers(version, 0), provision_request())
    )
    temporary = int(text(first, "p:Policies/p:Policy/p:PolicyKey") or 0)
    second = tree(
        fd.send(
            "POST",
            url("Provision", device),
            headers(version, temporary),
            provision_request(temporary, 1),
        )
    )
    assert text(second, "p:Policies/p:Policy/p:Status") == "1"
    return int(text(second, "p:Policies/p:Policy/p:PolicyKey") or 0)


# ----------------------------------------------------------------------------- routing, OPTIONS


@pytest.mark.parametrize("path", [EAS, "/opush/ActiveSyncServlet/"])
def test_options_lists_versions_and_implemented_commands(path: str) -> None:
    r = front_door().send("OPTIONS", path)
    assert r.code == 200
    assert r.header("MS-ASProtocolVersions") == "12.0,12.1,14.0,14.1,16.0,16.1"
    assert r.header("MS-ASProtocolCommands") == ",".join(REGISTRY)
    assert r.header("Allow") == "OPTIONS,POST" and r.header("Public") == "OPTIONS,POST"
    assert r.header("MS-Server-ActiveSync")


def test_routes() -> None:
    fd = front_door()
    assert fd.send("GET", "/nothing/here").code == 404
    assert fd.send("GET", "/").code == 404
    assert fd.send("GET", EAS).code == 405
    health = fd.send("GET", "/opush/healthcheck/")
    assert (health.code, health.body) == (200, b"OK")
    assert fd.send("GET", "/opush/healthcheck/java/version").code == 200
    assert fd.send("GET", "/opush/healthcheck/nope").code == 404
    metrics = fd.send("GET", "/metrics")
    assert metrics.code == 200 and b"opush_requests_active" in metrics.body


# ----------------------------------------------------------------------------- authentication


def test_missing_or_wrong_credentials_get_401_with_challenge() -> None:
    fd = front_door()
    r = fd.send("POST", url("Provision"), {"MS-ASProtocolVersion": "14.1"}, provision_request())
    assert r.code == 401
    assert r.header("WWW-Authenticate") == 'Basic realm="OBMPushService"'
    r = fd.send("POST", url("Provision"), headers(password="wrong"), provision_request())
    assert r.code == 401
    assert fd.devices.devices == {}  # nothing registered for a stranger


def test_domain_backslash_user_form_is_accepted() -> None:
    fd = front_door()
    r = fd.send("POST", url("Provision"), headers(user="EXAMPLE.ORG\\alice"), provision_request())
    assert r.code == 200
    assert ("alice@example.org", "DEV1") in fd.devices.devices


def test_credentials_are_cached() -> None:
    fd = front_door()
    for _ in range(3):
        fd.send("POST", url("Provision"), headers(), provision_request())
    assert fd.auth.calls == 1
    fd.clock.advance(fd.runtime.settings.auth_cache_seconds + 1)
    fd.send("POST", url("Provision"), headers(), provision_request())
    assert fd.auth.calls == 2


# ----------------------------------------------------------------------------- request parsing


def test_unknown_command_is_501_not_an_empty_200() -> None:
    r = front_door().send("POST", url("FooBar"), headers(), b"")
    assert r.code == 501


def test_unsupported_version_and_bad_query_are_400() -> None:
    fd = front_door()
    assert fd.send("POST", url("Provision"), headers("9.9"), provision_request()).code == 400
    assert fd.send("POST", f"{EAS}?Cmd=Sync", headers(), b"").code == 400


def test_base64_query_carries_version_and_policy_key() -> None:
    fd = front_door()
    key = provision(fd, "14.1", device=quote("AQID"))  # plain form device id "AQID"...
    q = encode_base64_query(
        command="Settings",
        device_id=b"\x01\x02\x03",
        device_type="SmartPhone",
        protocol_version="14.1",
        policy_key=key,
    )
    # ... equals the base64 form's text for the binary id 01 02 03.
    h = headers()
    del h["MS-ASProtocolVersion"]
    r = fd.send("POST", f"{EAS}?{quote(q, safe='')}", h, user_info())
    assert r.code == 200 and text(tree(r), "s:Status") == "1"


@pytest.mark.parametrize("version, expected", [("14.1", 102), ("12.1", 400)])
def test_malformed_wbxml(version: str, expected: int) -> None:
    fd = front_door()
    r = fd.send("POST", url("Provision"), headers(version), b"\x03\x01\x6a\x00\x45\xff\xff")
    if expected == 400:
        assert r.code == 400
    else:
        assert r.code == 200 and text(tree(r), "p:Status") == str(expected)
    # and the server keeps serving
    assert fd.send("OPTIONS", EAS).code == 200


# ----------------------------------------------------------------------------- provisioning


def test_two_step_provision_and_policy_gate_14_1() -> None:
    fd = front_door()
    first = tree(fd.send("POST", url("Provision"), headers("14.1", 0), provision_request()))
    assert text(first, "p:Status") == "1"
    doc = first.find("p:Policies/p:Policy/p:Data/p:EASProvisionDoc", namespaces={"p": P})
    assert doc is not None and len(doc) > 10
    temporary = int(text(first, "p:Policies/p:Policy/p:PolicyKey") or 0)
    device = fd.devices.devices[("alice@example.org", "DEV1")]
    assert device.pending_policy_key == temporary and device.policy_key is None
    assert device.user_agent == "TestPhone/1.0"

    # Before acknowledging: not provisioned, and the temporary key is not enough.
    r = tree(fd.send("POST", url("Settings"), headers("14.1"), user_info()))
    assert text(r, "s:Status") == "142"
    r = tree(fd.send("POST", url("Settings"), headers("14.1", temporary), user_info()))
    assert text(r, "s:Status") == "142"

    second = tree(
        fd.send(
            "POST", url("Provision"), headers("14.1", temporary), provision_request(temporary, 1)
        )
    )
    final = int(text(second, "p:Policies/p:Policy/p:PolicyKey") or 0)
    assert final not in (0, temporary)
    assert fd.devices.devices[("alice@example.org", "DEV1")].policy_key == final

    assert (
        text(
            tree(fd.send("POST", url("Settings"), headers("14.1", final), user_info())), "s:Status"
        )
        == "1"
    )
    r = tree(fd.send("POST", url("Settings"), headers("14.1", final + 1), user_info()))
    assert text(r, "s:Status") == "144"


def test_policy_gate_before_14_is_449() -> None:
    fd = front_door()
    assert fd.send("POST", url("Settings"), headers("12.1"), user_info()).code == 449
    key = provision(fd, "12.1")
    assert fd.send("POST", url("Settings"), headers("12.1", key), user_info()).code == 200
    assert fd.send("POST", url("Settings"), headers("12.1", key ^ 1), user_info()).code == 449


def test_acknowledging_the_wrong_key_is_policy_status_5() -> None:
    fd = front_door()
    fd.send("POST", url("Provision"), headers(), provision_request())
    r = tree(fd.send("POST", url("Provision"), headers(), provision_request(12345, 1)))
    assert text(r, "p:Status") == "1"
    assert text(r, "p:Policies/p:Policy/p:Status") == "5"
    assert text(r, "p:Policies/p:Policy/p:PolicyKey") is None


def test_policy_for_12_0_has_only_12_0_elements() -> None:
    fd = front_door()
    r = tree(fd.send("POST", url("Provision"), headers("12.0"), provision_request()))
    doc = r.find("p:Policies/p:Policy/p:Data/p:EASProvisionDoc", namespaces={"p": P})
    assert doc is not None
    names = {etree.QName(c).localname for c in doc}
    assert "AllowSimpleDevicePassword" in names and "AllowCamera" not in names


def test_policy_values_come_from_settings() -> None:
    policy = dict(FrontDoorSettings().policy, DevicePasswordEnabled=True, MinDevicePasswordLength=8)
    fd = front_door(FrontDoorSettings(policy=policy))
    r = tree(fd.send("POST", url("Provision"), headers(), provision_request()))
    doc = "p:Policies/p:Policy/p:Data/p:EASProvisionDoc/"
    assert text(r, doc + "p:DevicePasswordEnabled") == "1"
    assert text(r, doc + "p:MinDevicePasswordLength") == "8"


@pytest.mark.parametrize("version, expected_gate", [("14.1", "140"), ("12.1", 449)])
def test_remote_wipe_is_delivered_and_acknowledged(version: str, expected_gate: Any) -> None:
    fd = front_door()
    key = provision(fd, version)
    fd.devices.request_wipe("alice@example.org", "DEV1", requested_by="admin")
    r = fd.send("POST", url("Settings"), headers(version, key), user_info())
    if expected_gate == 449:
        assert r.code == 449
    else:
        assert text(tree(r), "s:Status") == expected_gate
    wipe = tree(fd.send("POST", url("Provision"), headers(version, 0), encode(E(P, "Provision"))))
    assert wipe.find(f"{{{P}}}RemoteWipe") is not None
    ack = encode(E(P, "Provision", E(P, "RemoteWipe", E(P, "Status", text=1))))
    assert (
        text(tree(fd.send("POST", url("Provision"), headers(version, 0), ack)), "p:Status") == "1"
    )
    assert fd.devices.devices[("alice@example.org", "DEV1")].wipe is WipeState.WIPED
    # A wiped device stays out until an administrator clears it.
    r = fd.send("POST", url("Provision"), headers(version, 0), provision_request())
    assert r.code == 403 if version == "12.1" else text(tree(r), "p:Status") == "129"


def test_account_only_wipe_needs_16_1() -> None:
    fd = front_door()
    provision(fd, "16.1")
    fd.devices.request_wipe("alice@example.org", "DEV1", requested_by="admin", account_only=True)
    r = tree(fd.send("POST", url("Provision"), headers("16.1", 0), provision_request()))
    assert r.find(f"{{{P}}}AccountOnlyRemoteWipe") is not None
    r = tree(fd.send("POST", url("Provision"), headers("14.1", 0), provision_request()))
    assert r.find(f"{{{P}}}AccountOnlyRemoteWipe") is None and text(r, "p:Status") == "129"
    ack = encode(E(P, "Provision", E(P, "AccountOnlyRemoteWipe", E(P, "Status", text=1))))
    fd.send("POST", url("Provision"), headers("16.1", 0), ack)
    assert fd.devices.devices[("alice@example.org", "DEV1")].wipe is WipeState.ACCOUNT_ONLY_WIPED


# ----------------------------------------------------------------------------- device permissions


def test_blacklisted_user_and_unknown_devices() -> None:
    fd = front_door(FrontDoorSettings(blacklist_users=frozenset({"bob@example.org"})))
    r = fd.send(
        "POST",
        url("Provision", user="bob@example.org"),
        headers("14.1", user="bob@example.org"),
        provision_request(),
    )
    assert text(tree(r), "p:Status") == "126"
    r = fd.send(
        "POST",
        url("Provision", user="bob@example.org"),
        headers("12.1", user="bob@example.org"),
        provision_request(),
    )
    assert r.code == 403

    fd = front_door(FrontDoorSettings(allow_unknown_pda=False))
    r = fd.send("POST", url("Provision"), headers(), provision_request())
    assert text(tree(r), "p:Status") == "129"
    fd.devices.set_permission("alice@example.org", "DEV1", Permission.ALLOWED)
    r = fd.send("POST", url("Provision"), headers(), provision_request())
    assert text(tree(r), "p:Status") == "1"


# ----------------------------------------------------------------------------- Settings


def test_settings_device_information_user_information_oof() -> None:
    fd = front_door()
    key = provision(fd, "14.1")
    body = settings_request(
        E(
            S,
            "DeviceInformation",
            E(
                S,
                "Set",
                E(S, "Model", text="Pixel 9"),
                E(S, "OS", text="Android 15"),
                E(S, "FriendlyName", text="mine"),
            ),
        ),
        E(S, "UserInformation", E(S, "Get")),
        E(S, "RightsManagementInformation", E(S, "Get")),
        E(S, "Oof", E(S, "Get", E(S, "BodyType", text="Text"))),
    )
    r = tree(fd.send("POST", url("Settings"), headers("14.1", key), body))
    assert text(r, "s:Status") == "1"
    assert text(r, "s:DeviceInformation/s:Status") == "1"
    account = "s:UserInformation/s:Get/s:Accounts/s:Account/"
    assert text(r, account + "s:EmailAddresses/s:PrimarySmtpAddress") == "alice@example.org"
    assert text(r, account + "s:UserDisplayName") == "Alice Liddell"
    assert text(r, "s:RightsManagementInformation/s:Status") == "1"
    assert text(r, "s:Oof/s:Status") == "7"
    info = fd.devices.devices[("alice@example.org", "DEV1")].information
    assert info == DeviceInformation(model="Pixel 9", os="Android 15", friendly_name="mine")


def test_settings_user_information_before_14_1() -> None:
    fd = front_door()
    key = provision(fd, "12.1")
    r = tree(fd.send("POST", url("Settings"), headers("12.1", key), user_info()))
    assert text(r, "s:UserInformation/s:Get/s:EmailAddresses/s:SMTPAddress") == "alice@example.org"
    assert r.find(".//s:Accounts", namespaces={"s": S}) is None


def test_provision_stores_device_information_14_1() -> None:
    fd = front_door()
    body = encode(
        E(
            P,
            "Provision",
            E(S, "DeviceInformation", E(S, "Set", E(S, "Model", text="iPhone"))),
            E(P, "Policies", E(P, "Policy", E(P, "PolicyType", text="MS-EAS-Provisioning-WBXML"))),
        )
    )
    r = tree(fd.send("POST", url("Provision"), headers(), body))
    assert text(r, "s:DeviceInformation/s:Status") == "1"
    assert fd.devices.devices[("alice@example.org", "DEV1")].information.model == "iPhone"


# ----------------------------------------------------------------------------- handlers' errors


async def _boom(ctx: CommandContext, request: _Element | None) -> CommandResult:
    raise ZeroDivisionError("bug")


async def _status(ctx: CommandContext, request: _Element | None) -> CommandResult:
    raise EasStatusError(9, message="bad sync key")


def test_a_bug_is_500_and_the_server_keeps_serving() -> None:
    registry: dict[str, Any] = dict(REGISTRY, FolderSync=_boom, Ping=_status)
    fd = front_door(registry=registry)
    key = provision(fd)
    assert fd.send("POST", url("FolderSync"), headers(key=key), b"").code == 500
    r = tree(fd.send("POST", url("Ping"), headers(key=key), b""))
    assert r.tag == f"{{{ns.PING}}}Ping" and text(r, "{Ping:}Status") == "9"
    metrics = fd.send("GET", "/metrics").body.decode()
    assert 'opush_requests_total{command="FolderSync",code="500"} 1' in metrics


# ----------------------------------------------------------------------------- serialization


def test_requests_of_one_device_run_one_at_a_time_and_are_throttled() -> None:
    gates: list[Deferred[None]] = []
    seen: list[CommandContext] = []

    async def slow(ctx: CommandContext, request: _Element | None) -> CommandResult:
        seen.append(ctx)
        gate: Deferred[None] = Deferred()
        gates.append(gate)
        await gate
        return CommandResult.empty()

    fd = front_door(
        FrontDoorSettings(max_waiting_per_device=2, throttle_retry_after_seconds=7),
        registry=dict(REGISTRY, Ping=slow),
    )
    key = provision(fd)
    transports = [fd.start("POST", url("Ping"), headers(key=key))[1] for _ in range(3)]
    assert len(seen) == 1  # the others wait
    assert seen[0].interrupted.called  # a newer request interrupts the running one
    throttled = fd.send("POST", url("Ping"), headers(key=key))
    assert throttled.code == 503 and throttled.header("Retry-After") == "7"
    # another device of the same user is not affected
    other = fd.send("POST", url("Provision", "DEV2"), headers(), provision_request())
    assert other.code == 200
    gates[0].callback(None)
    assert parse_response(transports[0].value()) is not None
    assert len(seen) == 2 and parse_response(transports[1].value()) is None
    gates[1].callback(None)
    gates[2].callback(None)
    assert all(parse_response(t.value()) is not None for t in transports)
    assert fd.send("GET", "/metrics").body.count(b"opush_requests_active 0") == 1


def test_oversized_body_is_413() -> None:
    fd = front_door(FrontDoorSettings(max_request_bytes=1024))
    r = fd.send("POST", url("Provision"), headers(), b"\x03\x01\x6a\x00" + b"\x00" * 2000)
    assert r.code == 413


@pytest.mark.parametrize("version, expected", [("14.1", "143"), ("12.1", 449)])
def test_changed_policy_asks_devices_to_reprovision(version: str, expected: Any) -> None:
    import attrs

    from opush.http.site import make_site

    fd = front_door()
    key = provision(fd, version)
    assert fd.send("POST", url("Settings"), headers(version, key), user_info()).code == 200
    stricter = dict(fd.runtime.settings.policy, DevicePasswordEnabled=True)
    fd.runtime = attrs.evolve(fd.runtime, settings=FrontDoorSettings(policy=stricter))
    fd.site = make_site(fd.runtime)
    r = fd.send("POST", url("Settings"), headers(version, key), user_info())
    if expected == 449:
        assert r.code == 449
    else:
        assert text(tree(r), "s:Status") == expected
    key = provision(fd, version)
    assert fd.send("POST", url("Settings"), headers(version, key), user_info()).code == 200


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_every_version_gets_responses_its_code_pages_can_carry(version: str) -> None:
    fd = front_door()
    key = provision(fd, version)
    children = [
        E(S, "DeviceInformation", E(S, "Set", E(S, "Model", text="m"))),
        E(S, "UserInformation", E(S, "Get")),
        E(S, "Oof", E(S, "Get", E(S, "BodyType", text="Text"))),
    ]
    r = fd.send("POST", url("Settings"), headers(version, key), settings_request(*children))
    assert r.code == 200 and text(tree(r), "s:Status") == "1"
    rm = settings_request(E(S, "RightsManagementInformation", E(S, "Get")))
    r = fd.send("POST", url("Settings"), headers(version, key), rm)
    assert r.code == 200
    assert text(tree(r), "s:Status") == ("1" if version >= "14.1" else "2")
