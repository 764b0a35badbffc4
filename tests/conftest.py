"""Fixtures shared by the whole suite. Every process a test starts is stopped by the fixture that started it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ServerProcess, free_port


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One control plane on SQLite for the session (tests create their own resource groups)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data", free_port()).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A control plane of the test's own, for tests that restart, kill or reconfigure it."""
    proc = ServerProcess(tmp_path / "data", free_port())
    yield proc
    proc.stop()
