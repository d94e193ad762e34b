"""Push benchmark: many held Pings in ONE `twistd opush` process, against the local Dovecot.

What it does (defaults: 10,000 devices over the 1,000 users user0001..user1000@example.org):

1. starts a real `twistd -n opush` (standalone profile, embedded store) as a subprocess;
2. sets up every device over HTTP from a light Twisted client (one keep-alive TCP connection
   per device, no threads): Provision (2 round trips), FolderSync; the devices used for the
   latency run also sync their Inbox;
3. sends a Ping (Inbox, heartbeat 3000 s) from every device and waits until the server
   holds them all (`opush_requests_active` of /metrics);
4. prints the server's resident memory per held Ping (RSS with the Pings minus RSS before
   them, the same connections being open and idle in both), the server's CPU while all are
   idle (baseline: the same server idle before the Pings), and the delivery-to-answer latency
   of `--deliveries` LMTP deliveries to users with a waiting device (from the LMTP 250 to
   the Ping's Status 2 on the device's socket).

Goals (issue 7): <= 100 KB per held Ping, < 5% of a core idle, p95 latency <= 2 s.

The local Dovecot allows 1,200 IMAP processes; opush holds one watcher session per user
(1,000) so the bench caps opush's IMAP pool at `--imap-pool` sessions (a launcher sets
ImapSettings.max_connections; there is no config key for it yet).  Size Dovecot's
process_limit to pool + watchers in production (README, "Push").

Run: .venv/bin/python bench/push.py [--devices N] [--users N] [--deliveries N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import smtplib
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opush.wbxml import decode, encode  # noqa: E402
from tests.support.push import (  # noqa: E402
    EAS,
    VERSION,
    basic_auth,
    folders_of,
    foldersync_request,
    ping_answer,
    ping_request,
    policy_key,
    provision_request,
    query,
    sync_request,
    sync_state,
)
from tests.support.server import free_port, make_config_dir  # noqa: E402

R: Any = reactor
PASSWORD = "secret"
HEARTBEAT = 3000

LAUNCHER = """
import os, sys, attrs
from opush.profiles import standalone
_orig = standalone.imap_settings
def imap_settings(config, host=None):
    return attrs.evolve(_orig(config, host), max_connections=int(os.environ["BENCH_IMAP_POOL"]))
standalone.imap_settings = imap_settings
from twisted.scripts.twistd import run
sys.argv = ["twistd"] + sys.argv[1:]
run()
"""


# --------------------------------------------------------------------------- HTTP client


class EasConnection(protocol.Protocol):
    """A minimal keep-alive HTTP/1.1 client: one request at a time, Content-Length or
    chunked answers.  Far lighter than a thread per device."""

    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: defer.Deferred[tuple[int, bytes]] | None = None
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionLost(self, reason: Any = None) -> None:
        if self.waiting is not None:
            d, self.waiting = self.waiting, None
            d.errback(ConnectionError("connection lost"))
        if not self.closed.called:
            self.closed.callback(None)

    def request(self, head: bytes, body: bytes) -> defer.Deferred[tuple[int, bytes]]:
        assert self.waiting is None
        self.waiting = defer.Deferred()
        self.transport.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)  # type: ignore[union-attr]
        return self.waiting

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        self._parse()

    def _parse(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiting is None:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        code = int(head[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        rest = self.buffer[end + 4 :]
        if "content-length" in headers:
            size = int(headers["content-length"])
            if len(rest) < size:
                return
            body, self.buffer = rest[:size], rest[size:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            pos = 0
            while True:
                line_end = rest.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(rest[pos:line_end].split(b";")[0], 16)
                if len(rest) < line_end + 2 + size + 2:
                    return
                body += rest[line_end + 2 : line_end + 2 + size]
                pos = line_end + 2 + size + 2
                if size == 0:
                    break
            self.buffer = rest[pos:]
        else:
            body, self.buffer = b"", rest
        d, self.waiting = self.waiting, None
        d.callback((code, body))


class BenchDevice:
    def __init__(self, port: int, user: str, device_id: str) -> None:
        self.port = port
        self.user = user
        self.device_id = device_id
        self.policy_key: str | None = None
        self.conn: EasConnection | None = None
        self.inbox = ""
        self.sync_key = "0"

    async def connect(self) -> None:
        endpoint = TCP4ClientEndpoint(R, "127.0.0.1", self.port, timeout=30)
        self.conn = await connectProtocol(endpoint, EasConnection())

    async def post(self, command: str, tree: Any) -> tuple[int, Any]:
        if self.conn is None or self.conn.closed.called:
            await self.connect()
        assert self.conn is not None
        head = (
            f"POST {EAS}?{query(command, self.user, self.device_id)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.port}\r\n"
            f"Authorization: {basic_auth(self.user, PASSWORD)}\r\n"
            f"MS-ASProtocolVersion: {VERSION}\r\n"
            "Content-Type: application/vnd.ms-sync.wbxml\r\n"
        )
        if self.policy_key:
            head += f"X-MS-PolicyKey: {self.policy_key}\r\n"
        body = encode(tree, VERSION) if tree is not None else b""
        code, raw = await self.conn.request(head.encode(), body)
        return code, decode(raw) if raw else None

    async def call(self, command: str, tree: Any) -> Any:
        code, answer = await self.post(command, tree)
        if code != 200 or answer is None:
            raise RuntimeError(f"{self.user}/{self.device_id} {command}: HTTP {code}")
        return answer

    async def setup(self, sync: bool) -> None:
        temporary = policy_key(await self.call("Provision", provision_request()))
        self.policy_key = temporary
        self.policy_key = policy_key(await self.call("Provision", provision_request(temporary)))
        folders = folders_of(await self.call("FolderSync", foldersync_request()))
        self.inbox = folders["Inbox"]
        if sync:
            key, _, _ = sync_state(await self.call("Sync", sync_request(self.inbox, "0")))
            while True:
                _, answer = await self.post("Sync", sync_request(self.inbox, key, 512))
                if answer is None:
                    break
                key, more, _ = sync_state(answer)
                if not more:
                    break
            self.sync_key = key

    def ping(self) -> defer.Deferred[tuple[int, Any]]:
        return defer.ensureDeferred(
            self.post("Ping", ping_request(HEARTBEAT, [(self.inbox, "Email")]))
        )


# --------------------------------------------------------------------------- measuring


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _active_requests(base_url: str) -> int:
    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=60) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("opush_requests_active"):
                    return int(float(line.split()[1]))
    except OSError:
        pass  # busy starting Pings: ask again
    return -1


async def active_requests(base_url: str) -> int:
    """The server's in-progress requests (/metrics), asked from a thread: the bench's own
    reactor keeps serving its 10,000 connections meanwhile."""
    return int(await threads.deferToThread(_active_requests, base_url))


async def sleep(seconds: float) -> None:
    await task.deferLater(R, seconds, lambda: None)


async def cpu_share(pid: int, seconds: float) -> float:
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    await sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start) * 100.0


async def gather(items: list[Any], work: Callable[[Any], Any], concurrency: int) -> None:
    sem = defer.DeferredSemaphore(concurrency)
    await defer.gatherResults(
        [sem.run(lambda i=i: defer.ensureDeferred(work(i))) for i in items], consumeErrors=True
    )


def deliver(user: str, lmtp_port: int) -> None:
    msg = (
        f"From: bench@example.org\r\nTo: {user}\r\nSubject: push {uuid.uuid4().hex}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.org>\r\n\r\nhello\r\n"
    ).encode()
    with smtplib.LMTP("127.0.0.1", lmtp_port, timeout=30) as lmtp:
        lmtp.sendmail("bench@example.org", [user], msg)


# --------------------------------------------------------------------------- the run


def start_server(base: Path, imap_pool: int) -> tuple[subprocess.Popen[bytes], int]:
    conf = make_config_dir(base, {"opush.ini": {"push.heartbeat.max": str(HEARTBEAT + 60)}})
    port, console = free_port(), free_port()
    env = dict(os.environ, BENCH_IMAP_POOL=str(imap_pool))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = (base / "twistd.out").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            "-n",
            "--pidfile=",
            "opush",
            "--config-dir",
            str(conf),
            "--http",
            f"tcp:{port}:interface=127.0.0.1:backlog=4096",
            "--console",
            f"tcp:{console}:interface=127.0.0.1",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=str(base),
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((base / "twistd.out").read_text())
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/opush/healthcheck/", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


async def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    from tests.support.services import LocalServices, ServicesLease

    lease = ServicesLease()
    services: LocalServices = lease.ensure("dovecot")
    process, port = start_server(base, args.imap_pool)
    base_url = f"http://127.0.0.1:{port}"
    pid = process.pid
    devices: list[BenchDevice] = []
    answers: dict[int, defer.Deferred[tuple[int, Any]]] = {}
    try:
        users = [f"user{n:04d}@example.org" for n in range(1, args.users + 1)]
        run_id = uuid.uuid4().hex[:6].upper()
        devices = [
            BenchDevice(port, users[i % len(users)], f"B{run_id}{i:05d}")
            for i in range(args.devices)
        ]
        # Latency devices: the first device of distinct users (synced Inbox).
        probes = devices[: min(args.deliveries, len(users), len(devices))]
        synced = set(map(id, probes))
        t0 = time.monotonic()
        await gather(devices, lambda d: d.setup(id(d) in synced), args.concurrency)
        setup = time.monotonic() - t0
        print(f"setup: {len(devices)} devices in {setup:.1f} s ({len(devices) / setup:.0f}/s)")

        # Setup connections closed (Twisted would time them out after 60 s idle anyway): the
        # baseline is the server after setup, the Pings come on fresh connections, so the
        # figure per held Ping includes its TCP connection and HTTP channel.
        for d in devices:
            if d.conn is not None and d.conn.transport is not None:
                d.conn.transport.loseConnection()  # type: ignore[attr-defined]
        await sleep(5)
        rss_before = rss_kb(pid)
        cpu_before = await cpu_share(pid, args.idle_seconds / 2)
        print(f"before Pings: RSS {rss_before / 1024:.1f} MiB, idle CPU {cpu_before:.2f}%")

        t0 = time.monotonic()

        failed: list[BaseException] = []

        async def send_ping(d: BenchDevice) -> None:
            await d.connect()
            answer = answers[id(d)] = d.ping()
            answer.addErrback(lambda f: failed.append(f.value) or f)

        await gather(devices, send_ping, args.concurrency)
        held, last_change, previous = 0, time.monotonic(), -1
        while time.monotonic() - t0 < 900 and time.monotonic() - last_change < 30:
            held = await active_requests(base_url)
            if held >= len(devices) - len(failed):
                break
            if held != previous:
                previous, last_change = held, time.monotonic()
            await sleep(2)
        if failed:
            print(f"  {len(failed)} Pings failed on the client side: {failed[0]!r}")
        for _ in range(3):
            # A device answered at once (e.g. Status 111 "retry later" while the IMAP server
            # was saturated by the burst) Pings again, as a phone would.
            again = [d for d in devices if answers[id(d)].called]
            if not again:
                break
            print(f"  {len(again)} answered early (IMAP busy): they Ping again")
            failed.clear()
            await sleep(5)
            await gather(again, send_ping, args.concurrency)
            await sleep(10)
        held = await active_requests(base_url)
        early = [d for d in devices if answers[id(d)].called]
        print(f"Pings held: {held} in {time.monotonic() - t0:.1f} s ({len(early)} answered early)")
        # "Active" counts Pings still running their first checks (one LIST and one STATUS
        # each, under opush's concurrency limit): wait until the server is quiet.
        settle = time.monotonic()
        while time.monotonic() - settle < 600 and await cpu_share(pid, 5) > 10.0:
            pass
        print(f"  settled {time.monotonic() - settle:.0f} s later")
        rss_after = rss_kb(pid)
        cpu_idle = await cpu_share(pid, args.idle_seconds)
        per_ping_kb = (rss_after - rss_before) / max(1, held)
        print(
            f"with Pings: RSS {rss_after / 1024:.1f} MiB -> {per_ping_kb:.1f} KB per held Ping; "
            f"idle CPU {cpu_idle:.2f}% of a core"
        )

        latencies: list[float] = []
        for d in probes:
            answer = answers[id(d)]
            if answer.called:
                continue
            got: list[float] = []
            answer.addCallback(lambda r, got=got: got.append(time.monotonic()) or r)
            await threads.deferToThread(deliver, d.user, services.lmtp_port)
            delivered = time.monotonic()
            answer.addTimeout(args.answer_timeout, R)
            try:
                code, tree = await answer
            except defer.TimeoutError:
                print(f"  {d.user}: no answer {args.answer_timeout:.0f} s after the delivery")
                continue
            status = ping_answer(tree).status if tree is not None else None
            if code != 200 or status != 2:
                print(f"  {d.user}: unexpected answer HTTP {code} Status {status}")
                continue
            latencies.append(max(0.0, got[0] - delivered))
        latencies.sort()
        p50 = statistics.median(latencies) if latencies else float("nan")
        p95 = latencies[max(0, int(len(latencies) * 0.95 + 0.5) - 1)] if latencies else float("nan")
        worst = latencies[-1] if latencies else float("nan")
        print(
            f"latency over {len(latencies)} deliveries: p50 {p50 * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        )
        return {
            "devices": len(devices),
            "users": args.users,
            "held": held,
            "rss_before_mib": rss_before / 1024,
            "rss_after_mib": rss_after / 1024,
            "kb_per_ping": per_ping_kb,
            "cpu_idle_before": cpu_before,
            "cpu_idle": cpu_idle,
            "latency_p50": p50,
            "latency_p95": p95,
            "deliveries": len(latencies),
        }
    finally:
        for pending in answers.values():
            pending.addErrback(lambda _: None)  # the teardown below cuts them
        for d in devices:
            if d.conn is not None and d.conn.transport is not None:
                d.conn.transport.abortConnection()  # type: ignore[attr-defined]
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        lease.release()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--deliveries", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--imap-pool", type=int, default=100)
    parser.add_argument("--answer-timeout", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="500 devices, 100 users")
    args = parser.parse_args()
    if args.quick:
        args.devices, args.users, args.deliveries, args.idle_seconds = 500, 100, 20, 10.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.devices * 2 + 4096))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # the server inherits it
    if wanted < args.devices + 1024:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} too low for {args.devices} devices")
    with TemporaryDirectory(prefix="opush-bench-push-") as tmp:
        result: dict[str, Any] = {}

        async def main_async() -> None:
            result.update(await run(args, Path(tmp)))

        def done(outcome: Any) -> Any:
            R.stop()
            return outcome

        R.callWhenRunning(lambda: defer.ensureDeferred(main_async()).addBoth(done))
        R.run()
        if not result:
            sys.exit("benchmark failed")
        print()
        print(f"devices {result['devices']} over {result['users']} users, held {result['held']}")
        ok = lambda good: "ok" if good else "MISSED"  # noqa: E731
        print(
            f"memory per held Ping: {result['kb_per_ping']:.1f} KB "
            f"(goal <= 100 KB: {ok(result['kb_per_ping'] <= 100)})"
        )
        print(
            f"CPU while all idle: {result['cpu_idle']:.2f}% of a core "
            f"(baseline without Pings {result['cpu_idle_before']:.2f}%; goal < 5%: "
            f"{ok(result['cpu_idle'] < 5)})"
        )
        print(
            f"delivery-to-answer p95: {result['latency_p95'] * 1000:.0f} ms over "
            f"{result['deliveries']} deliveries (goal <= 2000 ms: "
            f"{ok(result['latency_p95'] <= 2.0)})"
        )


if __name__ == "__main__":
    main()
