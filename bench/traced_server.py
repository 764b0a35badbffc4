"""``python -m halyard`` with tracemalloc on and a SIGUSR1 that writes what is allocated (by file and line) and the
live objects by type to ``$HALYARD_BENCH_TRACE_DIR/trace-N.json``: ``bench/longpoll_hold.py`` diffs two of them to
say where a held long poll's memory goes. A benchmark's tool only; the server itself has no such hook."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

from halyard.cli.main import main

_taken = 0


def _dump(_signum: int, _frame: FrameType | None) -> None:
    global _taken
    _taken += 1
    snapshot = tracemalloc.take_snapshot()
    by_line = {
        f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}": [stat.size, stat.count]
        for stat in snapshot.statistics("lineno")
    }
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    out = Path(os.environ["HALYARD_BENCH_TRACE_DIR"]) / f"trace-{_taken}.json"
    out.write_text(json.dumps({"lines": by_line, "types": dict(types), "traced": tracemalloc.get_traced_memory()}))


if __name__ == "__main__":
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, _dump)
    sys.argv[0] = "halyard"
    sys.exit(main())
