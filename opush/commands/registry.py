"""Command name -> handler: the only list of implemented EAS commands.

OPTIONS advertises exactly these keys (MS-ASProtocolCommands) and any other command is
answered 501, so adding a command is one line here plus its module.
"""

from __future__ import annotations

from opush.commands import provision, settings
from opush.commands.context import Handler

REGISTRY: dict[str, Handler] = {
    "Provision": provision.handle,
    "Settings": settings.handle,
}
