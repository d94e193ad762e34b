"""Email content: MIME messages <-> EAS email items (MS-ASEMAIL, MS-ASAIRS) and outgoing MIME.

Reading (Sync, ItemOperations Fetch, Search)::

    options = parse_options(collection_options_el)          # BodyPreference, MIMESupport, ...
    children = email_application_data(raw_bytes, ref=MessageRef("5", uid), flags=...,
                                      options=options, version="14.1")
    application_data.extend(children)

Sync fast path (no full fetch): build ``PartInfo``s from the IMAP BODYSTRUCTURE with
:func:`structure_from_bodystructure`, ask :func:`fetch_plan` which sections and how many bytes to
fetch, then pass a :class:`PartialMessage`.

Attachments: ``parse_file_reference(ref)`` then ``extract_attachment(message, ref.part)`` (or fetch
``BODY[<part>]`` and :func:`decode_transfer`).

Sending (SendMail, SmartReply, SmartForward): :func:`prepare_outgoing`, :func:`smart_reply`,
:func:`smart_forward` give an :class:`OutgoingMail` (envelope, bytes without Bcc, Sent copy).
"""

from opush.content.email.compose import (
    Identity,
    MessageTooLarge,
    OutgoingMail,
    prepare_outgoing,
    smart_forward,
    smart_reply,
)
from opush.content.email.convert import (
    FlagDetails,
    MailFlags,
    PartialMessage,
    email_application_data,
    fetch_plan,
    parse_version,
)
from opush.content.email.filereference import (
    FileReference,
    FileReferenceError,
    MessageRef,
    file_reference,
    parse_file_reference,
)
from opush.content.email.options import (
    BodyPreference,
    BodyType,
    EmailOptions,
    MimeSupport,
    parse_options,
)
from opush.content.email.structure import (
    PartInfo,
    PartNotFound,
    decode_transfer,
    extract_attachment,
    structure_from_bodystructure,
)

__all__ = [
    "BodyPreference",
    "BodyType",
    "EmailOptions",
    "FileReference",
    "FileReferenceError",
    "FlagDetails",
    "Identity",
    "MailFlags",
    "MessageRef",
    "MessageTooLarge",
    "MimeSupport",
    "OutgoingMail",
    "PartInfo",
    "PartNotFound",
    "PartialMessage",
    "decode_transfer",
    "email_application_data",
    "extract_attachment",
    "fetch_plan",
    "file_reference",
    "parse_file_reference",
    "parse_options",
    "parse_version",
    "prepare_outgoing",
    "smart_forward",
    "smart_reply",
    "structure_from_bodystructure",
]
