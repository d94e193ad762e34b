"""The same mail Sync against opush and a peer EAS server (SOGo 5.8), on the same Dovecot and
the same data, next to the plain-IMAP baseline of bench/mail_sync.py.

Initial sync of N messages (default 5,000; --quick 1,000) from SyncKey 0 until no
MoreAvailable, WindowSize 100, EAS 14.1, BodyPreference Type 1 with TruncationSize 500, every
message received exactly once; best of 3, the device's own WBXML decoding reported apart.
Then a no-change Sync (median of 30) on each server.

SOGo must be set up first: ``bench/peers-setup-sogo`` (Debian packages, not part of CI); the
bench says so and skips it when it does not answer.  Z-Push is not in Debian: set
OPUSH_BENCH_ZPUSH_URL to a running one's EAS URL (set up by hand) to measure it too; it was
measured once as Z-Hub/Z-Push 2.7.1 (git) with BackendIMAP on the same Dovecot (1143, folder
names configured), served by ``php -S`` (PHP 8.2, as www-data) on 127.0.0.1:8083.
Run from the repository root: ``.venv/bin/python bench/peers.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import mail_sync  # noqa: E402  (bench/mail_sync.py: the opush child, load(), baseline())

SOGO_URL = "http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync"
A, B, F = "AirSync:", "AirSyncBase:", "FolderHierarchy:"


class PeerDevice:
    """An EAS 14.1 device of one server (no provisioning: the peers do not require it)."""

    def __init__(self, url: str, user: str, password: str = "secret") -> None:
        import requests

        self.url, self.user = url, user
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.decoding = 0.0
        self.policy_key = "0"
        # A new device each time: a server keeps per-device state between rounds.
        self.device_id = "PEER" + uuid.uuid4().hex[:12].upper()
        self.inbox_id: str | None = None
        #: ServerIds received (each message exactly once), bodies beyond TruncationSize.
        self.seen: set[str] = set()
        self.untruncated = 0

    def post(self, command: str, tree: Any) -> bytes:
        from opush.wbxml import encode

        r = self.session.post(
            self.url,
            params={
                "Cmd": command,
                "User": self.user,
                "DeviceId": self.device_id,
                "DeviceType": "Bench",
            },
            data=encode(tree, "14.1"),
            headers={
                "Content-Type": "application/vnd.ms-sync.wbxml",
                "MS-ASProtocolVersion": "14.1",
                "X-MS-PolicyKey": self.policy_key,
            },
            timeout=600,
        )
        r.raise_for_status()
        return r.content

    def inbox(self) -> str:
        from opush.wbxml import E, decode

        root = decode(self.post("FolderSync", E(F, "FolderSync", E(F, "SyncKey", text="0"))))
        for add in root.iter(f"{{{F}}}Add"):
            if add.findtext(f"{{{F}}}Type") == "2":
                return add.findtext(f"{{{F}}}ServerId") or ""
        raise RuntimeError(f"no Inbox in {root}")

    def sync(self, cid: str, key: str, window: int = 100) -> tuple[str, int, bool]:
        from opush.wbxml import E, decode

        col = E(A, "Collection", E(A, "SyncKey", text=key), E(A, "CollectionId", text=cid))
        if key != "0":
            col.append(E(A, "WindowSize", text=window))
            col.append(E(A, "Options", E(B, "BodyPreference", E(B, "Type", text=1),
                                         E(B, "TruncationSize", text=500))))  # fmt: skip
        content = self.post("Sync", E(A, "Sync", E(A, "Collections", col)))
        if not content:
            return key, 0, False
        start = time.perf_counter()
        root = decode(content)
        self.decoding += time.perf_counter() - start
        c = root.find(f"{{{A}}}Collections/{{{A}}}Collection")
        assert c is not None, content[:200]
        status = c.findtext(f"{{{A}}}Status")
        assert status == "1", status
        add_els = c.findall(f"{{{A}}}Commands/{{{A}}}Add")
        for add in add_els:
            sid = add.findtext(f"{{{A}}}ServerId") or ""
            assert sid not in self.seen, f"{sid} sent twice"
            self.seen.add(sid)
            data = add.findtext(f"{{{A}}}ApplicationData/{{{B}}}Body/{{{B}}}Data") or ""
            if len(data.encode("utf-8")) > 500:
                self.untruncated += 1
        adds = len(add_els)
        return (
            c.findtext(f"{{{A}}}SyncKey") or "",
            adds,
            c.find(f"{{{A}}}MoreAvailable") is not None,
        )


def full_sync(dev: Any, cid: Any) -> tuple[str, int, int]:
    key, _, _ = dev.sync(cid, "0", 100)
    total = rounds = 0
    while True:
        key, adds, more = dev.sync(cid, key, 100)
        total += adds
        rounds += 1
        if not more:
            return key, total, rounds


def measure(name: str, make: Any, cid: Any, count: int) -> dict[str, Any] | None:
    runs = []
    key = ""
    dev: Any = None
    for _ in range(3):
        dev = make()
        dev.decoding = 0.0
        start = time.perf_counter()
        try:
            key, total, rounds = full_sync(dev, getattr(dev, "inbox_id", cid))
        except OSError as e:  # requests' ConnectionError is an OSError
            print(f"  {name}: round failed: {e}", flush=True)
            continue
        wall = time.perf_counter() - start
        if total != count:
            print(f"  {name}: received {total} of {count} messages", flush=True)
        if getattr(dev, "untruncated", 0):
            print(f"  {name}: {dev.untruncated} bodies beyond TruncationSize 500", flush=True)
        runs.append((wall, dev.decoding, rounds, total))
    if not runs:
        return None
    wall, decode, rounds, total = min(runs)
    times = []
    c = getattr(dev, "inbox_id", cid)
    for _ in range(30):
        start = time.perf_counter()
        try:
            key, _, _ = dev.sync(c, key, 100)
        except OSError:
            continue
        times.append(time.perf_counter() - start)
    return {"wall": wall, "decode": decode, "rounds": rounds, "total": total,
            "idle": statistics.median(times) if times else float("nan")}  # fmt: skip


def sogo_up() -> bool:
    try:
        urllib.request.urlopen(urllib.request.Request(SOGO_URL, method="OPTIONS"), timeout=3)
    except urllib.error.HTTPError as e:
        return e.code in (200, 401)
    except OSError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 messages")
    args = parser.parse_args()
    from tests.support.services import ServicesLease, new_address

    count = 1000 if args.quick else 5000
    lease = ServicesLease()
    services = lease.ensure("dovecot")
    user = new_address("peers")
    child: subprocess.Popen[bytes] | None = None
    results: dict[str, dict[str, Any] | None] = {}
    try:
        print(f"loading {count} messages (~2.4 KB each) into INBOX ...", flush=True)
        mail_sync.load(services, user, "INBOX", count, mail_sync.BODY)
        base = min(mail_sync.baseline(services, user, "INBOX", count, 100) for _ in range(3))

        with tempfile.TemporaryDirectory() as tmp:
            port_file = Path(tmp) / "port"
            child = subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "mail_sync.py"), "--serve", str(port_file),
                 tmp, services.host, str(services.imap_port), f"{user.lower()}:INBOX"],
                cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            port = int(port_file.read_text())
            results["opush"] = measure("opush", lambda: _opush_device(port, user), 1, count)

        if sogo_up():
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "sogo", "sogo", "-qc",
                 f"INSERT INTO sogo_users VALUES ('{user}','{user}','secret','Bench','{user}') "
                 "ON CONFLICT DO NOTHING"],
                env={**os.environ, "PGPASSWORD": "sogo"}, check=True,
            )  # fmt: skip
            sogo_inbox = PeerDevice(SOGO_URL, user).inbox()
            results["SOGo 5.8"] = measure(
                "SOGo", lambda: _peer_device(SOGO_URL, user), sogo_inbox, count
            )
        else:
            print("SOGo: not set up (bench/peers-setup-sogo): skipped")
        zpush = os.environ.get("OPUSH_BENCH_ZPUSH_URL")
        if zpush:
            inbox = PeerDevice(zpush, user).inbox()
            results["Z-Push"] = measure("Z-Push", lambda: _peer_device(zpush, user), inbox, count)
        else:
            print("Z-Push: OPUSH_BENCH_ZPUSH_URL not set: skipped")

        print()
        print(f"initial sync of {count} messages, WindowSize 100, plain body <= 500 B, EAS 14.1")
        print(f"  {'server':<10} {'wall s':>8} {'decode s':>9} {'server s':>9} {'x IMAP':>7} "
              f"{'Syncs':>6} {'msgs':>6} {'no-change ms':>13}")  # fmt: skip
        for name, r in results.items():
            if r is None:
                continue
            own = r["wall"] - r["decode"]
            idle = r["idle"] * 1000
            print(f"  {name:<10} {r['wall']:8.2f} {r['decode']:9.2f} {own:9.2f} "
                  f"{own / base:7.1f} {r['rounds']:6d} {r['total']:6d} {idle:13.1f}")  # fmt: skip
        print(f"  {'imaplib':<10} {base:8.2f} {'':>9} {base:9.2f} {1.0:7.1f}")
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "sogo", "sogo", "-qc",
             f"DELETE FROM sogo_users WHERE c_uid = '{user}'"],
            env={**os.environ, "PGPASSWORD": "sogo"}, check=False, capture_output=True,
        )  # fmt: skip
        try:
            services.remove_mailbox(user)
        except Exception as e:
            print(f"could not remove {user}: {e}", file=sys.stderr)
        lease.release()
    return 0


def _peer_device(url: str, user: str) -> PeerDevice:
    dev = PeerDevice(url, user)
    dev.inbox_id = dev.inbox()  # a (new) device FolderSyncs first; ids may be per device
    return dev


def _opush_device(port: int, user: str) -> Any:
    return mail_sync.Device(port, user)


if __name__ == "__main__":
    sys.exit(main())
