"""The Notes folder (MS-ASNOTE, 14.0+) as an ``ItemSource``: the IMAP folder mail_conf.ini
``imap.mailbox.notes`` names, one message per note (``opush.content.notes``).

Change detection is the mail folder's (CONDSTORE/QRESYNC or flag snapshots).  A note edited
on the device is written as a new message and the old one expunged, like a 16.x draft: the
engine keeps the device's ServerId on the new UID.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import attrs
from lxml.etree import _Element

from opush.backends.interfaces import MailError, MessageNotFound, MessageTooLarge
from opush.backends.mailsource import (
    CONVERSION_ERROR,
    NOT_FOUND,
    OK,
    MailItemSource,
    _is_atom,
    categories_of,
)
from opush.content.notes import Note, note_from_mime, note_to_mime, parse_note, render_note
from opush.log import logger
from opush.sync.interfaces import ClientChangeResult, RenderRequest

log = logger("opush.backends.notes")

#: Largest note read (a note is text; anything bigger is not one).
MAX_NOTE_BYTES = 4 * 1024 * 1024


class NoteItemSource(MailItemSource):
    item_class = "Notes"

    async def _note(self, uid: int, flags: frozenset[str] | None = None) -> Note | None:
        try:
            data = await self.store.fetch_body(self.folder, uid, max_size=MAX_NOTE_BYTES)
        except (MessageNotFound, MessageTooLarge):
            return None
        if flags is None:
            found = await self.store.fetch_summaries(self.folder, [uid])
            flags = found[0].flags if found else frozenset()
        return note_from_mime(data, categories_of(flags))

    async def render(
        self, item_ids: Sequence[str], request: RenderRequest
    ) -> dict[str, list[_Element]]:
        if request.version < (14, 0):
            return {}  # MS-ASNOTE starts at 14.0
        uids = [int(i) for i in item_ids if i.isdigit()]
        if not uids:
            return {}
        summaries = await self.store.fetch_summaries(self.folder, uids)
        out: dict[str, list[_Element]] = {}
        for s in summaries:
            if any(f.lower() == "\\deleted" for f in s.flags):
                continue
            note = await self._note(s.uid, s.flags)
            if note is None:
                continue
            if note.modified is None and s.internaldate is not None:
                note = attrs.evolve(note, modified=s.internaldate.astimezone(UTC))
            out[str(s.uid)] = render_note(note, request.options)
        return out

    async def _append(self, note: Note) -> int | None:
        flags = ["\\Seen", *(c for c in note.categories if _is_atom(c))]
        try:
            return await self.store.append(
                self.folder,
                note_to_mime(note, self.from_address),
                flags=flags,
                date=datetime.now(UTC),
            )
        except MailError as e:
            log.warn("note APPEND refused: {error}", error=e)
            return None

    async def apply_add(
        self, client_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        uid = await self._append(parse_note(data))
        if uid is None:
            return ClientChangeResult(CONVERSION_ERROR)
        return ClientChangeResult(OK, str(uid))

    async def apply_change(
        self, item_id: str, data: _Element, request: RenderRequest
    ) -> ClientChangeResult:
        if not item_id.isdigit():
            return ClientChangeResult(NOT_FOUND)
        uid = int(item_id)
        base = await self._note(uid)
        if base is None:
            return ClientChangeResult(NOT_FOUND)
        new = await self._append(parse_note(data, base))
        if new is None:
            return ClientChangeResult(CONVERSION_ERROR)
        await self.store.delete(self.folder, [uid], move_to_trash=False)
        return ClientChangeResult(OK, str(new))
