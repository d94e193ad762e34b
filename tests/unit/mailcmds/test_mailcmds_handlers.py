"""The mail command handlers over in-memory doubles: statuses per operation, the multipart
answer, Range, Schema, GetAttachment errors, Search ordering and paging, GAL without LDAP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_twisted
from lxml import etree

from opush.backends.ldap import DirectoryEntry, DirectoryUnavailable
from opush.commands import getattachment, itemoperations, moveitems, search
from opush.commands.itemoperations import MULTIPART_CONTENT_TYPE, parse_multipart
from opush.http.errors import HttpError
from opush.wbxml import E, decode, encode, ns
from tests.support.mailcmds import FakeCollections, FakeMail, attachment_mail, command_context

NS = {
    "io": "ItemOperations:",
    "a": "AirSync:",
    "b": "AirSyncBase:",
    "e": "Email:",
    "s": "Search:",
    "m": "Move:",
    "g": "GAL:",
}
PAYLOAD = bytes(range(256)) * 8
io, a, b, s, m = ns.ITEMOPERATIONS, ns.AIRSYNC, ns.AIRSYNCBASE, ns.SEARCH, ns.MOVE


@pytest.fixture
def mail() -> FakeMail:
    box = FakeMail()
    for name in ("INBOX", "Trash", "Archive", "Archive/2024"):
        box.folders[name] = {}
    for i, day in enumerate((3, 1, 2), 1):
        box.add(
            "INBOX",
            attachment_mail("alice@example.org", f"mail {i}", f"text {i}\n", PAYLOAD, "a.bin"),
            datetime(2024, 5, day, 12, tzinfo=UTC),
        )
    box.add(
        "Archive/2024",
        attachment_mail("alice@example.org", "old budget", "budget\n", b"x", "b.bin"),
        datetime(2024, 1, 1, tzinfo=UTC),
    )
    return box


@pytest.fixture
def collections() -> FakeCollections:
    c = FakeCollections()
    c.add(1, "INBOX", 2)
    c.add(2, "Trash", 4)
    c.add(3, "Archive")
    c.add(4, "Archive/2024")
    c.add(9, "Gone")
    return c


def roundtrip(result: Any) -> etree._Element:
    assert result.tree is not None
    return decode(encode(result.tree, "16.1"))


def fetch(*children: etree._Element) -> etree._Element:
    return E(io, "Fetch", E(io, "Store", text="Mailbox"), *children)


async def run_io(ctx: Any, *ops: etree._Element) -> Any:
    return await itemoperations.handle(ctx, E(io, "ItemOperations", *ops))


@pytest_twisted.ensureDeferred
async def test_fetch_statuses(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context("ItemOperations", mail, collections)
    result = await run_io(
        ctx,
        fetch(E(a, "CollectionId", text="1"), E(a, "ServerId", text="1:1")),
        fetch(E(a, "CollectionId", text="1"), E(a, "ServerId", text="1:99")),
        fetch(E(a, "CollectionId", text="2"), E(a, "ServerId", text="1:1")),
        fetch(E(a, "CollectionId", text="9"), E(a, "ServerId", text="9:1")),
        fetch(E(b, "FileReference", text="1%3a1%3a2")),
        fetch(E(b, "FileReference", text="1%3a1%3a7")),
        fetch(E(b, "FileReference", text="garbage")),
        fetch(E(s, "LongId", text="4:1")),
        fetch(),
        E(io, "Fetch", E(io, "Store", text="DocumentLibrary"), E(b, "FileReference", text="x")),
    )
    tree = roundtrip(result)
    assert tree.findtext("io:Status", namespaces=NS) == "1"
    statuses = [f.findtext("io:Status", namespaces=NS) for f in tree.iterfind(".//io:Fetch", NS)]
    assert statuses == ["1", "6", "6", "6", "1", "15", "15", "1", "2", "9"]
    first, *_ = tree.iterfind(".//io:Fetch", NS)
    assert first.findtext("a:Class", namespaces=NS) == "Email"
    assert first.findtext("io:Properties/e:Subject", namespaces=NS) == "mail 1"
    data = tree.findtext("io:Response/io:Fetch[5]/io:Properties/io:Data", namespaces=NS)
    assert base64.b64decode(data or "") == PAYLOAD
    assert (
        tree.findtext("io:Response/io:Fetch[8]/io:Properties/e:Subject", namespaces=NS)
        == "old budget"
    )


@pytest_twisted.ensureDeferred
async def test_schema_limits_properties(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context("ItemOperations", mail, collections)
    options = E(io, "Options", E(io, "Schema", E(ns.EMAIL, "Subject")))
    result = await run_io(
        ctx, fetch(E(a, "CollectionId", text="1"), E(a, "ServerId", text="1:2"), options)
    )
    props = roundtrip(result).find(".//io:Properties", NS)
    assert props is not None and [etree.QName(c).localname for c in props] == ["Subject"]


@pytest.mark.parametrize(
    ("range_text", "expected", "status"),
    [
        ("0-9", PAYLOAD[:10], "1"),
        ("2000-99999", PAYLOAD[2000:], "1"),
        ("5000-5001", None, "8"),
        ("9-1", None, "8"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_attachment_ranges(
    mail: FakeMail,
    collections: FakeCollections,
    range_text: str,
    expected: bytes | None,
    status: str,
) -> None:
    ctx = command_context("ItemOperations", mail, collections)
    options = E(io, "Options", E(io, "Range", text=range_text))
    result = await run_io(ctx, fetch(E(b, "FileReference", text="1:1:2"), options))
    props_status = roundtrip(result).findtext(".//io:Fetch/io:Status", namespaces=NS)
    assert props_status == status
    if expected is not None:
        tree = roundtrip(result)
        data = tree.findtext(".//io:Properties/io:Data", namespaces=NS)
        assert base64.b64decode(data or "") == expected
        assert tree.findtext(".//io:Properties/io:Total", namespaces=NS) == str(len(PAYLOAD))


@pytest_twisted.ensureDeferred
async def test_multipart_answer(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context(
        "ItemOperations", mail, collections, headers={"MS-ASAcceptMultiPart": "T"}
    )
    body_options = E(io, "Options", E(b, "BodyPreference", E(b, "Type", text=1)))
    result = await run_io(
        ctx,
        fetch(E(a, "CollectionId", text="1"), E(a, "ServerId", text="1:3"), body_options),
        fetch(E(b, "FileReference", text="1:3:2")),
    )
    assert result.content_type == MULTIPART_CONTENT_TYPE and result.raw is not None
    parts = parse_multipart(result.raw)
    tree = decode(parts[0])
    body_part = tree.findtext(".//io:Fetch[1]//b:Body/io:Part", namespaces=NS)
    file_part = tree.findtext(".//io:Fetch[2]/io:Properties/io:Part", namespaces=NS)
    assert tree.find(".//b:Body/b:Data", NS) is None
    assert parts[int(body_part or 0)].startswith(b"text 3")
    assert parts[int(file_part or 0)] == PAYLOAD


@pytest_twisted.ensureDeferred
async def test_empty_folder_contents(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context("ItemOperations", mail, collections)
    result = await run_io(
        ctx,
        E(io, "EmptyFolderContents", E(a, "CollectionId", text="3")),
        E(
            io,
            "EmptyFolderContents",
            E(a, "CollectionId", text="3"),
            E(io, "Options", E(io, "DeleteSubFolders")),
        ),
        E(io, "EmptyFolderContents", E(a, "CollectionId", text="77")),
    )
    tree = roundtrip(result)
    statuses = [
        e.findtext("io:Status", namespaces=NS)
        for e in tree.iterfind(".//io:EmptyFolderContents", NS)
    ]
    assert statuses == ["1", "1", "6"]
    assert "Archive/2024" not in mail.folders and mail.folders["Archive"] == {}
    assert len(mail.folders["INBOX"]) == 3


@pytest_twisted.ensureDeferred
async def test_getattachment(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context(
        "GetAttachment", mail, collections, version=(12, 1), params={"AttachmentName": "1%3a2%3a2"}
    )
    result = await getattachment.handle(ctx, None)
    assert result.raw == PAYLOAD and result.content_type == "application/octet-stream"
    for name, code in (("1%3a2%3a9", 500), ("nope", 500), ("9%3a1%3a2", 500)):
        bad = command_context(
            "GetAttachment", mail, collections, version=(12, 1), params={"AttachmentName": name}
        )
        with pytest.raises(HttpError) as err:
            await getattachment.handle(bad, None)
        assert err.value.code == code
    with pytest.raises(HttpError) as missing:
        await getattachment.handle(command_context("GetAttachment", mail, collections), None)
    assert missing.value.code == 400


def move(src: str, src_fld: str, dst_fld: str) -> etree._Element:
    return E(
        m,
        "Move",
        E(m, "SrcMsgId", text=src),
        E(m, "SrcFldId", text=src_fld),
        E(m, "DstFldId", text=dst_fld),
    )


@pytest_twisted.ensureDeferred
async def test_moveitems_statuses(mail: FakeMail, collections: FakeCollections) -> None:
    ctx = command_context("MoveItems", mail, collections)
    result = await moveitems.handle(
        ctx,
        E(
            m,
            "MoveItems",
            move("1:1", "1", "2"),  # ok
            move("1:1", "1", "2"),  # already moved: invalid source
            move("1:2", "1", "77"),  # unknown destination
            move("1:2", "1", "1"),  # same folder
            move("1:2", "2", "3"),  # ServerId not in SrcFldId
            move("1:2", "1", "9"),  # destination mapped but gone from IMAP
            move("junk", "1", "2"),
            move("1:3", "x", "2"),
        ),
    )
    tree = roundtrip(result)
    responses = tree.findall("m:Response", NS)
    assert [r.findtext("m:Status", namespaces=NS) for r in responses] == [
        "3", "1", "2", "4", "1", "2", "1", "1"
    ]  # fmt: skip
    assert responses[0].findtext("m:DstMsgId", namespaces=NS) == "2:1"
    assert responses[0].findtext("m:SrcMsgId", namespaces=NS) == "1:1"
    assert responses[1].find("m:DstMsgId", NS) is None
    assert sorted(mail.folders["INBOX"]) == [2, 3] and sorted(mail.folders["Trash"]) == [1]


@pytest_twisted.ensureDeferred
async def test_move_refused_by_the_server_is_status_5(
    mail: FakeMail, collections: FakeCollections
) -> None:
    mail.fail_moves = True
    ctx = command_context("MoveItems", mail, collections)
    result = await moveitems.handle(ctx, E(m, "MoveItems", move("1:1", "1", "2")))
    assert roundtrip(result).findtext("m:Response/m:Status", namespaces=NS) == "5"
    assert sorted(mail.folders["INBOX"]) == [1, 2, 3]


def mailbox_search(*conditions: etree._Element, options: etree._Element | None = None) -> Any:
    return E(
        s,
        "Search",
        E(
            s,
            "Store",
            E(s, "Name", text="Mailbox"),
            E(s, "Query", E(s, "And", *conditions)),
            options,
        ),
    )


def date(op: str, value: str) -> etree._Element:
    return E(s, op, E(ns.EMAIL, "DateReceived"), E(s, "Value", text=value))


async def run_search(ctx: Any, request: etree._Element) -> etree._Element:
    return roundtrip(await search.handle(ctx, request))


@pytest_twisted.ensureDeferred
async def test_mailbox_search_order_range_and_total(
    mail: FakeMail, collections: FakeCollections
) -> None:
    ctx = command_context("Search", mail, collections)
    tree = await run_search(
        ctx,
        mailbox_search(
            E(a, "Class", text="Email"),
            E(a, "CollectionId", text="1"),
            date("GreaterThan", "2024-05-01T12:00:00.000Z"),  # strictly after: not mail 2
            options=E(s, "Options", E(s, "Range", text="0-0")),
        ),
    )
    store = tree.find("s:Response/s:Store", NS)
    assert store is not None and store.findtext("s:Status", namespaces=NS) == "1"
    results = store.findall("s:Result", NS)
    assert [r.findtext("s:LongId", namespaces=NS) for r in results] == ["1:1"]  # newest
    assert store.findtext("s:Range", namespaces=NS) == "0-0"
    assert store.findtext("s:Total", namespaces=NS) == "2"


@pytest_twisted.ensureDeferred
async def test_mailbox_search_deep_traversal_and_all_folders(
    mail: FakeMail, collections: FakeCollections
) -> None:
    ctx = command_context("Search", mail, collections)
    shallow = await run_search(
        ctx, mailbox_search(E(a, "CollectionId", text="3"), E(s, "FreeText", text="budget"))
    )
    assert shallow.find(".//s:Result/s:LongId", NS) is None  # one empty Result
    assert len(shallow.findall(".//s:Result", NS)) == 1
    deep = await run_search(
        ctx,
        mailbox_search(
            E(a, "CollectionId", text="3"),
            E(s, "FreeText", text="budget"),
            options=E(s, "Options", E(s, "DeepTraversal")),
        ),
    )
    assert [r.findtext("s:LongId", namespaces=NS) for r in deep.iterfind(".//s:Result", NS)] == [
        "4:1"
    ]
    everywhere = await run_search(ctx, mailbox_search(E(s, "FreeText", text="a.bin")))
    assert everywhere.findtext(".//s:Total", namespaces=NS) == "3"


@pytest.mark.parametrize(
    ("condition", "status"),
    [
        (E(a, "CollectionId", text="55"), "11"),
        (E(s, "Or"), "8"),
        (E(ns.EMAIL, "Subject"), "2"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_mailbox_search_statuses(
    mail: FakeMail, collections: FakeCollections, condition: etree._Element, status: str
) -> None:
    ctx = command_context("Search", mail, collections)
    tree = await run_search(ctx, mailbox_search(condition))
    assert tree.findtext("s:Status", namespaces=NS) == "1"
    assert tree.findtext("s:Response/s:Store/s:Status", namespaces=NS) == status
    assert tree.find(".//s:Result", NS) is None


def gal_search(text: str, *options: etree._Element) -> etree._Element:
    return E(
        s,
        "Search",
        E(
            s,
            "Store",
            E(s, "Name", text="GAL"),
            E(s, "Query", text=text),
            E(s, "Options", *options) if options else None,
        ),
    )


class FakeDirectory:
    def __init__(self, entries: list[DirectoryEntry], fail: bool = False) -> None:
        self.entries = entries
        self.fail = fail
        self.queries: list[str] = []

    async def search(self, user: Any, query: str, limit: int | None = None, **_: Any) -> list[Any]:
        self.queries.append(query)
        if self.fail:
            raise DirectoryUnavailable("down")
        return [e for e in self.entries if (e.email or "").startswith(query)]


@pytest_twisted.ensureDeferred
async def test_gal_search(mail: FakeMail, collections: FakeCollections) -> None:
    people = [
        DirectoryEntry("bob@example.org", "Bob Durand", "Bob", "Durand", phone="+33 1"),
        DirectoryEntry("bea@example.org", "Béa Martin"),
    ]
    directory = FakeDirectory(people)
    ctx = command_context("Search", mail, collections, version=(14, 1), directory=directory)
    tree = await run_search(
        ctx,
        gal_search("b", E(s, "Range", text="0-0"), E(s, "Picture", E(s, "MaxPictures", text=1))),
    )
    store = tree.find("s:Response/s:Store", NS)
    assert store is not None
    results = store.findall("s:Result", NS)
    assert len(results) == 1 and store.findtext("s:Total", namespaces=NS) == "2"
    props = results[0].find("s:Properties", NS)
    assert props is not None
    assert props.findtext("g:DisplayName", namespaces=NS) == "Béa Martin"  # sorted by name
    assert props.findtext("g:Picture/g:Status", namespaces=NS) == "173"

    failing = command_context("Search", mail, collections, directory=FakeDirectory([], True))
    down = await run_search(failing, gal_search("b"))
    assert down.findtext("s:Response/s:Store/s:Status", namespaces=NS) == "3"


@pytest_twisted.ensureDeferred
async def test_gal_without_ldap_is_the_empty_result(
    mail: FakeMail, collections: FakeCollections
) -> None:
    ctx = command_context("Search", mail, collections, ldap_configured=False)
    tree = await run_search(ctx, gal_search("bob"))
    store = tree.find("s:Response/s:Store", NS)
    assert store is not None and store.findtext("s:Status", namespaces=NS) == "1"
    assert store.findall("s:Result", NS) == []  # MS-ASCMD 2.2.3.155.3: no Result for GAL
    assert store.findtext("s:Total", namespaces=NS) == "0"
    empty_query = await run_search(ctx, gal_search(""))
    assert empty_query.findtext("s:Response/s:Store/s:Status", namespaces=NS) == "2"


def resolve(*typed: str, options: etree._Element | None = None) -> etree._Element:
    r = ns.RESOLVERECIPIENTS
    return E(r, "ResolveRecipients", *(E(r, "To", text=t) for t in typed), options)


@pytest_twisted.ensureDeferred
async def test_resolve_recipients(mail: FakeMail, collections: FakeCollections) -> None:
    from opush.commands import resolverecipients

    r = ns.RESOLVERECIPIENTS
    people = [
        DirectoryEntry("bob@example.org", "Bob Durand"),
        DirectoryEntry("bobby@example.org", "Bobby Tables"),
        DirectoryEntry("carol@example.org", "Carol Petit"),
    ]
    ctx = command_context("ResolveRecipients", mail, collections, directory=FakeDirectory(people))
    options = E(
        r,
        "Options",
        E(r, "CertificateRetrieval", text=2),
        E(r, "MaxAmbiguousRecipients", text=1),
        E(r, "Availability", E(r, "StartTime", text="2026-01-01T00:00:00.000Z")),
    )
    tree = roundtrip(
        await resolverecipients.handle(
            ctx, resolve("bob@example.org", "bob", "carol", "zed@", options=options)
        )
    )
    rns = {"r": "ResolveRecipients:"}
    assert tree.findtext("r:Status", namespaces=rns) == "1"
    rows = [
        (
            resp.findtext("r:To", namespaces=rns),
            resp.findtext("r:Status", namespaces=rns),
            resp.findtext("r:RecipientCount", namespaces=rns),
            [
                x.findtext("r:EmailAddress", namespaces=rns)
                for x in resp.iterfind("r:Recipient", rns)
            ],
        )
        for resp in tree.iterfind("r:Response", rns)
    ]
    assert rows == [
        ("bob@example.org", "1", "1", ["bob@example.org"]),  # exact address wins
        ("bob", "2", "1", ["bob@example.org"]),  # ambiguous, one suggestion asked
        ("carol", "1", "1", ["carol@example.org"]),
        ("zed@", "4", "0", []),
    ]
    first = tree.find("r:Response/r:Recipient", rns)
    assert first is not None
    assert first.findtext("r:Type", namespaces=rns) == "1"
    assert first.findtext("r:Certificates/r:Status", namespaces=rns) == "7"
    assert first.findtext("r:Availability/r:Status", namespaces=rns) == "163"

    none = command_context("ResolveRecipients", mail, collections, ldap_configured=False)
    unresolved = roundtrip(await resolverecipients.handle(none, resolve("bob")))
    assert unresolved.findtext("r:Response/r:Status", namespaces=rns) == "4"
    with pytest.raises(Exception) as err:
        await resolverecipients.handle(none, resolve())
    assert getattr(err.value, "status", None) == 5


@pytest_twisted.ensureDeferred
async def test_gal_pictures_and_certificates(mail: FakeMail, collections: FakeCollections) -> None:
    """Photos within MaxSize/MaxPictures (Status 1/173/174/175, MS-ASCMD 2.2.3.104), and the
    S/MIME certificates ResolveRecipients hands out (CertificateRetrieval 2)."""
    import base64

    from opush.commands import resolverecipients
    from opush.wbxml import opaque

    people = [
        DirectoryEntry("a1@example.org", "Ann A", photo=b"\xff\xd8small"),
        DirectoryEntry("a2@example.org", "Ben B", photo=b"\xff\xd8" + b"x" * 500),
        DirectoryEntry("a3@example.org", "Bea C"),
        DirectoryEntry(
            "a4@example.org", "Bob D", photo=b"\xff\xd8again", certificates=(b"0\x82cert",)
        ),
    ]
    ctx = command_context(
        "Search", mail, collections, version=(14, 1), directory=FakeDirectory(people)
    )
    picture = E(s, "Picture", E(s, "MaxSize", text=100), E(s, "MaxPictures", text=1))
    tree = await run_search(ctx, gal_search("a", picture))
    statuses = {
        r.findtext("s:Properties/g:EmailAddress", namespaces=NS): r.findtext(
            "s:Properties/g:Picture/g:Status", namespaces=NS
        )
        for r in tree.iterfind("s:Response/s:Store/s:Result", NS)
    }
    assert statuses == {
        "a1@example.org": "1",  # first photo within the size
        "a3@example.org": "173",  # none
        "a2@example.org": "174",  # too large
        "a4@example.org": "175",  # MaxPictures reached
    }
    data = tree.find("s:Response/s:Store/s:Result/s:Properties/g:Picture/g:Data", NS)
    assert data is not None and opaque(data) == b"\xff\xd8small"

    r = ns.RESOLVERECIPIENTS
    rctx = command_context("ResolveRecipients", mail, collections, version=(14, 1),
                           directory=FakeDirectory(people))  # fmt: skip
    options = E(r, "Options", E(r, "CertificateRetrieval", text=2), E(r, "Picture"))
    answer = roundtrip(await resolverecipients.handle(rctx, resolve("a4@", "a1@", options=options)))
    rns = {"r": "ResolveRecipients:"}
    bob, ann = answer.findall("r:Response/r:Recipient", rns)
    assert bob.findtext("r:Certificates/r:Status", namespaces=rns) == "1"
    assert bob.findtext("r:Certificates/r:CertificateCount", namespaces=rns) == "1"
    cert = bob.findtext("r:Certificates/r:Certificate", namespaces=rns) or ""
    assert base64.b64decode(cert) == b"0\x82cert"
    assert ann.findtext("r:Certificates/r:Status", namespaces=rns) == "7"
    # No MaxPictures: each To gets its photo.
    assert [x.findtext("r:Picture/r:Status", namespaces=rns) for x in (bob, ann)] == ["1", "1"]


@pytest_twisted.ensureDeferred
async def test_resolve_recipients_availability(
    mail: FakeMail, collections: FakeCollections
) -> None:
    """Availability: MergedFreeBusy from runtime.services["availability"], Status 163 when it
    has nothing for the recipient (MS-ASCMD 2.2.3.16, 2.2.3.99)."""
    from opush.commands import resolverecipients

    asked: list[tuple[str, Any, Any]] = []

    class Availability:
        async def merged(self, credentials: Any, address: str, start: Any, end: Any) -> str | None:
            asked.append((address, start, end))
            return "0220" if address == "a1@example.org" else None

    r = ns.RESOLVERECIPIENTS
    people = [DirectoryEntry("a1@example.org", "Ann"), DirectoryEntry("a2@example.org", "Ben")]
    ctx = command_context("ResolveRecipients", mail, collections, version=(14, 1),
                          directory=FakeDirectory(people))  # fmt: skip
    ctx.runtime.services["availability"] = Availability()
    window = E(r, "Availability", E(r, "StartTime", text="2026-12-01T08:00:00.000Z"),
               E(r, "EndTime", text="2026-12-01T10:00:00.000Z"))  # fmt: skip
    answer = roundtrip(
        await resolverecipients.handle(ctx, resolve("a1@", "a2@", options=E(r, "Options", window)))
    )
    rns = {"r": "ResolveRecipients:"}
    ann, ben = answer.findall("r:Response/r:Recipient", rns)
    assert ann.findtext("r:Availability/r:Status", namespaces=rns) == "1"
    assert ann.findtext("r:Availability/r:MergedFreeBusy", namespaces=rns) == "0220"
    assert ben.findtext("r:Availability/r:Status", namespaces=rns) == "163"
    assert asked[0][0] == "a1@example.org" and asked[0][1].hour == 8 and asked[0][2].hour == 10
