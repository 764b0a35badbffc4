"""Files that hold secrets: written whole, atomically, readable only by their owner."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write a file readable only by its owner, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temporary of its own (mkstemp: unique name, mode 0600) so concurrent writers never share one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def make_private_tree(root: Path) -> list[str]:
    """Make ``root`` a directory only its owner can enter (0700), and every file under it owner-only (0600; a
    directory 0700). Returns what had to be changed (relative paths, with the mode found), for the caller to say so.

    A data directory holds the database (every resource, assignment and secret hash), the sealing key and the TLS
    key. Created under the usual umask (022) it was 0755 and its files 0644: readable by any local user.
    """
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    changed: list[str] = []
    for path in [root, *sorted(root.rglob("*"))]:
        if path.is_symlink():
            continue  # a link's own mode means nothing; its target is checked where it lives, if under root
        want = 0o700 if path.is_dir() else 0o600
        mode = path.stat().st_mode & 0o777
        if mode & ~want:  # anything beyond the owner's own bits
            os.chmod(path, mode & want)
            changed.append(f"{path.relative_to(root).as_posix() or '.'} was {mode:04o}")
    return changed
