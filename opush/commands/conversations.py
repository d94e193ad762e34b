"""The mails of one conversation (MS-ASCON: ConversationId), for Search on a ConversationId
(MS-ASCMD 2.2.3.35.2) and the conversation Move of ItemOperations (2.2.3.117.1).

The ConversationId names a thread (``opush.content.email.conversations``); its mails are
found with one IMAP SEARCH per folder (the thread's root Message-ID in Message-ID, References
or In-Reply-To, or the subject topic) and then checked exactly by recomputing each
candidate's ConversationId.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import attrs

from opush.backends.interfaces import MailboxNotFound, MailStore, SearchQuery
from opush.content.email.conversations import THREADS, Thread, thread_of
from opush.content.email.headers import HeaderView
from opush.log import logger

log = logger("opush.commands.conversations")

#: Candidates checked per folder (a thread is rarely longer; a topic match may be).
MAX_CANDIDATES = 500
#: Where a ConversationId this process never handed out is looked for.
SCAN_DAYS = 60
SCAN_PER_FOLDER = 1000


@attrs.frozen
class ConversationMail:
    collection_id: str
    folder: str
    uid: int
    received: datetime | None


async def _scan(
    store: MailStore, folders: Sequence[tuple[str, str]], conversation_id: bytes
) -> Thread | None:
    """The thread behind ``conversation_id`` among recent mail (after a restart, or an id
    from another opush node)."""
    since = (datetime.now(UTC) - timedelta(days=SCAN_DAYS)).date()
    for _, folder in folders:
        try:
            uids = await store.search(folder, SearchQuery(since=since))
            summaries = await store.fetch_summaries(
                folder, sorted(uids, reverse=True)[:SCAN_PER_FOLDER], headers=True
            )
        except MailboxNotFound:
            continue
        for s in summaries:
            thread = thread_of(HeaderView.from_bytes(s.headers or b""))
            THREADS.remember(thread)
            if thread.conversation_id == conversation_id:
                return thread
    return None


async def conversation_mails(
    store: MailStore, folders: Sequence[tuple[str, str]], conversation_id: bytes
) -> list[ConversationMail]:
    """Every mail of the conversation in ``folders`` ((collection id, IMAP folder) pairs),
    newest first."""
    thread = THREADS.get(conversation_id) or await _scan(store, folders, conversation_id)
    if thread is None:
        log.info("ConversationId {c} not found", c=conversation_id.hex())
        return []
    query = (
        SearchQuery(thread=thread.message_id)
        if thread.message_id is not None
        else SearchQuery(subject=thread.topic or "")
    )
    found = await store.search_folders([f for _, f in folders], query)
    out: list[ConversationMail] = []
    for collection_id, folder in folders:
        uids = sorted(found.get(folder, ()), reverse=True)[:MAX_CANDIDATES]
        if not uids:
            continue
        try:
            summaries = await store.fetch_summaries(folder, uids, headers=True)
        except MailboxNotFound:
            continue
        for s in summaries:
            if thread_of(HeaderView.from_bytes(s.headers or b"")) != thread:
                continue
            received = s.internaldate.astimezone(UTC) if s.internaldate else None
            out.append(ConversationMail(collection_id, folder, s.uid, received))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    out.sort(key=lambda m: (m.received or epoch, m.uid), reverse=True)
    return out
