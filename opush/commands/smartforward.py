"""SmartForward (MS-ASCMD 2.2.1.19): forward; the server adds the original's text, attachments
and inline parts unless ReplaceMime.

Both request forms and every outcome are in `opush.commands.compose`.
"""

from __future__ import annotations

from lxml.etree import _Element

from opush.commands.compose import SMART_FORWARD, handle_compose
from opush.commands.context import CommandContext, CommandResult


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    return await handle_compose(ctx, request, SMART_FORWARD)
