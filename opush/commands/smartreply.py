"""SmartReply (MS-ASCMD 2.2.1.20): reply; the server quotes the original unless ReplaceMime.

Both request forms and every outcome are in `opush.commands.compose`.
"""

from __future__ import annotations

from lxml.etree import _Element

from opush.commands.compose import SMART_REPLY, handle_compose
from opush.commands.context import CommandContext, CommandResult


async def handle(ctx: CommandContext, request: _Element | None) -> CommandResult:
    return await handle_compose(ctx, request, SMART_REPLY)
