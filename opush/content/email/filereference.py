"""FileReference: the opaque attachment id a device hands back to ItemOperations Fetch and
GetAttachment (MS-ASAIRS 2.2.2.24.1; MS-ASCMD 2.2.1.7 AttachmentName).

Form: ``<collectionId>:<imap uid>:<section>`` percent-encoded as one URL component, the way
Exchange writes its own (``5%3a1%3a0`` in the corpus), so it survives a query string as is.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import attrs


class FileReferenceError(ValueError):
    """Not one of our FileReferences (MS-ASCMD ItemOperations Status 15 / GetAttachment 500)."""


@attrs.frozen
class MessageRef:
    """Where a message lives: the device's collection id and the IMAP UID."""

    collection_id: str
    uid: int


@attrs.frozen
class FileReference:
    collection_id: str
    uid: int
    part: str  # IMAP section, "1", "2.1", ...

    def encode(self) -> str:
        return quote(f"{self.collection_id}:{self.uid}:{self.part}", safe="")


_SECTION = re.compile(r"^\d+(\.\d+)*$")


def file_reference(ref: MessageRef, part: str) -> str:
    return FileReference(ref.collection_id, ref.uid, part).encode()


def parse_file_reference(value: str) -> FileReference:
    """Parse a FileReference, once or twice percent-encoded (devices re-encode query values)."""
    text = value.strip()
    for _ in range(3):
        if "%" not in text:
            break
        text = unquote(text)
    pieces = text.rsplit(":", 2)
    if len(pieces) != 3:
        raise FileReferenceError(f"not a file reference: {value!r}")
    collection_id, uid_text, part = pieces
    if not collection_id or not uid_text.isdigit() or not _SECTION.match(part):
        raise FileReferenceError(f"not a file reference: {value!r}")
    uid = int(uid_text)
    if uid < 1:
        raise FileReferenceError(f"not a file reference: {value!r}")
    return FileReference(collection_id, uid, part)
