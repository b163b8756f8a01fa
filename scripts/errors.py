"""The one error a command raises to stop with a message instead of a traceback."""

from __future__ import annotations


class CommandError(Exception):
    """A problem the user can fix; ``main`` prints it as one line and exits non-zero."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
