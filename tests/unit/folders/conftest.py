"""Folder command tests run the handlers synchronously over MemoryState and FakeImap."""

from __future__ import annotations

import pytest

from tests.support.folders import FolderBench


@pytest.fixture
def bench() -> FolderBench:
    return FolderBench()
