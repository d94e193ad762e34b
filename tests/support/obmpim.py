"""Helpers for the obm profile's calendar and contacts tests: the sync engine over the obm-sync
double, in memory (every Deferred fires at once)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from lxml import etree

from opush.backends.obmsync import ObmSyncClient
from opush.backends.obmsync.calendar_source import CalendarItemSource
from opush.backends.obmsync.contacts_source import ContactsItemSource
from opush.log import RequestContext, request_context
from opush.sync.engine import ClientCommand, CollectionRequest, SyncEngine
from opush.wbxml import ns
from tests.doubles.obmsync import ObmSyncDouble
from tests.support.obmsync import credentials, double_and_client, run
from tests.support.syncfakes import MemoryStateStore

A = ns.AIRSYNC
USER = "alice@example.org"
DEVICE = "dev1"


@attrs.define
class Pim:
    """One device of alice syncing one calendar or address book through the engine."""

    double: ObmSyncDouble
    client: ObmSyncClient
    clock: Any
    store: MemoryStateStore
    source_factory: Any
    collection_id: int = 7
    version: tuple[int, int] = (14, 1)
    key: str = "0"

    def engine(self) -> SyncEngine:
        return SyncEngine(
            store=self.store,  # type: ignore[arg-type]
            user=USER,
            device_id=DEVICE,
            version=self.version,
            now=lambda: datetime.fromtimestamp(self.clock.seconds(), UTC),
        )

    def sync(
        self,
        commands: Sequence[ClientCommand] = (),
        *,
        options: Sequence[etree._Element] | None = None,
        filter_type: int | None = None,
        window: int = 100,
        supported: tuple[str, ...] | None = None,
    ) -> etree._Element:
        """One Sync of the collection (SyncKey 0 first when needed, with ``supported``); the
        Collection answer."""
        token = request_context.set(RequestContext(1, user=USER, device_id=DEVICE))
        try:
            engine = self.engine()
            if self.key == "0":
                out = run(
                    engine.sync(
                        CollectionRequest(
                            self.collection_id,
                            "0",
                            window,
                            options=options,
                            filter_type=filter_type,
                            supported=supported,
                        ),
                        self.source_factory(),
                    )
                )
                self.key = out.element.findtext(f"{{{A}}}SyncKey") or ""
            request = CollectionRequest(
                self.collection_id,
                self.key,
                window,
                options=options,
                filter_type=filter_type,
                commands=tuple(commands),
            )
            out = run(engine.sync(request, self.source_factory()))
        finally:
            request_context.reset(token)
        self.key = out.element.findtext(f"{{{A}}}SyncKey") or self.key
        return out.element


def commands_of(collection: etree._Element, kind: str) -> list[etree._Element]:
    cmds = collection.find(f"{{{A}}}Commands")
    return [] if cmds is None else [c for c in cmds if etree.QName(c).localname == kind]


def responses_of(collection: etree._Element, kind: str) -> list[etree._Element]:
    resp = collection.find(f"{{{A}}}Responses")
    return [] if resp is None else [c for c in resp if etree.QName(c).localname == kind]


def calendar_pim() -> Pim:
    double, client, clock = double_and_client()
    creds = credentials(USER)
    return Pim(
        double,
        client,
        clock,
        MemoryStateStore(),
        lambda: CalendarItemSource(client, creds, "alice"),
    )


def contacts_pim(book_id: int | None = None) -> Pim:
    double, client, clock = double_and_client()
    creds = credentials(USER)
    alice = double.user(USER)
    book = book_id
    if book is None:
        book = next(b.id for b in double.books.values() if b.owner is alice)
    store = MemoryStateStore()
    return Pim(
        double,
        client,
        clock,
        store,
        lambda: ContactsItemSource(client, creds, book, 7, store),  # type: ignore[arg-type]
    )


def add_command(client_id: str, *props: etree._Element) -> ClientCommand:
    return ClientCommand("Add", client_id=client_id, data=_data(props))


def change_command(server_id: str, *props: etree._Element) -> ClientCommand:
    return ClientCommand("Change", server_id=server_id, data=_data(props))


def delete_command(server_id: str) -> ClientCommand:
    return ClientCommand("Delete", server_id=server_id)


def _data(props: Sequence[etree._Element]) -> etree._Element:
    data = etree.Element(f"{{{A}}}ApplicationData")
    for p in props:
        data.append(p)
    return data


# ------------------------------------------------------------------ libwbxml2-encoded requests


def libwbxml_tree(el: etree._Element) -> etree._Element:
    """A copy of ``el`` with libwbxml2's tag names and namespaces (``Calendar:TimeZone``...)."""
    from opush.wbxml import codepages

    ours_to_lib = {(page, ours): lib for (page, lib), ours in codepages.LIBWBXML_NAMES.items()}
    qname = etree.QName(el)
    page = codepages.BY_NAMESPACE[qname.namespace or ""]
    name = ours_to_lib.get((page.number, qname.localname), qname.localname)
    namespace = codepages.LIBWBXML_NAMESPACES.get(page.number, page.namespace)
    out = etree.Element(f"{{{namespace}}}{name}")
    out.text = el.text
    for child in el:
        if isinstance(child.tag, str):
            out.append(libwbxml_tree(child))
    return out


def libwbxml_encode(tree: etree._Element) -> bytes:
    """The request as libwbxml2's ``xml2wbxml`` encodes it (an encoder independent of ours,
    with every code page, Calendar and Contacts2 included)."""
    from tests.support.folders import xml2wbxml

    return xml2wbxml(etree.tostring(libwbxml_tree(tree), encoding="unicode"))


def post_raw(device: Any, command: str, body: bytes) -> Any:
    """POST an already encoded body as `tests.support.sync.EasDevice` would."""
    t = device.client._transport
    headers = {
        "Content-Type": "application/vnd.ms-sync.wbxml",
        "MS-ASProtocolVersion": device.version,
    }
    if t.policy_key:
        headers["X-MS-PolicyKey"] = t.policy_key
    query = {"Cmd": command, "User": device.user, "DeviceId": t.device_id, "DeviceType": "iPhone"}
    return t.session.post(t.base_url, params=query, data=body, headers=headers, timeout=60)
