"""A small EAS device for the push tests and bench: request bodies built with opush's own
encoder, answers decoded with its decoder.  `Device` is blocking (requests) for e2e tests;
`bench/push.py` sends the same bodies from an asynchronous client.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import attrs
import requests
from lxml import etree

from opush.wbxml import E, decode, encode, ns

VERSION = "14.1"
EAS = "/Microsoft-Server-ActiveSync"
WBXML = "application/vnd.ms-sync.wbxml"
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"


def provision_request(temporary_key: str | None = None) -> etree._Element:
    policy = E(ns.PROVISION, "Policy", E(ns.PROVISION, "PolicyType", text=POLICY_TYPE))
    if temporary_key is not None:
        policy.append(E(ns.PROVISION, "PolicyKey", text=temporary_key))
        policy.append(E(ns.PROVISION, "Status", text=1))
        return E(ns.PROVISION, "Provision", E(ns.PROVISION, "Policies", policy))
    info = E(
        ns.SETTINGS,
        "DeviceInformation",
        E(ns.SETTINGS, "Set", E(ns.SETTINGS, "Model", text="opush-push-test")),
    )
    return E(ns.PROVISION, "Provision", info, E(ns.PROVISION, "Policies", policy))


def policy_key(answer: etree._Element) -> str:
    key = answer.findtext(f".//{{{ns.PROVISION}}}PolicyKey")
    if not key:
        raise AssertionError("no PolicyKey in " + etree.tostring(answer).decode())
    return key


def foldersync_request(sync_key: str = "0") -> etree._Element:
    return E(ns.FOLDERHIERARCHY, "FolderSync", E(ns.FOLDERHIERARCHY, "SyncKey", text=sync_key))


def folders_of(answer: etree._Element) -> dict[str, str]:
    """FolderSync answer -> DisplayName path-less name -> ServerId (Adds only)."""
    out: dict[str, str] = {}
    q = f"{{{ns.FOLDERHIERARCHY}}}"
    for add in answer.iter(f"{q}Add"):
        out[add.findtext(f"{q}DisplayName") or ""] = add.findtext(f"{q}ServerId") or ""
    return out


def sync_request(collection_id: str, sync_key: str, window: int = 100) -> etree._Element:
    a = ns.AIRSYNC
    collection = E(
        a,
        "Collection",
        E(a, "SyncKey", text=sync_key),
        E(a, "CollectionId", text=collection_id),
    )
    if sync_key != "0":
        collection.append(E(a, "GetChanges", text="1"))
        collection.append(E(a, "WindowSize", text=window))
    return E(a, "Sync", E(a, "Collections", collection))


def sync_state(answer: etree._Element) -> tuple[str, bool, int]:
    """(new SyncKey, MoreAvailable, number of Adds) of a one-collection Sync answer."""
    a = f"{{{ns.AIRSYNC}}}"
    key = answer.findtext(f".//{a}SyncKey") or ""
    more = answer.find(f".//{a}MoreAvailable") is not None
    adds = len(list(answer.iter(f"{a}Add")))
    return key, more, adds


def ping_request(heartbeat: int | None, folders: Iterable[tuple[str, str]] = ()) -> etree._Element:
    p = ns.PING
    root = E(p, "Ping")
    if heartbeat is not None:
        root.append(E(p, "HeartbeatInterval", text=heartbeat))
    items = [E(p, "Folder", E(p, "Id", text=i), E(p, "Class", text=c)) for i, c in folders]
    if items:
        root.append(E(p, "Folders", *items))
    return root


@attrs.frozen
class PingAnswer:
    status: int
    folders: tuple[str, ...] = ()
    heartbeat: int | None = None
    max_folders: int | None = None


def ping_answer(answer: etree._Element) -> PingAnswer:
    p = f"{{{ns.PING}}}"
    heartbeat = answer.findtext(f"{p}HeartbeatInterval")
    max_folders = answer.findtext(f"{p}MaxFolders")
    return PingAnswer(
        status=int(answer.findtext(f"{p}Status") or "0"),
        folders=tuple(f.text or "" for f in answer.iter(f"{p}Folder")),
        heartbeat=int(heartbeat) if heartbeat else None,
        max_folders=int(max_folders) if max_folders else None,
    )


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def query(command: str, user: str, device_id: str) -> str:
    return f"Cmd={command}&User={user}&DeviceId={device_id}&DeviceType=PushTest"


@attrs.define
class Device:
    """One blocking device session against `base_url` (http://host:port)."""

    base_url: str
    user: str
    device_id: str
    password: str = "secret"
    policy_key: str | None = None
    timeout: float = 30.0
    session: requests.Session = attrs.field(factory=requests.Session)
    folders: dict[str, str] = attrs.field(factory=dict)
    sync_keys: dict[str, str] = attrs.field(factory=dict)

    def post(self, command: str, tree: etree._Element | None) -> tuple[int, etree._Element | None]:
        headers: dict[str, Any] = {
            "Authorization": basic_auth(self.user, self.password),
            "MS-ASProtocolVersion": VERSION,
            "Content-Type": WBXML,
        }
        if self.policy_key:
            headers["X-MS-PolicyKey"] = self.policy_key
        response = self.session.post(
            f"{self.base_url}{EAS}?{query(command, self.user, self.device_id)}",
            data=encode(tree, VERSION) if tree is not None else b"",
            headers=headers,
            timeout=self.timeout,
        )
        body = response.content
        return response.status_code, decode(body) if body else None

    def call(self, command: str, tree: etree._Element | None) -> etree._Element:
        code, answer = self.post(command, tree)
        assert code == 200 and answer is not None, f"{command}: HTTP {code}"
        return answer

    def provision(self) -> None:
        temporary = policy_key(self.call("Provision", provision_request()))
        self.policy_key = temporary
        self.policy_key = policy_key(self.call("Provision", provision_request(temporary)))

    def folder_sync(self) -> dict[str, str]:
        self.folders = folders_of(self.call("FolderSync", foldersync_request()))
        return self.folders

    def sync(self, folder: str = "Inbox") -> int:
        """Bring `folder` (display name) up to date; how many items came."""
        cid = self.folder_id(folder)
        key = self.sync_keys.get(cid, "0")
        total = 0
        if key == "0":
            key, _, _ = sync_state(self.call("Sync", sync_request(cid, "0")))
        while True:
            code, answer = self.post("Sync", sync_request(cid, key))
            assert code == 200
            if answer is None:  # nothing new: empty answer
                break
            key, more, adds = sync_state(answer)
            total += adds
            if not more:
                break
        self.sync_keys[cid] = key
        return total

    def folder_id(self, name: str) -> str:
        for display, sid in self.folders.items():
            if display.lower() == name.lower():
                return sid
        raise KeyError(f"no folder {name} in {sorted(self.folders)}")

    def ping(
        self, heartbeat: int | None = None, folders: Iterable[str] = (), empty: bool = False
    ) -> PingAnswer:
        ids = [(self.folder_id(f), "Email") for f in folders]
        code, answer = self.post("Ping", None if empty else ping_request(heartbeat, ids))
        assert code == 200 and answer is not None, f"Ping: HTTP {code}"
        return ping_answer(answer)
