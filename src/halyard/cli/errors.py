"""What the CLI shows when something fails: one ``ERROR: (Code) message`` line on stderr and an exit code."""

from __future__ import annotations


class CliError(Exception):
    """A failure the user can act on. ``code`` is the ARM (or OAuth) error code when there is one."""

    exit_code = 1

    def __init__(self, message: str, code: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def line(self) -> str:
        return f"ERROR: ({self.code}) {self.message}" if self.code else f"ERROR: {self.message}"


class UsageError(CliError):
    """The command line itself is wrong (as argparse's exit code 2 in az)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message, "UsageError")
