"""``python -m halyard`` with tracemalloc on and a SIGUSR1 that writes what is allocated (by file and line) and the
live objects by type to ``$HALYARD_BENCH_TRACE_DIR/trace-N.json``: ``bench/longpoll_hold.py`` diffs two of them to
say where a held long poll's memory goes. SIGUSR2 asks glibc to return the free memory it holds (``malloc_trim``):
what RSS then loses was fragmentation, not live objects. A benchmark's tool only; the server itself has no such
hooks. ``HALYARD_BENCH_TRACE=0``: the hooks without tracemalloc (its own cost kept out of RSS)."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType

from halyard.cli.main import main

_taken = 0


def _dump(_signum: int, _frame: FrameType | None) -> None:
    global _taken
    _taken += 1
    by_line = {}
    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        by_line = {
            f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}": [stat.size, stat.count]
            for stat in snapshot.statistics("lineno")
        }
    objects = gc.get_objects()
    types = Counter(type(o).__qualname__ for o in objects)
    del objects
    started = time.perf_counter()
    gc.collect()  # what a full collection now stops the event loop for
    full_ms = (time.perf_counter() - started) * 1000
    out = Path(os.environ["HALYARD_BENCH_TRACE_DIR"]) / f"trace-{_taken}.json"
    out.write_text(
        json.dumps(
            {"lines": by_line, "types": dict(types), "traced": tracemalloc.get_traced_memory(),
             "tracked_objects": sum(types.values()), "full_collection_ms": round(full_ms, 1)}
        )
    )  # fmt: skip


def _trim(_signum: int, _frame: FrameType | None) -> None:
    ctypes.CDLL("libc.so.6").malloc_trim(0)


if __name__ == "__main__":
    if os.environ.get("HALYARD_BENCH_TRACE", "1") != "0":
        tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, _dump)
    signal.signal(signal.SIGUSR2, _trim)
    sys.argv[0] = "halyard"
    sys.exit(main())
