"""Property-based fuzzing of the whole management API from its own OpenAPI document: no 5xx, ever, and every
documented response matches its schema. Runs against a server process of its own (it creates and deletes at will).
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from halyard.controlplane.app import create_app
from halyard.core.settings import Settings
from tests.support.processes import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# The document is what the server serves; building the app (without starting it) yields the same one.
_SPEC = create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="halyard-spec-")))).openapi()
schema = schemathesis.openapi.from_dict(_SPEC)
# One test per operation, named by it: schemathesis' own parametrize gives every item the same id, which a parallel
# run (pytest-xdist) cannot tell apart, and a failure report would not name the operation.
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", free_port()).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def admin_headers(fuzz_server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {fuzz_server.token()}"}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_server_errors_and_responses_match_the_schema(
    operation: Any, fuzz_server: ServerProcess, admin_headers: dict[str, str]
) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case: schemathesis.Case) -> None:
        # Half the cases aim at the real subscription so they reach the handlers, not only the 404s (chosen by a
        # stable checksum, so a failing case replays the same way).
        path_parameters = case.path_parameters or {}
        if "subscriptionId" in path_parameters and zlib.crc32(repr(path_parameters).encode()) % 2 == 0:
            path_parameters["subscriptionId"] = fuzz_server.admin["subscription"]
        headers = {**(case.headers or {}), **admin_headers}
        case.call_and_validate(
            base_url=fuzz_server.url,
            headers=headers,
            verify=fuzz_server.ca,
            checks=[not_a_server_error, response_schema_conformance],
        )

    check()
