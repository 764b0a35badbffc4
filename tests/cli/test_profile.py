"""The configuration directory: owner-only files, round trips, concurrent writers, subscription lookup."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from halyard.cli.errors import CliError
from halyard.cli.profile import CachedToken, Profile, ProfileStore, Subscription, server_key

pytestmark = pytest.mark.unit


def profile(server: str = "https://127.0.0.1:8443") -> Profile:
    subs = [
        Subscription("11111111-0000-0000-0000-000000000000", "dev", "Enabled", "t", "t"),
        Subscription("22222222-0000-0000-0000-000000000000", "prod", "Enabled", "t", "t"),
    ]
    return Profile(server, "t", "app", "secret", "https://aud/", None, subs, subs[0].id)


def test_round_trip_and_owner_only_files(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "cfg")
    store.save(profile())
    store.set_current("https://127.0.0.1:8443")
    store.cache_token("https://127.0.0.1:8443", CachedToken("tok", 123.0))
    assert store.current() == profile()
    assert store.cached_token("https://127.0.0.1:8443") == CachedToken("tok", 123.0)
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700
    files = [p for p in (tmp_path / "cfg").rglob("*") if p.is_file()]
    assert len(files) == 3 and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert store.remove("https://127.0.0.1:8443") and store.load("https://127.0.0.1:8443") is None


def test_concurrent_commands_never_break_the_cache(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)

    def write(i: int) -> None:
        store.cache_token("https://h", CachedToken(f"t{i}", float(i)))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    cached = store.cached_token("https://h")
    assert cached is not None and cached.access_token == f"t{int(cached.expires_on)}"
    assert [p.name for p in (tmp_path / "tokens").iterdir()] == [f"{server_key('https://h')}.json"]


def test_subscription_lookup() -> None:
    p = profile()
    assert p.subscription(None).name == "dev"
    assert p.subscription("PROD").id.startswith("2222")
    assert p.subscription("22222222-0000-0000-0000-000000000000").name == "prod"
    with pytest.raises(CliError, match="Subscription 'nope' not found"):
        p.subscription("nope")


def test_not_logged_in_and_corrupt_files(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    with pytest.raises(CliError) as caught:
        store.current()
    assert caught.value.line() == "ERROR: (NotLoggedIn) Please run 'halyard login' to setup account."
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(CliError) as corrupt:
        store.current_server()
    assert corrupt.value.code == "ConfigCorrupt"


def test_server_keys_are_file_names() -> None:
    assert server_key("https://127.0.0.1:8443") == "127.0.0.1_8443"
    assert server_key("https://h.example/prefix/") == "h.example_prefix"
