"""Front-door test helpers: an in-memory DeviceRegistry, a scripted Auth, and a way to feed
raw HTTP to the opush site over a StringTransport (deterministic, no reactor needed).

The e2e tests use the real embedded store and IMAP login instead.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

import attrs
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import Clock, StringTransport
from twisted.web.server import Site

from opush.backends.interfaces import AuthenticationFailed, UserIdentity, parse_login
from opush.http.site import make_site
from opush.runtime import FrontDoorSettings, Runtime
from opush.storage.interfaces import (
    Device,
    DeviceInformation,
    DeviceNotFound,
    Permission,
    StateStore,
    WipeState,
)

EPOCH = 1_790_000_000.0


def fake_clock(start: float = EPOCH) -> Clock:
    clock = Clock()
    clock.advance(start)
    return clock


class MemoryDevices:
    """DeviceRegistry kept in a dict; every Deferred has already fired."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.devices: dict[tuple[str, str], Device] = {}

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def _change(self, user: str, device_id: str, **changes: Any) -> Deferred[Device]:
        old = self.devices.get((user, device_id))
        if old is None:
            return fail(DeviceNotFound(user, device_id))
        new = attrs.evolve(old, **changes)
        self.devices[(user, device_id)] = new
        return succeed(new)

    def get_device(self, user: str, device_id: str) -> Deferred[Device | None]:
        return succeed(self.devices.get((user, device_id)))

    def touch_device(
        self,
        user: str,
        device_id: str,
        *,
        device_type: str,
        user_agent: str | None,
        protocol_version: str | None,
    ) -> Deferred[Device]:
        now = self._now()
        old = self.devices.get((user, device_id))
        if old is None:
            new = Device(
                user=user,
                device_id=device_id,
                device_type=device_type,
                user_agent=user_agent,
                first_seen=now,
                last_seen=now,
                protocol_version=protocol_version,
            )
        else:
            new = attrs.evolve(
                old,
                device_type=device_type,
                user_agent=user_agent or old.user_agent,
                protocol_version=protocol_version or old.protocol_version,
                last_seen=now,
            )
        self.devices[(user, device_id)] = new
        return succeed(new)

    def update_device_information(
        self, user: str, device_id: str, information: DeviceInformation
    ) -> Deferred[Device]:
        return self._change(user, device_id, information=information)

    def list_devices(self, user: str | None = None) -> Deferred[list[Device]]:
        return succeed([d for k, d in sorted(self.devices.items()) if user is None or k[0] == user])

    def set_policy_keys(
        self, user: str, device_id: str, *, policy_key: int | None, pending_policy_key: int | None
    ) -> Deferred[Device]:
        return self._change(
            user, device_id, policy_key=policy_key, pending_policy_key=pending_policy_key
        )

    def request_wipe(
        self, user: str, device_id: str, *, requested_by: str, account_only: bool = False
    ) -> Deferred[Device]:
        state = WipeState.ACCOUNT_ONLY_WIPE_PENDING if account_only else WipeState.WIPE_PENDING
        return self._change(
            user,
            device_id,
            wipe=state,
            wipe_requested_by=requested_by,
            wipe_requested_at=self._now(),
        )

    def cancel_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        return self._change(
            user,
            device_id,
            wipe=WipeState.NONE,
            wipe_requested_by=None,
            wipe_requested_at=None,
            wipe_acknowledged_at=None,
        )

    def acknowledge_wipe(self, user: str, device_id: str) -> Deferred[Device]:
        old = self.devices.get((user, device_id))
        done = {
            WipeState.WIPE_PENDING: WipeState.WIPED,
            WipeState.ACCOUNT_ONLY_WIPE_PENDING: WipeState.ACCOUNT_ONLY_WIPED,
        }
        state = done.get(old.wipe, old.wipe) if old else WipeState.NONE
        return self._change(user, device_id, wipe=state, wipe_acknowledged_at=self._now())

    def set_permission(
        self, user: str, device_id: str, permission: Permission | None
    ) -> Deferred[Device]:
        return self._change(user, device_id, permission=permission)

    def remove_device(self, user: str, device_id: str) -> Deferred[bool]:
        return succeed(self.devices.pop((user, device_id), None) is not None)

    def close(self) -> Deferred[None]:
        return succeed(None)


class ScriptedAuth:
    """Auth accepting `users` (login_at_domain -> password); counts backend calls.

    With `pending=True` each call returns an unfired Deferred the test fires itself.
    """

    def __init__(self, users: Mapping[str, str], display_names: Mapping[str, str] | None = None):
        self.users = dict(users)
        self.display_names = dict(display_names or {})
        self.calls = 0

    async def authenticate(self, login: str, password: str) -> UserIdentity:
        self.calls += 1
        name = parse_login(login)
        key = name.login_at_domain.lower()
        if self.users.get(key) != password:
            raise AuthenticationFailed(f"bad password for {key}")
        return UserIdentity(
            login=name.user,
            domain=name.domain,
            email=key,
            display_name=self.display_names.get(key),
        )


@attrs.define
class Response:
    code: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@attrs.define
class FrontDoor:
    """A site on a fake clock with in-memory devices; `send` speaks raw HTTP to it."""

    clock: Clock
    devices: MemoryDevices
    auth: ScriptedAuth
    runtime: Runtime
    site: Site

    def connect(self, peer: str = "10.0.0.7") -> tuple[Any, StringTransport]:
        proto = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8082))
        transport = StringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        proto.makeConnection(transport)
        return proto, transport

    def start(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        peer: str = "10.0.0.7",
    ) -> tuple[Any, StringTransport]:
        proto, transport = self.connect(peer)
        lines = [f"{method} {path} HTTP/1.1", "Host: opush.example.org"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        proto.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        return proto, transport

    def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        peer: str = "10.0.0.7",
    ) -> Response:
        _, transport = self.start(method, path, headers, body, peer)
        response = parse_response(transport.value())
        assert response is not None, "no complete response (request still pending?)"
        return response


def parse_response(raw: bytes) -> Response | None:
    """The first complete HTTP response in `raw`, or None if not complete yet."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    code = int(status_line.split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return Response(code, headers, rest[:length])


def front_door(
    settings: FrontDoorSettings | None = None,
    users: Mapping[str, str] | None = None,
    registry: Any = None,
) -> FrontDoor:
    clock = fake_clock()
    devices = MemoryDevices(clock)
    auth = ScriptedAuth(
        users or {"alice@example.org": "secret", "bob@example.org": "secret"},
        {"alice@example.org": "Alice Liddell"},
    )
    runtime = Runtime(
        clock=clock,
        auth=auth,
        devices=devices,
        state=cast(StateStore, None),
        settings=settings or FrontDoorSettings(external_url="mail.example.org"),
    )
    site = make_site(runtime, registry=registry)
    return FrontDoor(clock, devices, auth, runtime, site)
