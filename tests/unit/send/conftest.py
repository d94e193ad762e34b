"""Doubles for the sending commands: a mailbox, the state store's collections and maps, and an
SMTP server that records what it accepted (or fails the way it is told to)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from lxml.etree import _Element
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from opush.backends.interfaces import (
    Credentials,
    Folder,
    MailboxNotFound,
    MessageNotFound,
    SpecialUse,
    UserIdentity,
)
from opush.commands.context import CommandContext, CommandResult
from opush.http.query import EasQuery
from opush.runtime import Runtime
from opush.storage.interfaces import Collection, Device, FolderKind, FolderRef, MappingKind

PASSWORD = "pa55-w0rd"


@attrs.define
class Box:
    messages: dict[int, bytes] = attrs.field(factory=dict)
    flags: dict[int, set[str]] = attrs.field(factory=dict)
    special_use: SpecialUse | None = None
    uidnext: int = 1


@attrs.define
class FakeStore:
    boxes: dict[str, Box] = attrs.field(factory=dict)
    fail_append: bool = False

    def add(self, folder: str, raw: bytes) -> int:
        box = self.boxes.setdefault(folder, Box())
        uid = box.uidnext
        box.uidnext += 1
        box.messages[uid] = raw
        box.flags[uid] = set()
        return uid

    def box(self, folder: str) -> Box:
        if folder not in self.boxes:
            raise MailboxNotFound(folder)
        return self.boxes[folder]

    async def list_folders(self) -> list[Folder]:
        return [Folder(n, "/", special_use=b.special_use) for n, b in sorted(self.boxes.items())]

    async def fetch_body(
        self, folder: str, uid: int, section: str = "", partial: Any = None, max_size: Any = None
    ) -> bytes:
        box = self.box(folder)
        if uid not in box.messages:
            raise MessageNotFound(str(uid))
        return box.messages[uid]

    async def append(
        self, folder: str, message: bytes, flags: Sequence[str] = (), date: Any = None
    ) -> int:
        if self.fail_append:
            from opush.backends.interfaces import MailError

            raise MailError("NO [OVERQUOTA] quota exceeded")
        uid = self.add(self.box(folder) and folder, message)
        self.boxes[folder].flags[uid] = set(flags)
        return uid

    async def set_flags(
        self, folder: str, uids: Sequence[int], add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        box = self.box(folder)
        for uid in uids:
            box.flags[uid] |= set(add)

    async def delete(self, folder: str, uids: Sequence[int], move_to_trash: bool = True) -> None:
        box = self.box(folder)
        for uid in uids:
            raw = box.messages.pop(uid)
            box.flags.pop(uid, None)
            if move_to_trash:
                self.add("Trash", raw)

    def subjects(self, folder: str) -> list[str]:
        import email

        return [
            str(email.message_from_bytes(m)["Subject"]) for m in self.box(folder).messages.values()
        ]


@attrs.define
class FakeState:
    collections: dict[int, Collection] = attrs.field(factory=dict)
    maps: dict[tuple[int, MappingKind, str], str] = attrs.field(factory=dict)

    def map_folder(
        self, collection_id: int, folder: str, kind: FolderKind = FolderKind.MAIL
    ) -> None:
        self.collections[collection_id] = Collection(
            collection_id, FolderRef(kind, folder, folder, 12)
        )

    def get_collection(self, user: str, device_id: str, collection_id: int) -> Deferred[Any]:
        return succeed(self.collections.get(collection_id))

    def get_mapping(
        self, user: str, device_id: str, collection_id: int, kind: MappingKind, key: str
    ) -> Deferred[str | None]:
        return succeed(self.maps.get((collection_id, kind, key)))

    def put_mapping(
        self,
        user: str,
        device_id: str,
        collection_id: int,
        kind: MappingKind,
        key: str,
        value: str,
    ) -> Deferred[None]:
        self.maps[(collection_id, kind, key)] = value
        return succeed(None)


@attrs.define
class Sent:
    mail_from: str
    recipients: tuple[str, ...]
    data: bytes
    credentials: Credentials | None


@attrs.define
class FakeSmtp:
    sent: list[Sent] = attrs.field(factory=list)
    #: An exception to raise instead of sending.
    failure: Exception | None = None

    async def send(
        self,
        mail_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        credentials: Credentials | None = None,
    ) -> Any:
        if self.failure is not None:
            raise self.failure
        self.sent.append(Sent(mail_from, tuple(recipients), data, credentials))
        return None


@attrs.define
class FakeMailBackend:
    store_: FakeStore

    def store(self, credentials: Any) -> FakeStore:
        return self.store_

    async def shutdown(self) -> None:
        return None


@attrs.frozen
class MailConf:
    message_max_size: int = 100_000
    imap_mailbox_sent: str = "Sent"


@attrs.frozen
class Conf:
    mail: MailConf = MailConf()


@attrs.define
class World:
    store: FakeStore
    state: FakeState
    smtp: FakeSmtp
    config: Conf = Conf()
    services: dict[str, Any] = attrs.field(factory=dict)

    def context(
        self,
        command: str,
        *,
        version: tuple[int, int] = (16, 1),
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        save_in_sent: bool = False,
    ) -> CommandContext:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        runtime = Runtime(
            clock=Clock(),
            auth=None,  # type: ignore[arg-type]
            devices=None,  # type: ignore[arg-type]
            state=self.state,  # type: ignore[arg-type]
            mail=FakeMailBackend(self.store),  # type: ignore[arg-type]
            config=self.config,
        )
        runtime.services["smtp"] = self.smtp
        runtime.services.update(self.services)
        user = UserIdentity("alice", "example.org", "alice@example.org", "Alice Martin")
        return CommandContext(
            runtime=runtime,
            command=command,
            credentials=Credentials(user, PASSWORD),
            device=Device("alice@example.org", "DEV1", "test", None, now, now),
            version=version,
            query=EasQuery(
                command, "DEV1", "test", params=dict(params or {}), save_in_sent=save_in_sent
            ),
            headers={},
            body=body,
            content_type="message/rfc822" if body else None,
            policy_key=None,
            request_id=1,
        )

    async def run(
        self, handler: Any, command: str, tree: _Element | None, **kw: Any
    ) -> CommandResult:
        result: CommandResult = await handler(self.context(command, **kw), tree)
        return result


@pytest.fixture
def world() -> World:
    store = FakeStore()
    for name, use in (("INBOX", None), ("Sent", SpecialUse.SENT), ("Trash", SpecialUse.TRASH)):
        store.boxes[name] = Box(special_use=use)
    state = FakeState()
    state.map_folder(1, "INBOX")
    state.map_folder(2, "Sent")
    state.map_folder(3, "Trash")
    return World(store, state, FakeSmtp())
