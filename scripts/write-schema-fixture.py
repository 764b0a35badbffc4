#!/usr/bin/env python3
"""Write the upgrade-test fixture of a schema revision: tests/storage/released/<revision>/.

    .venv/bin/python scripts/write-schema-fixture.py 0003

The data is written by the server of that revision itself: the source of the last commit whose newest migration
is <revision> (the parent of the commit that added the next migration, or HEAD when <revision> is the newest) is
taken out of git and run, on SQLite, with this checkout's virtual environment; tests/storage/released.py makes the
data through its API and keeps every row. Commit the directory it writes; tests/storage/test_upgrades.py then
upgrades it, on SQLite and PostgreSQL, with every later server. Run it once per new migration, after committing it.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.storage.released import HOLD_IN_FLIGHT, IN_FLIGHT, LEASE_SECONDS, RELEASED, dump, populate  # noqa: E402
from tests.support.processes import ServerProcess, free_port  # noqa: E402

VERSIONS = "src/halyard/store/migrations/versions"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def migrations(commit: str) -> dict[str, tuple[str | None, str]]:
    """revision -> (down_revision, file) of the migrations at ``commit``."""
    found: dict[str, tuple[str | None, str]] = {}
    for path in git("ls-tree", "--name-only", f"{commit}:{VERSIONS}").splitlines():
        if not path.endswith(".py") or path == "__init__.py":
            continue
        values = {}
        for node in ast.parse(git("show", f"{commit}:{VERSIONS}/{path}")).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("revision", "down_revision"):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
        found[values["revision"]] = (values.get("down_revision"), f"{VERSIONS}/{path}")
    return found


def head(found: dict[str, tuple[str | None, str]]) -> str:
    parents = {down for down, _ in found.values()}
    (newest,) = [rev for rev in found if rev not in parents]
    return newest


def writer_commit(revision: str) -> str:
    """The last commit whose newest migration is ``revision``."""
    now = migrations("HEAD")
    if revision not in now:
        sys.exit(f"no migration {revision} in {VERSIONS} at HEAD (have: {', '.join(sorted(now))})")
    following = [rev for rev, (down, _) in now.items() if down == revision]
    if not following:
        return git("rev-parse", "HEAD")
    added = git("log", "--diff-filter=A", "--format=%H", "--", now[following[0]][1]).splitlines()
    commit = git("rev-parse", f"{added[-1]}^")
    assert head(migrations(commit)) == revision, f"{commit}'s newest migration is not {revision}"
    return commit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision")
    args = parser.parse_args()
    commit = writer_commit(args.revision)
    target = RELEASED / args.revision
    with tempfile.TemporaryDirectory(prefix="halyard-schema-fixture-") as tmp:
        work = Path(tmp)
        archive = work / "src.tar"
        subprocess.run(["git", "archive", "-o", str(archive), commit, "src"], cwd=ROOT, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
        old_src = work / "src"
        env = {"PYTHONPATH": str(old_src)}
        ran = subprocess.run([sys.executable, "-c", "import halyard; print(halyard.__file__)"],
                             env={**os.environ, **env}, capture_output=True, text=True, check=True)  # fmt: skip
        assert ran.stdout.strip().startswith(str(old_src)), f"the server would not run {commit}'s code: {ran.stdout}"

        server = ServerProcess(work / "data", free_port(), env=env).start()
        try:
            store = server.data_dir / "halyard.db"
            with sqlite3.connect(store) as db:
                db.execute(HOLD_IN_FLIGHT)
            written = populate(server.url, server.ca, server.admin, server.token())
        finally:
            server.stop()
        stopped = dt.datetime.now(dt.UTC)
        with sqlite3.connect(store) as db:
            db.execute("DROP TRIGGER fixture_hold")
            # The lease its worker would have left, had it claimed them the moment it stopped.
            lease = (stopped + dt.timedelta(seconds=LEASE_SECONDS)).strftime("%Y-%m-%d %H:%M:%S.%f")
            db.execute(
                "UPDATE operations SET lease_until = ? WHERE status = 'InProgress' AND target_id LIKE ?",
                (lease, f"%{IN_FLIGHT}%"),
            )
        rows = dump(store)
        (version,) = rows.pop("alembic_version")
        assert version["version_num"] == args.revision, version

        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        (target / "rows.json").write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
        meta = {"revision": args.revision, "commit": commit, "writtenAt": stopped.isoformat()}
        (target / "written.json").write_text(json.dumps({**meta, **written}, indent=2) + "\n")
        for name in ("data.key", "admin.json"):
            shutil.copy(server.data_dir / name, target / name)
    counts = ", ".join(f"{table} {len(r)}" for table, r in rows.items() if r)
    print(f"{target.relative_to(ROOT)}: written by {commit[:10]}; rows: {counts}")


if __name__ == "__main__":
    main()
