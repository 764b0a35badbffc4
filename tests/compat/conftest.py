"""Fixtures of the compatibility tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.helpers import RG_API, group_path, make_group
from tests.support.processes import ServerProcess


@pytest.fixture
def group(server: ServerProcess) -> Iterator[str]:
    """A resource group of the test's own, made and removed over plain HTTP so the clients' calls go to what is tested."""
    name = make_group(server)
    yield name
    with server.client() as client:
        client.delete(group_path(server, name), params=RG_API)
