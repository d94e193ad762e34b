"""ConversationId (MS-ASCON 2.2.2.3) and the way back from it to a thread.

A conversation is identified by the MD5 of the thread's first Message-ID (from References,
In-Reply-To or the message's own Message-ID), or of the subject without Re:/Fwd: prefixes
when a message names no Message-ID at all.  The hash cannot be reversed, so the threads of
ConversationIds handed to devices are remembered (bounded, in memory): a Search on a
ConversationId (MS-ASCMD 2.2.3.35.2) or a conversation ItemOperations Move then turns into
an IMAP SEARCH for that Message-ID (or subject).  A ConversationId this process never handed
out is looked for among recent mail (``opush.commands.conversations``).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict

import attrs

from opush.content.email.headers import HeaderView, thread_topic

_MSGID = re.compile(r"<[^<>\s]+>")


@attrs.frozen
class Thread:
    """What a ConversationId stands for: a root Message-ID, or a subject topic."""

    message_id: str | None = None
    topic: str | None = None

    @property
    def conversation_id(self) -> bytes:
        if self.message_id is not None:
            return hashlib.md5(self.message_id.encode("utf-8", "surrogateescape")).digest()
        return hashlib.md5((self.topic or "").encode("utf-8")).digest()


def thread_of(headers: HeaderView) -> Thread:
    for name in ("references", "in-reply-to", "message-id"):
        raw = headers.raw(name)
        if raw:
            ids = _MSGID.findall(raw)
            if ids:
                return Thread(message_id=ids[0])
    return Thread(topic=thread_topic(headers.text("subject") or ""))


class ThreadIndex:
    """ConversationId -> Thread of the most recent ``size`` conversations seen (a few MB;
    older ones are found again among recent mail)."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._threads: OrderedDict[bytes, Thread] = OrderedDict()

    def remember(self, thread: Thread) -> bytes:
        key = thread.conversation_id
        if key in self._threads:
            self._threads.move_to_end(key)
        else:
            self._threads[key] = thread
            if len(self._threads) > self.size:
                self._threads.popitem(last=False)
        return key

    def get(self, conversation_id: bytes) -> Thread | None:
        return self._threads.get(conversation_id)


#: The process's index, fed by every rendered mail.
THREADS = ThreadIndex()


def conversation_id(headers: HeaderView) -> bytes:
    """16 bytes shared by a thread (MS-ASCON 2.2.2.3); the thread is remembered."""
    return THREADS.remember(thread_of(headers))
