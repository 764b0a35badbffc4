"""Fetching a git repository into an artifact with the real ``git``, through asyncio subprocesses, bounded in time
and size so a large repository or a hung server fails the reconcile instead of stalling the simulator.

Every git process runs in a session of its own (a timeout kills its helpers too), with no user or system git
configuration, no terminal prompt, and credentials passed in the environment (``GIT_CONFIG_*``), never on a command
line another user could read. File size is bounded with ``prlimit --fsize`` (the fetched pack is kept as one file,
``transfer.unpackLimit=1``, so it bounds the repository; the archive is one file too).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from halyard.sim.flux import gitref


class GitError(Exception):
    """A git operation failed; ``reason`` is the Flux condition reason, the message what Ready says."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Auth:
    """HTTP(S) credentials from a GitRepository's ``secretRef`` (Flux's keys: username/password, bearerToken, ca.crt)."""

    username: str = ""
    password: str = ""
    bearer_token: str = ""
    ca_pem: bytes = b""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    timeout: float = 60.0


@dataclass
class Fetched:
    sha: str
    revision: str
    message: str  # the commit's subject line
    archive: Path  # a .tar.gz of the tree (no .git)
    extra: dict[str, str] = field(default_factory=dict)


def _config_env(auth: Auth, workdir: Path, url: str) -> dict[str, str]:
    pairs: list[tuple[str, str]] = [
        ("transfer.unpackLimit", "1"),
        ("fetch.unpackLimit", "1"),
        ("protocol.allow", "never"),
        ("protocol.file.allow", "always"),
        ("protocol.http.allow", "always"),
        ("protocol.https.allow", "always"),
        ("init.defaultBranch", "main"),
        ("advice.detachedHead", "false"),
    ]
    # Credentials only for the repository's own origin (git's URL-matched config): a redirect elsewhere gets none.
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}/"
    if auth.bearer_token:
        pairs.append((f"http.{origin}.extraHeader", f"Authorization: Bearer {auth.bearer_token}"))
    elif auth.username or auth.password:
        basic = base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()
        pairs.append((f"http.{origin}.extraHeader", f"Authorization: Basic {basic}"))
    if auth.ca_pem:
        ca = workdir / "ca.crt"
        ca.write_bytes(auth.ca_pem)
        pairs.append(("http.sslCAInfo", str(ca)))
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (k, v) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = k
        env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env


class GitRunner:
    """Runs git for one fetch: environment, limits, and a deadline shared by every step."""

    def __init__(self, git: str, workdir: Path, auth: Auth, limits: Limits, url: str = "") -> None:
        self.git = git
        self.workdir = workdir
        self.limits = limits
        home = workdir / "home"
        home.mkdir(exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LC_ALL": "C",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_SSH_COMMAND": "false",  # ssh is refused before this; never let git reach for the user's keys
            **_config_env(auth, workdir, url),
        }
        self.deadline = asyncio.get_running_loop().time() + limits.timeout
        self.prlimit = shutil.which("prlimit")

    async def run(self, *args: str, cwd: Path | None = None) -> str:
        """stdout of ``git args``; GitError with git's last stderr line on failure or timeout."""
        cmd = [self.git, *args]
        if self.prlimit:
            cmd = [self.prlimit, f"--fsize={self.limits.max_bytes}", "--", *cmd]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, cwd=cwd or self.workdir, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            raise GitError("GitOperationFailed", f"cannot run git ({self.git}): {e.strerror}") from None
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            out, err = await asyncio.wait_for(proc.communicate(), max(remaining, 0.01))
        except (TimeoutError, asyncio.CancelledError) as e:
            _kill(proc)
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
            if isinstance(e, asyncio.CancelledError):
                raise
            raise GitError("GitOperationFailed", f"timeout after {self.limits.timeout:g}s") from None
        if proc.returncode != 0:
            text = err.decode(errors="replace")
            # A file over the limit kills its writer with SIGXFSZ: git itself (archive), or the index-pack under a
            # fetch, which then only says its output was invalid.
            killed = proc.returncode == -signal.SIGXFSZ or "signal 25" in text or "File size limit" in text
            if killed or (self.prlimit and "index-pack" in text):
                raise GitError("GitOperationFailed", self.too_large())
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            raise GitError("GitOperationFailed", lines[-1] if lines else f"git exited with {proc.returncode}")
        return out.decode(errors="replace")

    def too_large(self) -> str:
        return (f"repository exceeds the simulator's size limit of {self.limits.max_bytes // (1024 * 1024)} MiB "
                "(halyard sim --flux-max-artifact-size)")  # fmt: skip


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / f).stat().st_size
    return total


async def ls_remote(runner: GitRunner, url: str) -> dict[str, str]:
    return gitref.parse_ls_remote(await runner.run("ls-remote", "--", url))


async def fetch(
    git: str, url: str, ref: dict[str, object] | None, auth: Auth, limits: Limits, dest: Path, last_sha: str = ""
) -> Fetched | str:
    """Fetch ``ref`` of ``url`` and write its tree as ``dest/<sha>.tar.gz``. Returns the revision alone (a str) when
    the remote still points at ``last_sha`` (nothing fetched, as source-controller's no-op clone)."""
    work = Path(tempfile.mkdtemp(prefix="halyard-flux-git-"))
    try:
        runner = GitRunner(git, work, auth, limits, url)
        try:
            refs = await ls_remote(runner, url)
            target = gitref.resolve(ref, refs)  # type: ignore[arg-type]
        except gitref.RefError as e:
            raise GitError("GitOperationFailed", f"unable to clone '{url}': {e}") from None
        except GitError as e:
            raise GitError(e.reason, f"unable to clone '{url}': {e}") from None
        if target.sha and target.sha == last_sha:
            return gitref.revision(target.label, target.sha)
        repo = work / "repo.git"
        await runner.run("init", "-q", "--bare", str(repo))
        fetch_args = ["fetch", "-q", "--no-tags"]
        if target.shallow:
            fetch_args.append("--depth=1")
        try:
            await runner.run(*fetch_args, "--", url, f"{target.fetch}", cwd=repo)
        except GitError as e:
            raise GitError(e.reason, f"unable to clone '{url}': {e}") from None
        sha = target.sha
        if target.shallow:
            sha = (await runner.run("rev-parse", "FETCH_HEAD^{commit}", cwd=repo)).strip()
        else:
            try:
                sha = (await runner.run("rev-parse", "--verify", "-q", f"{target.sha}^{{commit}}", cwd=repo)).strip()
            except GitError:
                raise GitError("GitOperationFailed",
                               f"unable to resolve commit object for '{target.sha}': object not found") from None  # fmt: skip
        if await asyncio.to_thread(_dir_size, repo) > limits.max_bytes:
            raise GitError("GitOperationFailed", runner.too_large())
        message = (await runner.run("log", "-1", "--format=%s", sha, cwd=repo)).strip()
        await asyncio.to_thread(dest.mkdir, parents=True, exist_ok=True)
        archive = dest / f"{sha}.tar.gz.tmp"
        await runner.run("archive", "--format=tar.gz", "-o", str(archive), sha, cwd=repo)
        final = dest / f"{sha}.tar.gz"
        archive.replace(final)
        return Fetched(sha, gitref.revision(target.label, sha), message, final)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()
