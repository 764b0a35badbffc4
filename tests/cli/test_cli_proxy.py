"""The CLI honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as the gateway guide (seed 001) tells operators to set
them: a real squid between the CLI and the control plane sees every connection while HTTPS_PROXY names it, and
none when NO_PROXY covers the control plane (in the guide's ``address:port`` form, or the address alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.gateway.squid import Squid, available, start_squid
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

PROXY_VARS = ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy")  # fmt: skip


@pytest.fixture(scope="module")
def squid(server: ServerProcess) -> Iterator[Squid]:
    if not available():
        pytest.fail("squid is not installed: `make system-deps` installs Debian's squid-openssl", pytrace=False)
    proxy = start_squid("unused.invalid", 1, also=("127.0.0.1", server.port))  # CONNECT to the control plane only
    yield proxy
    proxy.stop()


def _through(squid: Squid, server: ServerProcess) -> int:
    """How many CONNECTs to the control plane squid has carried."""
    return sum(1 for row in squid.access() if row["method"] == "CONNECT" and row["url"] == f"127.0.0.1:{server.port}")


def _cli(config: Path, **env: str) -> Cli:
    # Every proxy variable set, in both cases (an empty lower-case one unsets its upper-case twin, as in curl):
    # nothing leaks in from the machine running the tests.
    given = {**env, **{k.lower(): v for k, v in env.items()}}
    return Cli(config, {**dict.fromkeys(PROXY_VARS, ""), **given})


def test_the_cli_goes_through_https_proxy_unless_no_proxy_covers_the_control_plane(
    server: ServerProcess, squid: Squid, tmp_path: Path
) -> None:
    config = tmp_path / "config"  # one signed-in profile, run under each environment
    via = _cli(config, HTTPS_PROXY=squid.url, HTTP_PROXY=squid.url)
    before = _through(squid, server)
    assert via.login(server, server.admin["clientId"], server.admin["clientSecret"], "-o", "none").code == 0
    via.ok("group", "list", "-o", "none")
    assert _through(squid, server) >= before + 2  # the token request and the list, each a CONNECT

    for no_proxy in (f"127.0.0.1:{server.port}", "127.0.0.1"):  # the guide's address:port, and the address alone
        before = _through(squid, server)
        _cli(config, HTTPS_PROXY=squid.url, NO_PROXY=no_proxy).ok("group", "list", "-o", "none")
        assert _through(squid, server) == before, no_proxy

    # A proxy that is not there fails the command with one clear line: the proxy really is on the path.
    result = _cli(config, HTTPS_PROXY=f"http://127.0.0.1:{free_port()}").run("group", "list", "-o", "none")
    assert result.error.startswith("ERROR: ")
