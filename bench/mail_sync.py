"""Mail Sync benchmark: opush (HTTP + WBXML + sync engine + IMAP) against the local Dovecot,
next to a same-run baseline of a plain IMAP client.

(a) Initial sync of 5,000 messages, WindowSize 100, plain body truncated at 500 bytes
    (BodyPreference Type 1, TruncationSize 500): total seconds from SyncKey 0 until no
    MoreAvailable, every message received once.  Baseline: a plain Python IMAP client
    (imaplib) fetching the same headers and the first 500 body bytes, 100 messages per
    UID FETCH.  Goal: opush <= 1.5x the baseline.
(b) A no-change Sync on a 20,000-message folder against one on a 100-message folder
    (median of repeated Syncs).  Goal: ratio <= 1.5 (cost grows with changes, not size).

opush runs in a child process (its own reactor, embedded store in a temporary directory,
IMAP backend on Dovecot), the device is this process (pyactivesync's session, our WBXML).
Run from the repository root: ``.venv/bin/python bench/mail_sync.py [--quick]``
(--quick: 1,000 / 4,000 messages).  Dovecot is started through scripts/start-services if
needed; the throwaway users are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

A = "AirSync:"
B = "AirSyncBase:"
DEVICE = "BENCHSYNC1"

BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 30


# --------------------------------------------------------------------------- server (child)


def serve(port_file: str, data_dir: str, imap_host: str, imap_port: int, mapping: str) -> None:
    """Run opush's EAS site until killed.  ``mapping``: ``user:folder,...``; collection ids
    are allocated in that order, from 1 for each user (as FolderSync would)."""
    from twisted.internet import reactor
    from twisted.internet.defer import ensureDeferred

    from opush.backends.imap import ImapAuth, ImapMailBackend, ImapSettings
    from opush.http.site import make_site
    from opush.runtime import FrontDoorSettings, Runtime
    from opush.storage import migration
    from opush.storage.embedded import DEFAULT_FILENAME, EmbeddedStore
    from opush.storage.interfaces import FolderKind, FolderRef

    r: Any = reactor

    async def start() -> None:
        store = EmbeddedStore(Path(data_dir) / DEFAULT_FILENAME, clock=r)
        await migration.install(store, migration.load_schema("embedded"))
        for entry in mapping.split(","):
            user, folder = entry.split(":")
            await store.allocate_collection(
                user,
                DEVICE,
                FolderRef(FolderKind.MAIL, folder, folder, 2 if folder == "INBOX" else 12),
            )
        settings = ImapSettings(host=imap_host, port=imap_port, starttls=False, timeout=60)
        runtime = Runtime(
            clock=r,
            auth=ImapAuth(r, settings),
            devices=store,
            state=store,
            mail=ImapMailBackend(r, settings),
            settings=FrontDoorSettings(external_url="bench.example.org"),
        )
        port = r.listenTCP(0, make_site(runtime), interface="127.0.0.1")
        Path(port_file).write_text(str(port.getHost().port))  # noqa: ASYNC240 (startup)

    profile_to = os.environ.get("OPUSH_BENCH_PROFILE")
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        r.addSystemEventTrigger("before", "shutdown", lambda: profiler.dump_stats(profile_to))
    r.callWhenRunning(
        lambda: ensureDeferred(start()).addErrback(lambda f: (f.printTraceback(), r.stop()))
    )
    r.run()


# --------------------------------------------------------------------------- device (parent)


class Device:
    def __init__(self, port: int, user: str) -> None:
        from pyactivesync import Client

        self.client = Client(f"127.0.0.1:{port}", user, "secret", device_id=DEVICE, timeout=300)
        self.client._transport.base_url = f"http://127.0.0.1:{port}/Microsoft-Server-ActiveSync"
        self.client.provision()
        self.user = user
        #: Seconds this device spent decoding WBXML (a phone does it natively).
        self.decoding = 0.0

    def sync(
        self, cid: int, key: str, window: int, truncation: int | None = 500
    ) -> tuple[str, int, bool]:
        from opush.wbxml import E, decode, encode

        col = E(A, "Collection", E(A, "SyncKey", text=key), E(A, "CollectionId", text=cid))
        if key != "0":
            col.append(E(A, "WindowSize", text=window))
            pref = E(B, "BodyPreference", E(B, "Type", text=1))
            if truncation is not None:
                pref.append(E(B, "TruncationSize", text=truncation))
            col.append(E(A, "Options", pref))
        tree = E(A, "Sync", E(A, "Collections", col))
        t = self.client._transport
        response = t.session.post(
            t.base_url,
            params={"Cmd": "Sync", "User": self.user, "DeviceId": DEVICE, "DeviceType": "Bench"},
            data=encode(tree, "14.1"),
            headers={
                "Content-Type": "application/vnd.ms-sync.wbxml",
                "MS-ASProtocolVersion": "14.1",
                "X-MS-PolicyKey": t.policy_key or "",
            },
            timeout=300,
        )
        response.raise_for_status()
        if not response.content:  # MS-ASCMD 2.2.1.21.2 empty Sync response: nothing new
            return key, 0, False
        start = time.perf_counter()
        root = decode(response.content)
        self.decoding += time.perf_counter() - start
        c = root.find(f"{{{A}}}Collections/{{{A}}}Collection")
        assert c is not None, response.content[:200]
        status = c.findtext(f"{{{A}}}Status")
        assert status == "1", status
        adds = len(c.findall(f"{{{A}}}Commands/{{{A}}}Add"))
        return (
            c.findtext(f"{{{A}}}SyncKey") or "",
            adds,
            c.find(f"{{{A}}}MoreAvailable") is not None,
        )


def full_sync(dev: Device, cid: int, window: int) -> tuple[str, int, int]:
    key, _, _ = dev.sync(cid, "0", window)
    total = rounds = 0
    while True:
        key, adds, more = dev.sync(cid, key, window)
        total += adds
        rounds += 1
        if not more:
            return key, total, rounds


def baseline(services: Any, user: str, folder: str, count: int, window: int) -> float:
    """A plain IMAP client: the same headers and first 500 body bytes, 100 per UID FETCH."""
    start = time.perf_counter()
    with services.imap(user) as imap:
        imap.select(f'"{folder}"', readonly=True)
        _, data = imap.uid("SEARCH", None, "ALL")
        uids = [int(u) for u in (data[0] or b"").split()]
        fetched = 0
        for i in range(0, len(uids), window):
            chunk = uids[i : i + window]
            spec = f"{chunk[0]}:{chunk[-1]}"
            _, rows = imap.uid(
                "FETCH",
                spec,
                "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.500>)",
            )
            fetched += sum(1 for r in rows if isinstance(r, tuple) and b"HEADER" in r[0])
    elapsed = time.perf_counter() - start
    assert fetched == count, (fetched, count)
    return elapsed


def load(services: Any, user: str, folder: str, count: int, body: str) -> float:
    from tests.support.sync import make_message, multiappend

    start = time.perf_counter()
    if folder != "INBOX":
        with services.imap(user) as imap:
            imap.create(f'"{folder}"')
    messages = (
        make_message(user, f"message {i} {uuid.uuid4().hex[:8]}", body) for i in range(count)
    )
    multiappend(services.host, services.imap_port, user, folder, messages)
    return time.perf_counter() - start


def no_change_median(dev: Device, cid: int, key: str, repeats: int) -> tuple[float, str]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        key, adds, _ = dev.sync(cid, key, 100)
        times.append(time.perf_counter() - start)
        assert adds == 0
    return statistics.median(times), key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 / 4,000 messages")
    parser.add_argument("--part", choices=("a", "b", "ab"), default="ab", help="which figures")
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port_file, data_dir, host, port, mapping = args.serve
        serve(port_file, data_dir, host, int(port), mapping)
        return 0

    from tests.support.services import ServicesLease, new_address

    initial = 1000 if args.quick else 5000
    big, small = (4000, 100) if args.quick else (20000, 100)
    lease = ServicesLease()
    services = lease.ensure("dovecot")
    user_a, user_b = new_address("bench"), new_address("bench")
    child: subprocess.Popen[bytes] | None = None
    try:
        print(f"loading {initial} messages (~2.4 KB each) into INBOX ...", flush=True)
        t_load = load(services, user_a, "INBOX", initial, BODY)
        print(f"  {t_load:.1f} s")
        if "b" in args.part:
            print(f"loading {big} + {small} messages into two folders ...", flush=True)
            t_load = load(services, user_b, "Big", big, "short body\n")
            t_load += load(services, user_b, "Small", small, "short body\n")
            print(f"  {t_load:.1f} s")

        with tempfile.TemporaryDirectory() as tmp:
            port_file = Path(tmp) / "port"
            mapping = f"{user_a.lower()}:INBOX,{user_b.lower()}:Big,{user_b.lower()}:Small"
            child = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--serve",
                    str(port_file),
                    tmp,
                    services.host,
                    str(services.imap_port),
                    mapping,
                ],
                cwd=str(REPO),
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            for _ in range(200):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.05)
            port = int(port_file.read_text())
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass

            if "a" in args.part:
                # (a) initial sync vs baseline
                dev_a = Device(port, user_a)
                # Three rounds of each, interleaved, best of each: the machine is shared.
                opush_times: list[tuple[float, float]] = []  # (wall, device decoding)
                base_times: list[float] = []
                rounds = 0
                for _ in range(3):
                    base_times.append(baseline(services, user_a, "INBOX", initial, 100))
                    dev_a.decoding = 0.0
                    start = time.perf_counter()
                    _, total, rounds = full_sync(dev_a, 1, 100)  # SyncKey 0: from scratch
                    opush_times.append((time.perf_counter() - start, dev_a.decoding))
                    assert total == initial, (total, initial)
                t_wall, t_decode = min(opush_times)
                t_opush, t_base = t_wall - t_decode, min(base_times)
                print()
                print(
                    f"(a) initial sync of {initial} messages, WindowSize 100, plain body <= 500 B"
                )
                print(
                    f"    wall time at the device ({rounds} Syncs): {t_wall:7.2f} s   (best of 3)"
                )
                print(f"      of which the device's own WBXML decoding: {t_decode:5.2f} s")
                print(f"    opush (wall minus device decoding):   {t_opush:7.2f} s")
                print(f"    baseline (imaplib, same data):        {t_base:7.2f} s   (best of 3)")
                print(f"    ratio: {t_opush / t_base:.2f}x   (goal <= 1.5x)")

            if "b" in args.part:
                # (b) no-change sync: big vs small folder
                dev_b = Device(port, user_b)
                start = time.perf_counter()
                key_big, total_big, rounds_big = full_sync(dev_b, 1, 512)
                t_big_initial = time.perf_counter() - start
                assert total_big == big, (total_big, big)
                key_small, total_small, _ = full_sync(dev_b, 2, 512)
                assert total_small == small
                repeats = 60
                _, key_big = no_change_median(dev_b, 1, key_big, 5)  # warm up
                _, key_small = no_change_median(dev_b, 2, key_small, 5)
                # Interleaved, so that a load change on the machine hits both alike.
                big_times: list[float] = []
                small_times: list[float] = []
                for _ in range(repeats):
                    t, key_big = no_change_median(dev_b, 1, key_big, 1)
                    big_times.append(t)
                    t, key_small = no_change_median(dev_b, 2, key_small, 1)
                    small_times.append(t)
                m_big, m_small = statistics.median(big_times), statistics.median(small_times)
                print()
                print(f"(b) no-change Sync, median of {repeats}")
                print(f"    {big}-message folder:  {m_big * 1000:7.2f} ms")
                print(f"    {small}-message folder:    {m_small * 1000:7.2f} ms")
                print(f"    ratio: {m_big / m_small:.2f}   (goal <= 1.5)")
                print(
                    f"    (initial sync of the {big}-message folder, WindowSize 512: "
                    f"{t_big_initial:.1f} s in {rounds_big} Syncs)"
                )
    finally:
        if child is not None:
            child.terminate()
            child.wait(10)
        for u in (user_a, user_b):
            try:
                services.remove_mailbox(u)
            except Exception as e:  # best effort cleanup
                print(f"could not remove {u}: {e}", file=sys.stderr)
        lease.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
