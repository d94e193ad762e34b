"""Command name -> handler: the only list of implemented EAS commands.

OPTIONS advertises exactly these keys (MS-ASProtocolCommands) and any other command is
answered 501, so adding a command is one line here plus its module.
"""

from __future__ import annotations

from opush.commands import (
    find,
    foldercreate,
    folderdelete,
    foldersync,
    folderupdate,
    getattachment,
    getitemestimate,
    itemoperations,
    meetingresponse,
    moveitems,
    ping,
    provision,
    resolverecipients,
    search,
    sendmail,
    settings,
    smartforward,
    smartreply,
    sync,
    validatecert,
)
from opush.commands.context import Handler

REGISTRY: dict[str, Handler] = {
    "Provision": provision.handle,
    "Settings": settings.handle,
    "Sync": sync.handle,
    "GetItemEstimate": getitemestimate.handle,
    "FolderSync": foldersync.handle,
    "FolderCreate": foldercreate.handle,
    "FolderUpdate": folderupdate.handle,
    "FolderDelete": folderdelete.handle,
    "ItemOperations": itemoperations.handle,
    "GetAttachment": getattachment.handle,
    "MoveItems": moveitems.handle,
    "Search": search.handle,
    "Find": find.handle,
    "Ping": ping.handle,
    "SendMail": sendmail.handle,
    "SmartReply": smartreply.handle,
    "SmartForward": smartforward.handle,
    "MeetingResponse": meetingresponse.handle,
    "ResolveRecipients": resolverecipients.handle,
    "ValidateCert": validatecert.handle,
}
