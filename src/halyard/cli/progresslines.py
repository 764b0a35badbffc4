"""Progress without a terminal: a line every so often while a long step runs, where a terminal gets a spinner.

A connect that waits twenty minutes for agents in CI or behind a pipe used to print nothing until it failed. A line
every half minute says the command is alive, what it waits for and for how long, without flooding a log (and short
steps, most of them, print nothing at all).
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType

EVERY_SECONDS = 30.0


class ProgressLines:
    """A context manager printing ``<label> .. <n> s`` to stderr every ``every`` seconds until it exits."""

    def __init__(self, label: str, every: float = EVERY_SECONDS) -> None:
        self.label = label
        self.every = every
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressLines:
        self._thread = threading.Thread(target=self._run, name="progress-lines", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self.every):
            print(f"{self.label} .. {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
