"""GetAttachment (MS-ASCMD 2.2.1.7): the raw bytes of one attachment, 12.x devices.

The attachment is named by the ``AttachmentName`` URI parameter (plain or base64 query), which
is the FileReference our Sync/ItemOperations answers carry (``collectionId:uid:section``,
``opush.content.email.filereference``).  The answer is the decoded attachment with its own
Content-Type, no WBXML.  GetAttachment has no status element: failures are HTTP codes, and
MS-ASCMD 2.2.1.7 answers an attachment that cannot be retrieved with 500 (as the Java Opush
did); a backend that is down is the usual retryable 503 from ``opush.http.errors``.
From 14.0 on devices use ItemOperations Fetch instead; older ones still reach this handler.
"""

from __future__ import annotations

from lxml.etree import _Element

from opush.commands.context import CommandContext, CommandResult
from opush.commands.itemoperations import fetch_attachment
from opush.content.email import FileReferenceError, PartNotFound
from opush.http.errors import HttpError


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    name = ctx.params.get("AttachmentName")
    if not name:
        raise HttpError(400, "GetAttachment without AttachmentName")
    try:
        attachment = await fetch_attachment(ctx, name)
    except FileReferenceError as e:
        raise HttpError(500, f"not an attachment of this device: {e}") from None
    except PartNotFound:
        raise HttpError(500, f"attachment {name!r} no longer exists") from None
    return CommandResult.data(attachment.data, attachment.content_type)
