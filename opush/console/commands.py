# mypy: disallow-untyped-calls=False
"""The console's commands. Each ``do_<name>`` method is one command; its docstring is the
help text (first line: the summary ``help`` lists; the rest: what ``<name> -h`` prints).

Commands return the text to print. They only await Deferreds (storage, backends) and read
local process facts, so a session never blocks the reactor; an exception becomes
``ERROR: <message>`` and the session goes on.
"""

from __future__ import annotations

import gc
import inspect
import shlex
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredLock

from opush.console import sysinfo
from opush.console.dashboard import Dashboard
from opush.console.metrics import MetricsHistory
from opush.log import logger
from opush.storage import migration
from opush.storage.interfaces import (
    Device,
    DeviceNotFound,
    Permission,
    WipeState,
    remove_device_everywhere,
)
from opush.storage.startup import REFUSE_DEVICES, backend_name, check_schema_at_startup

log = logger("CONTAINER")
console_log = logger("opush.console")


class ConsoleError(Exception):
    """A failure the admin can act on: printed as ``ERROR: <message>``, no traceback."""


class UsageError(ConsoleError):
    pass


class Terminal(Protocol):
    """What a command may do with the session it runs in."""

    admin: str
    interactive: bool

    def write(self, text: str) -> None:
        """Print ``text`` (``\\n`` line ends; the session converts for a terminal)."""

    def size(self) -> tuple[int, int]:
        """(columns, rows)."""

    def wait_for_key(self) -> Deferred[str]:
        """The next key typed (interactive sessions); fires ``""`` when the session ends."""


Handler = Callable[[Terminal, list[str]], Awaitable[str | None]]


@attrs.define
class DeviceCounts:
    registered: int = 0
    seen_last_hour: int = 0
    at: float | None = None


class ConsoleApp:
    """The commands of every session, over the running server's runtime."""

    def __init__(self, runtime: Any, config: Any, history: MetricsHistory) -> None:
        self.runtime = runtime
        self.config = config
        self.history = history
        self.clock = runtime.clock
        self.sessions = 0
        self._schema_lock = DeferredLock()
        self._device_counts = DeviceCounts()
        self._counting: Deferred[None] | None = None

    # ------------------------------------------------------------------ dispatch

    def commands(self) -> dict[str, Handler]:
        out: dict[str, Handler] = {}
        for name in dir(self):
            if name.startswith("do_"):
                out[name[3:].replace("_", "-")] = getattr(self, name)
        return out

    def help_text(self, name: str) -> str:
        handler = self.commands().get(name)
        if handler is None:
            raise UsageError(f"unknown command {name!r}, type help")
        return inspect.cleandoc(handler.__doc__ or name)

    async def execute(self, line: str, terminal: Terminal) -> int:
        """Run one command line; its output goes to ``terminal``. 0 = success, 1 = failed."""
        try:
            words = shlex.split(line)
        except ValueError as e:
            terminal.write(f"ERROR: {e}\n")
            return 1
        if not words:
            return 0
        name, args = words[0], words[1:]
        if name == "jvm":  # the CRaSH name admins know
            name = "runtime"
        handler = self.commands().get(name)
        try:
            if handler is None:
                raise UsageError(f"unknown command {name!r}, type help")
            if args and args[0] in ("-h", "--help"):
                text: str | None = self.help_text(name)
            else:
                text = await handler(terminal, args)
        except UsageError as e:
            terminal.write(f"ERROR: {e}\n")
            if handler is not None:
                terminal.write(self.help_text(name) + "\n")
            return 1
        except (ConsoleError, DeviceNotFound) as e:
            terminal.write(f"ERROR: {e}\n")
            return 1
        except Exception as e:
            console_log.failure("console command {line!r} failed", line=line)
            terminal.write(f"ERROR: {str(e) or type(e).__name__}\n")
            return 1
        if text:
            terminal.write(text if text.endswith("\n") else text + "\n")
        return 0

    # ------------------------------------------------------------------ help, date

    async def do_help(self, terminal: Terminal, args: list[str]) -> str:
        """List the commands, or show one command's help.

        usage: help [command]
        Every command also takes -h for its help.
        """
        if args:
            return self.help_text(args[0])
        commands = self.commands()
        width = max(len(n) for n in commands) + 2
        lines = ["Commands (<command> -h for details):"]
        for name in sorted(commands):
            summary = inspect.cleandoc(commands[name].__doc__ or "").splitlines()[0]
            lines.append(f"  {name.ljust(width)}{summary}")
        lines.append(f"  {'jvm'.ljust(width)}Same as runtime.")
        lines.append(f"  {'exit'.ljust(width)}Close the session (also quit, bye, Ctrl-D).")
        return "\n".join(lines)

    async def do_date(self, terminal: Terminal, args: list[str]) -> str:
        """Show the server's date and time.

        usage: date
        """
        return sysinfo.java_date(self.clock.seconds())

    # ------------------------------------------------------------------ schema

    async def do_schema(self, terminal: Terminal, args: list[str]) -> str:
        """Show, install or update the state store's schema.

        usage: schema status|install|update
          status   the installed version and whether this opush can use it
          install  create the schema in a new Cassandra keyspace (or state file)
          update   bring an installed schema to the latest version
        Device requests are refused (503) while the schema is missing or too old; they are
        served again as soon as install/update succeeds (restarting is then harmless).
        """
        if len(args) != 1 or args[0] not in ("status", "install", "update"):
            raise UsageError("schema takes one of status, install, update")
        schema = migration.load_schema(backend_name(self.config))
        store = self.runtime.state
        await self._schema_lock.acquire()
        try:
            if args[0] == "status":
                return await migration.status_command(store, schema)
            log.info("console: {admin} runs schema {action}", admin=terminal.admin, action=args[0])
            if args[0] == "install":
                text = await migration.install_command(store, schema)
            else:
                text = await migration.update_command(store, schema)
            await self._serve_if_usable(schema)
            return text
        finally:
            self._schema_lock.release()

    async def _serve_if_usable(self, schema: migration.SchemaSet) -> None:
        """Lift the start's refusal once the schema is usable (the start check again)."""
        if REFUSE_DEVICES not in self.runtime.services:
            return
        summary = await migration.get_status(self.runtime.state, schema)
        if summary.serves_devices:
            await check_schema_at_startup(self.runtime, self.config, install_embedded=False)
            if REFUSE_DEVICES not in self.runtime.services:
                log.info("Schema is usable, device requests are served")

    # ------------------------------------------------------------------ devices

    async def do_devices(self, terminal: Terminal, args: list[str]) -> str:
        """List devices, show one, wipe it, make it resynchronize or forget it.

        usage: devices list [user]
               devices show <user> <device>
               devices wipe <user> <device>          remote wipe at the next request
               devices account-wipe <user> <device>  wipe only the account (EAS 16.1)
               devices cancel-wipe <user> <device>   cancel a wipe; also lets a wiped
                                                     device sync again
               devices resync <user> <device>        drop its sync state: it syncs all
                                                     again from scratch
               devices remove <user> <device>        forget the device and its state
               devices allow|block|default <user> <device>
                                                     per-device permission (default:
                                                     sync_perms.ini decides)
        <user> is the login as devices send it, user@domain.
        """
        if not args:
            raise UsageError("devices needs an action")
        action, rest = args[0], args[1:]
        registry = self.runtime.devices
        if action == "list":
            if len(rest) > 1:
                raise UsageError("devices list takes at most one user")
            user = rest[0].lower() if rest else None
            devices = await registry.list_devices(user)
            return _device_table(devices, user)
        if len(rest) != 2:
            raise UsageError(f"devices {action} takes <user> <device>")
        user, device_id = rest[0].lower(), rest[1]
        if action == "show":
            device = await registry.get_device(user, device_id)
            if device is None:
                raise DeviceNotFound(user, device_id)
            return _device_details(device)
        who = terminal.admin
        if action in ("wipe", "account-wipe"):
            only = action == "account-wipe"
            device = await registry.request_wipe(
                user, device_id, requested_by=who, account_only=only
            )
            log.info(
                "console: {admin} requested a {kind} of {device} of {user}",
                admin=who,
                kind="account-only wipe" if only else "remote wipe",
                device=device_id,
                user=user,
            )
            what = "Account-only wipe" if only else "Remote wipe"
            return f"{what} requested for device {device_id} of {user}: sent at its next request"
        if action == "cancel-wipe":
            await registry.cancel_wipe(user, device_id)
            log.info(
                "console: {admin} cancelled the wipe of {device} of {user}",
                admin=who,
                device=device_id,
                user=user,
            )
            return f"Wipe cancelled for device {device_id} of {user}"
        if action == "resync":
            if await registry.get_device(user, device_id) is None:
                raise DeviceNotFound(user, device_id)
            await self.runtime.state.forget_device(user, device_id)
            log.info(
                "console: {admin} reset the sync state of {device} of {user}",
                admin=who,
                device=device_id,
                user=user,
            )
            return (
                f"Sync state of device {device_id} of {user} dropped: "
                "it synchronizes everything again at its next request"
            )
        if action == "remove":
            existed = await remove_device_everywhere(registry, self.runtime.state, user, device_id)
            if not existed:
                raise DeviceNotFound(user, device_id)
            log.info(
                "console: {admin} removed {device} of {user}",
                admin=who,
                device=device_id,
                user=user,
            )
            return f"Device {device_id} of {user} removed"
        permissions = {"allow": Permission.ALLOWED, "block": Permission.BLOCKED, "default": None}
        if action in permissions:
            await registry.set_permission(user, device_id, permissions[action])
            log.info(
                "console: {admin} set the permission of {device} of {user} to {action}",
                admin=who,
                device=device_id,
                user=user,
                action=action,
            )
            return f"Device {device_id} of {user}: permission {_permission(permissions[action])}"
        raise UsageError(f"unknown devices action {action!r}")

    # ------------------------------------------------------------------ dashboard

    async def do_dashboard(self, terminal: Terminal, args: list[str]) -> str | None:
        """Live view of the server, refreshed every second until q is typed.

        usage: dashboard [-n COUNT]
        Requests per second and latencies per command, requests in progress and waiting
        Pings, devices seen, errors, backend timings (from BREAKDOWN, when that logger is
        enabled). -n stops after COUNT frames; without a terminal (ssh host dashboard) one
        frame is printed unless -n says more.
        """
        count: int | None = None
        if args:
            if len(args) != 2 or args[0] != "-n" or not args[1].isdigit() or int(args[1]) < 1:
                raise UsageError("dashboard takes only -n COUNT")
            count = int(args[1])
        if count is None and not terminal.interactive:
            count = 1
        dashboard = Dashboard(self)
        await dashboard.run(terminal, count)
        return None

    async def device_counts(self) -> DeviceCounts:
        """Devices registered / seen in the last hour, refreshed at most every 10 s."""
        now = self.clock.seconds()
        counts = self._device_counts
        if counts.at is None or now - counts.at >= 10:
            if self._counting is None:
                from twisted.internet.defer import ensureDeferred

                self._counting = ensureDeferred(self._count_devices())
            if counts.at is None:
                await self._counting
        return self._device_counts

    async def _count_devices(self) -> None:
        try:
            devices = await self.runtime.devices.list_devices(None)
            now = datetime.fromtimestamp(self.clock.seconds(), UTC)
            recent = sum(1 for d in devices if (now - d.last_seen).total_seconds() <= 3600)
            self._device_counts = DeviceCounts(len(devices), recent, self.clock.seconds())
        except Exception:
            console_log.failure("dashboard: counting devices failed")
            self._device_counts = attrs.evolve(self._device_counts, at=self.clock.seconds())
        finally:
            self._counting = None

    def pings_waiting(self) -> int | None:
        """Pings (and Syncs with Wait) hanging now, from the push hub; None before any."""
        hub = self.runtime.services.get("push")
        users = getattr(hub, "_users", None)
        if not isinstance(users, dict):
            return None
        return sum(len(getattr(w, "subs", ())) for w in users.values())

    # ------------------------------------------------------------------ system, runtime

    async def do_system(self, terminal: Terminal, args: list[str]) -> str:
        """Versions and the effective configuration (passwords shown as *).

        usage: system
        """
        lines = [f"{name}: {value}" for name, value in sysinfo.versions()]
        config = self.config
        if config is not None:
            lines.append(
                f"profile: {config.opush.backend.value}, storage: {config.opush.storage.value}"
            )
        refusal = self.runtime.services.get(REFUSE_DEVICES)
        lines.append(
            f"device requests: refused ({refusal})" if refusal else "device requests: served"
        )
        if config is not None:
            from opush.config import describe

            lines.append("")
            lines.append("Effective configuration:")
            lines.extend(f"  {line}" for line in describe(config))
        return "\n".join(lines)

    async def do_runtime(self, terminal: Terminal, args: list[str]) -> str:
        """Python and Twisted versions, memory, uptime, threads, open connections.

        usage: runtime   (also: jvm)
        """
        now = self.clock.seconds()
        started = sysinfo.process_start(self.history.started_at)
        mem = sysinfo.memory()
        fds, sockets = sysinfo.open_files()
        site = self.runtime.services.get("site")
        metrics = getattr(site, "metrics", None)
        gen = gc.get_count()
        reactor = self.clock
        rows: list[tuple[str, str]] = [
            (name, value) for name, value in sysinfo.versions() if name != "opush"
        ]
        rows += [
            ("Executable", sysinfo.python_executable()),
            ("Reactor", type(reactor).__name__),
            ("PID", str(_pid())),
            ("Started", sysinfo.java_date(started)),
            ("Uptime", sysinfo.human_duration(now - started)),
            (
                "Memory",
                f"resident {sysinfo.human_bytes(mem.get('VmRSS', 0))} "
                f"(peak {sysinfo.human_bytes(mem.get('VmHWM', 0))}), "
                f"virtual {sysinfo.human_bytes(mem.get('VmSize', 0))}",
            ),
            ("GC", f"pending objects per generation {gen[0]}/{gen[1]}/{gen[2]}"),
        ]
        rows += [(n.capitalize(), v) for n, v in sysinfo.threads(reactor)]
        rows += [
            ("Open files", f"{fds} descriptors, {sockets} sockets"),
            (
                "Open connections",
                f"{max(0, sockets)} sockets (listeners included); "
                f"{getattr(metrics, 'active', 0)} EAS requests in progress; "
                f"{self.sessions} console sessions",
            ),
        ]
        width = max(len(n) for n, _ in rows) + 2
        return "\n".join(f"{(n + ':').ljust(width)}{v}" for n, v in rows)


def _pid() -> int:
    import os

    return os.getpid()


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _permission(p: Permission | None) -> str:
    return "default (sync_perms.ini)" if p is None else p.value


def _wipe(d: Device) -> str:
    if d.wipe is WipeState.NONE:
        return "none"
    text: str = d.wipe.value
    if d.wipe_requested_by:
        text += f" (requested by {d.wipe_requested_by} at {_when(d.wipe_requested_at)})"
    if d.wipe_acknowledged_at is not None:
        text += f", acknowledged at {_when(d.wipe_acknowledged_at)}"
    return text


def _device_table(devices: list[Device], user: str | None) -> str:
    if not devices:
        return f"No device for {user}" if user else "No device"
    header = ("USER", "DEVICE", "TYPE", "PROTOCOL", "LAST SEEN", "POLICY", "WIPE")
    rows = [header]
    for d in devices:
        rows.append(
            (
                d.user,
                d.device_id,
                d.device_type,
                d.protocol_version or "-",
                _when(d.last_seen),
                d.provisioning.value,
                d.wipe.value,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.append(f"{len(devices)} device{'s' if len(devices) != 1 else ''}")
    return "\n".join(lines)


def _device_details(d: Device) -> str:
    info = d.information
    provisioning = d.provisioning.value
    if d.policy_key is not None:
        provisioning += f" (policy key {d.policy_key})"
    if d.pending_policy_key is not None:
        provisioning += f" (pending key {d.pending_policy_key})"
    rows = [
        ("user", d.user),
        ("device", d.device_id),
        ("type", d.device_type),
        ("user agent", d.user_agent or "-"),
        ("protocol", d.protocol_version or "-"),
        ("first seen", _when(d.first_seen)),
        ("last seen", _when(d.last_seen)),
        ("provisioning", provisioning),
        ("permission", _permission(d.permission)),
        ("wipe", _wipe(d)),
        ("model", info.model or "-"),
        ("friendly name", info.friendly_name or "-"),
        ("os", info.os or "-"),
        ("os language", info.os_language or "-"),
        ("imei", info.imei or "-"),
        ("phone number", info.phone_number or "-"),
        ("mobile operator", info.mobile_operator or "-"),
    ]
    width = max(len(n) for n, _ in rows) + 2
    return "\n".join(f"{(n + ':').ljust(width)}{v}" for n, v in rows)
