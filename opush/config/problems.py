"""Configuration problems: collected, never raised one at a time.

An administrator fixing a configuration wants every mistake in one run, each naming the file and
the key, so loaders append `Problem`s and `load()` raises one `ConfigError` at the end.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen
class Problem:
    """One thing wrong (or, as a warning, suspicious) in one file.

    ``key`` is the ini key, or None when the problem concerns the file or a malformed line
    (then ``line`` says where).  Messages never quote a value of a secret key.
    """

    file: str
    key: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        if self.key is not None:
            return f"{self.file}: key '{self.key}': {self.message}"
        if self.line is not None:
            return f"{self.file}: line {self.line}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason, in file order.

    ``warnings`` carries the warnings found in the same run, so a caller that stops on the error
    can still show them.
    """

    def __init__(self, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> None:
        self.problems: list[Problem] = list(problems)
        self.warnings: list[Problem] = list(warnings)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
