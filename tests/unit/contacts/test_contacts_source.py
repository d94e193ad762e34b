"""Address books through the sync engine (obm-sync double, in memory): folders, first and
incremental sync, device Adds/Changes/Deletes, OP-139 duplicate Adds, the read-only users book."""

from __future__ import annotations

from opush.backends.obmsync import xml as obm
from opush.backends.obmsync.contacts_source import ContactsFolderSource
from opush.content import contacts as cn
from opush.wbxml import E, ns
from tests.support.obmpim import (
    USER,
    add_command,
    change_command,
    commands_of,
    contacts_pim,
    delete_command,
    responses_of,
)
from tests.support.obmsync import credentials, double_and_client, run

A, C1 = ns.AIRSYNC, ns.CONTACTS


def _props(first: str, last: str, email: str | None = None) -> list:  # type: ignore[type-arg]
    item = cn.ContactItem(
        fields={"FirstName": first, "LastName": last, "JobTitle": "CTO"},
        emails=(email,) if email else (),
    )
    return cn.render_item(item, (14, 1))


def test_folders_default_book_other_books_and_users_book() -> None:
    double, client, _clock = double_and_client()
    alice, bob = double.user(USER), double.user("bob@example.org")
    shared = double.add_book(bob, "team")
    double.subscribe(alice, shared)
    refs = run(ContactsFolderSource(client, credentials(USER)).list_folders())
    own = next(b for b in double.books.values() if b.owner is alice and b.name == "contacts")
    assert [(r.backend_id, r.display_name, r.folder_type, r.parent_backend_id) for r in refs] == [
        (str(own.id), "contacts", 9, None),
        (str(shared.id), "team (Bob Morane)", 14, str(own.id)),
        ("-1", "OBM users", 14, str(own.id)),
    ]
    # A book the user stops syncing disappears from the listing (FolderSync deletes it).
    double.unsubscribe(alice, shared)
    refs = run(ContactsFolderSource(client, credentials(USER)).list_folders())
    assert str(shared.id) not in {r.backend_id for r in refs}


def test_contacts_sync_both_ways() -> None:
    pim = contacts_pim()
    first = pim.sync()
    assert commands_of(first, "Add") == []

    pim.clock.advance(10)
    added = pim.sync([add_command("c1", *_props("Ann", "Lee", "ann@x.org"))])
    (response,) = responses_of(added, "Add")
    server_id = response.findtext(f"{{{A}}}ServerId") or ""
    uid = int(server_id.split(":")[1])
    stored = pim.double.contacts[uid].contact
    assert (stored.first, stored.last, stored.title) == ("Ann", "Lee", "CTO")
    assert commands_of(added, "Add") == []

    pim.clock.advance(10)
    pim.sync([change_command(server_id, *_props("Ann", "Smith"))])
    assert pim.double.contacts[uid].contact.last == "Smith"
    assert pim.double.contacts[uid].contact.emails == ()  # a Change replaces the contact

    # Another OBM client adds a contact: the device gets it.
    pim.clock.advance(10)
    other = obm.Contact(first="Zed", last="Zulu")
    book = pim.double.contacts[uid].book
    created = pim.double.dispatch(
        "/obm-sync/services/book/storeContact",
        {
            "sid": [next(iter(pim.double.sessions))],
            "bookId": [str(book)],
            "contact": [obm.serialize(obm.write_contact(None, other)).decode()],
        },
    )
    assert created[0] == 200
    collection = pim.sync()
    (add,) = commands_of(collection, "Add")
    assert add.findtext(f"{{{A}}}ApplicationData/{{{C1}}}FirstName") == "Zed"

    pim.clock.advance(10)
    pim.sync([delete_command(server_id)])
    assert uid not in pim.double.contacts


def test_duplicate_add_from_the_same_device_is_ignored_op139() -> None:
    pim = contacts_pim()
    pim.sync()
    props = _props("Dup", "Licate", "dup@x.org")
    first = pim.sync([add_command("android-1", *props)])
    second = pim.sync([add_command("android-2", *props)])  # Android's new ClientId, same data
    ids = [responses_of(c, "Add")[0].findtext(f"{{{A}}}ServerId") for c in (first, second)]
    assert ids[0] == ids[1]
    assert len([c for c in pim.double.contacts.values() if c.contact.first == "Dup"]) == 1


def test_deleted_contact_can_be_added_again() -> None:
    pim = contacts_pim()
    pim.sync()
    props = _props("Re", "Born")
    sid = responses_of(pim.sync([add_command("a", *props)]), "Add")[0].findtext(f"{{{A}}}ServerId")
    pim.sync([delete_command(sid or "")])
    again = responses_of(pim.sync([add_command("b", *props)]), "Add")[0]
    assert again.findtext(f"{{{A}}}Status") == "1"
    assert again.findtext(f"{{{A}}}ServerId") != sid


def test_users_book_accepts_and_ignores_device_changes() -> None:
    pim = contacts_pim(book_id=-1)
    first = pim.sync()
    names = sorted(
        c.findtext(f"{{{A}}}ApplicationData/{{{C1}}}FirstName") or ""
        for c in commands_of(first, "Add")
    )
    assert names == ["Alice", "Bob"]
    bob_sid = next(
        c.findtext(f"{{{A}}}ServerId") or ""
        for c in commands_of(first, "Add")
        if c.findtext(f"{{{A}}}ApplicationData/{{{C1}}}FirstName") == "Bob"
    )
    before = len(pim.double.calls)
    answer = pim.sync(
        [
            add_command("n1", *_props("New", "Person")),
            change_command(bob_sid, E(C1, "FirstName", text="Robert")),
            delete_command(bob_sid),
        ]
    )
    assert [r.findtext(f"{{{A}}}Status") for r in responses_of(answer, "Add")] == ["1"]
    assert responses_of(answer, "Change") == [] and responses_of(answer, "Delete") == []
    writes = [c[1] for c in pim.double.calls[before:]]
    assert not {"storeContact", "modifyContact", "removeContact"} & set(writes)


def test_elements_outside_supported_are_ghosted() -> None:
    """MS-ASCMD 2.2.3.179: with Supported sent at SyncKey 0, an element the device does not
    manage keeps its server value when a Change leaves it out; a managed one left out is
    deleted (as for every element when Supported was not sent, see above)."""
    pim = contacts_pim()
    managed = tuple(f"{{{C1}}}{name}" for name in ("FirstName", "LastName", "Email1Address"))
    pim.sync(supported=managed)
    pim.clock.advance(10)
    added = pim.sync([add_command("c1", *_props("Ann", "Lee", "ann@x.org"))])
    server_id = responses_of(added, "Add")[0].findtext(f"{{{A}}}ServerId") or ""
    uid = int(server_id.split(":")[1])
    pim.clock.advance(10)
    pim.sync([change_command(server_id, E(C1, "FirstName", text="Anne"))])
    stored = pim.double.contacts[uid].contact
    assert stored.first == "Anne"
    assert stored.title == "CTO"  # JobTitle is not managed by the device: kept
    assert stored.last in (None, "")  # LastName is managed and was left out: deleted
    assert stored.emails == ()
