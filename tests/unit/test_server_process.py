"""The test harness's server process: one that never became ready is not left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, free_port


def _running_with(data_dir: Path) -> list[int]:
    """Processes whose command line names ``data_dir`` (read from /proc, this machine being Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in cmdline.split(b"\0"):
            found.append(int(entry.name))
    return found


def test_a_server_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port())
    with pytest.raises(TimeoutError, match="not ready"):
        server.start(timeout=0)  # no server answers /readyz at once
    assert server.proc is None
    assert _running_with(tmp_path / "data") == []
