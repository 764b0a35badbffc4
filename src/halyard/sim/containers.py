"""What runs "inside" a simulated container: the commands ``kubectl exec`` can run, what ``kubectl attach`` attaches
to, and what listens on the ports ``kubectl port-forward`` reaches.

No processes and no sockets: a command is a coroutine that reads stdin and writes stdout/stderr through a
:class:`ProcessIO` (the exec session's streams), a port is a coroutine that reads and writes a :class:`ByteConn` (a
port-forward stream). Writers await the connection's flow control, so a fast producer cannot outrun a slow client.

The command set: ``echo [-n]``, ``cat`` (stdin to stdout until EOF), ``env``, ``hostname`` (the pod's name),
``true``, ``false``, ``sleep N``, ``pwd``, ``whoami`` and ``sh -c SCRIPT`` (``sh`` alone reads its script from
stdin), whose scripts may join commands with ``;``, ``&&``, ``||`` and ``|`` and use ``exit N``, ``>&2``, ``2>&1`` and
``> /dev/null``. Stages of a pipeline run one after the other, each reading what the previous one wrote. Anything
else is not found: exit 127 and the runtime's (or the shell's) message on stderr, as in a real container.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

STDOUT, STDERR = 1, 2
NOT_FOUND = 127


class ProcessIO(Protocol):
    async def read(self) -> bytes:
        """The next piece of stdin; ``b""`` at its end (at once when no stdin is attached)."""
        ...

    async def write(self, channel: int, data: bytes) -> None:
        """Write to stdout (1) or stderr (2); returns once the connection can take more."""
        ...


class ByteConn(Protocol):
    async def read(self) -> bytes:
        """What the client sent next; ``b""`` once it has finished sending."""
        ...

    async def write(self, data: bytes) -> None: ...


@dataclass
class Container:
    """The part of a pod an exec needs: names for ``hostname`` and the environment ``env`` prints."""

    pod: str
    namespace: str
    name: str
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": self.pod,
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "HOME": "/root",
            **self.env,
        }


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class _Buffered:
    """The I/O of one pipeline stage: stdin from the previous stage, stdout kept for the next."""

    def __init__(self, outer: ProcessIO, stdin: bytes | None, out_to: int | None, err_to: int | None) -> None:
        self.outer, self.stdin, self.out = outer, stdin, bytearray()
        self.capture = False
        self.out_to, self.err_to = out_to, err_to  # None: discarded; 1/2: that channel of the outer I/O

    async def read(self) -> bytes:
        if self.stdin is None:
            return await self.outer.read()
        data, self.stdin = self.stdin, b""
        return data

    async def write(self, channel: int, data: bytes) -> None:
        target = self.out_to if channel == STDOUT else self.err_to
        if target is None:
            return
        if target == STDOUT and self.capture:
            self.out += data
        else:
            await self.outer.write(target, data)


Builtin = Callable[[list[str], ProcessIO, Container], Awaitable[int]]


async def _echo(args: list[str], io: ProcessIO, c: Container) -> int:
    newline = not (args and args[0] == "-n")
    text = " ".join(args[1:] if not newline else args)
    await io.write(STDOUT, (text + ("\n" if newline else "")).encode())
    return 0


async def _cat(args: list[str], io: ProcessIO, c: Container) -> int:
    files = [a for a in args if a != "-"]
    if files:
        for f in files:
            await io.write(STDERR, f"cat: {f}: No such file or directory\n".encode())
        return 1
    while data := await io.read():
        await io.write(STDOUT, data)
    return 0


async def _env(args: list[str], io: ProcessIO, c: Container) -> int:
    await io.write(STDOUT, "".join(f"{k}={v}\n" for k, v in c.environment().items()).encode())
    return 0


def _constant(text: Callable[[Container], str]) -> Builtin:
    async def run(args: list[str], io: ProcessIO, c: Container) -> int:
        await io.write(STDOUT, (text(c) + "\n").encode())
        return 0

    return run


def _status(code: int) -> Builtin:
    async def run(args: list[str], io: ProcessIO, c: Container) -> int:
        return code

    return run


async def _sleep(args: list[str], io: ProcessIO, c: Container) -> int:
    try:
        seconds = float(args[0]) if args else -1
    except ValueError:
        seconds = -1
    if seconds < 0:
        await io.write(STDERR, b"sleep: invalid number\n")
        return 1
    await asyncio.sleep(seconds)
    return 0


BUILTINS: dict[str, Builtin] = {
    "echo": _echo,
    "cat": _cat,
    "env": _env,
    "hostname": _constant(lambda c: c.pod),
    "pwd": _constant(lambda c: "/"),
    "whoami": _constant(lambda c: "root"),
    "true": _status(0),
    "false": _status(1),
    "sleep": _sleep,
}
SHELLS = ("sh", "/bin/sh", "bash", "/bin/bash", "ash", "/bin/ash")


def _builtin(name: str) -> Builtin | None:
    return BUILTINS.get(name.rsplit("/", 1)[-1] if name.startswith(("/bin/", "/usr/bin/")) else name)


async def run_command(argv: list[str], io: ProcessIO, container: Container, *, tty: bool = False) -> int:
    """Run an exec's command line (no shell unless it names one); returns its exit status."""
    if tty:
        io = _Terminal(io)
    if not argv:
        await io.write(STDERR, b"OCI runtime exec failed: exec failed: no command given: unknown\n")
        return NOT_FOUND
    if argv[0] in SHELLS:
        if len(argv) >= 3 and argv[1] == "-c":
            return await run_script(argv[2], io, container)
        if len(argv) == 1:
            return await _interactive(io, container, tty)
        await io.write(STDERR, f"{argv[0]}: can't open '{argv[1]}': No such file or directory\n".encode())
        return NOT_FOUND
    run = _builtin(argv[0])
    if run is None:
        await io.write(STDERR, f'OCI runtime exec failed: exec failed: unable to start container process: exec: '
                       f'"{argv[0]}": executable file not found in $PATH: unknown\n'.encode())  # fmt: skip
        return NOT_FOUND
    return await run(argv[1:], io, container)


class _Terminal:
    """A terminal's output side: the pty turns each newline into CR LF (``onlcr``)."""

    def __init__(self, io: ProcessIO) -> None:
        self.io = io

    async def read(self) -> bytes:
        return await self.io.read()

    async def write(self, channel: int, data: bytes) -> None:
        await self.io.write(STDOUT, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


async def _interactive(io: ProcessIO, container: Container, tty: bool) -> int:
    """``sh`` without ``-c``: runs each line of stdin as it arrives; on a terminal with a prompt, echo and line
    editing (backspace, Ctrl-C, Ctrl-D), since kubectl puts the local terminal in raw mode."""
    prompt = b"/ # " if tty else b""
    line = bytearray()
    status = 0
    await io.write(STDOUT, prompt)
    while True:
        data = await io.read()
        if not data:
            break
        for byte in data:
            ch = bytes([byte])
            if tty and ch in (b"\x7f", b"\x08"):
                if line:
                    line.pop()
                    await io.write(STDOUT, b"\x08 \x08")
                continue
            if tty and ch == b"\x03":
                line.clear()
                await io.write(STDOUT, b"^C\n" + prompt)
                continue
            if tty and ch == b"\x04":
                if not line:
                    await io.write(STDOUT, b"\n")
                    return status
                continue
            if ch in (b"\r", b"\n"):
                if tty:
                    await io.write(STDOUT, b"\n")
                try:
                    status = await _run_lists(line.decode(errors="replace"), _NoStdin(io), container, status)
                except _Exit as e:
                    return e.code
                line.clear()
                await io.write(STDOUT, prompt)
                continue
            line += ch
            if tty:
                await io.write(STDOUT, ch)
    try:
        return await _run_lists(line.decode(errors="replace"), _NoStdin(io), container, status)
    except _Exit as e:
        return e.code


class _NoStdin:
    def __init__(self, io: ProcessIO) -> None:
        self.io = io

    async def read(self) -> bytes:
        return b""

    async def write(self, channel: int, data: bytes) -> None:
        await self.io.write(channel, data)


def parse_script(script: str) -> list[tuple[str, list[list[str]]]]:
    """``a | b && c; d`` into [("", [a, b]), ("&&", [c]), (";", [d])]: each pipeline with the operator before it."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|>")
    lexer.whitespace_split = True
    out: list[tuple[str, list[list[str]]]] = []
    op, pipeline, words = "", [], []  # type: ignore[var-annotated]
    for tok in lexer:
        if tok in (";", "&&", "||", "\n"):
            if words:
                pipeline.append(words)
            if pipeline:
                out.append((op, pipeline))
            op, pipeline, words = tok, [], []
        elif tok == "|":
            pipeline.append(words)
            words = []
        else:
            words.append(tok)
    if words:
        pipeline.append(words)
    if pipeline:
        out.append((op, pipeline))
    return out


async def run_script(script: str, io: ProcessIO, container: Container) -> int:
    """A tiny POSIX-shell subset: sequences, and/or lists, pipelines, ``exit``, a few redirections."""
    try:
        return await _run_lists(script, io, container)
    except _Exit as e:
        return e.code


async def _run_lists(script: str, io: ProcessIO, container: Container, status: int = 0) -> int:
    """Run a script's lists; ``exit`` raises :class:`_Exit` (a shell reading lines must stop, not go on)."""
    try:
        lists = parse_script(script)
    except ValueError as e:
        await io.write(STDERR, f"sh: syntax error: {e}\n".encode())
        return 2
    for op, pipeline in lists:
        if (op == "&&" and status != 0) or (op == "||" and status == 0):
            continue
        status = await _pipeline(pipeline, io, container)
    return status


async def _pipeline(stages: list[list[str]], io: ProcessIO, container: Container) -> int:
    stdin: bytes | None = None  # the first stage reads the exec's stdin
    status = 0
    for i, words in enumerate(stages):
        words, out_to, err_to = _redirections(words)
        stage = _Buffered(io, stdin, out_to, err_to)
        stage.capture = i < len(stages) - 1
        status = await _simple(words, stage, container)
        stdin = bytes(stage.out)
    return status


def _redirections(words: list[str]) -> tuple[list[str], int | None, int | None]:
    out_to: int | None = STDOUT
    err_to: int | None = STDERR
    rest: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == ">&" and i + 1 < len(words):
            fd = rest.pop() if rest and rest[-1] in ("1", "2") else "1"
            target = STDERR if words[i + 1] == "2" else STDOUT
            if fd == "1":
                out_to = target
            else:
                err_to = out_to if target == STDOUT else STDERR
            i += 2
            continue
        if w == ">" and i + 1 < len(words):
            fd = rest.pop() if rest and rest[-1] in ("1", "2") else "1"
            if fd == "1":
                out_to = None
            else:
                err_to = None
            i += 2  # only /dev/null makes sense: there is no file system to write to
            continue
        rest.append(w)
        i += 1
    return rest, out_to, err_to


async def _simple(words: list[str], io: ProcessIO, container: Container) -> int:
    if not words:
        return 0
    if words[0] == "exit":
        try:
            raise _Exit(int(words[1]) & 0xFF if len(words) > 1 else 0)
        except ValueError:
            await io.write(STDERR, f"sh: exit: Illegal number: {words[1]}\n".encode())
            raise _Exit(2) from None
    if words[0] in SHELLS:
        return await run_command(words, io, container)
    run = _builtin(words[0])
    if run is None:
        await io.write(STDERR, f"sh: {words[0]}: not found\n".encode())
        return NOT_FOUND
    return await run(words[1:], io, container)


# ---- attach: the container's main process
async def attached_process(io: ProcessIO, container: str, stdin: bool, interval: float = 1.0,
                           first: int = 1) -> int:  # fmt: skip
    """What ``kubectl attach`` sees: the main process writes a line a second (the lines ``logs -f`` shows) and
    echoes what it reads on stdin; it ends (status 0) when an attached stdin closes, else when the client leaves."""
    n = first

    async def heartbeat() -> None:
        nonlocal n
        while True:
            await asyncio.sleep(interval)
            await io.write(STDOUT, f"[{container}] heartbeat {n}\n".encode())
            n += 1

    beat = asyncio.create_task(heartbeat())
    try:
        if not stdin:
            await beat
        while data := await io.read():
            await io.write(STDOUT, data)
        return 0
    finally:
        beat.cancel()


# ---- port-forward: what listens on a container's ports
HTTP_PORTS = (80, 8080)


async def serve_port(port: int, conn: ByteConn, pod: str) -> None:
    """Ports 80 and 8080 answer HTTP with a fixed body; every other port echoes what it receives."""
    if port in HTTP_PORTS:
        await _http(conn, pod, port)
        return
    while data := await conn.read():
        await conn.write(data)


async def _http(conn: ByteConn, pod: str, port: int) -> None:
    buf = bytearray()
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            data = await conn.read()
            if not data:
                return
            buf += data
            end = buf.find(b"\r\n\r\n")
        head, rest = bytes(buf[:end]).decode("latin-1"), buf[end + 4 :]
        lines = head.split("\r\n")
        method = lines[0].split(" ")[0]
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
            if name.strip().lower() == "connection" and value.strip().lower() == "close":
                close = True
        while len(rest) < length:  # a request body is read and ignored
            data = await conn.read()
            if not data:
                return
            rest += data
        buf = bytearray(rest[length:])
        body = f"Hello from {pod}, port {port} (a halyard sim container)\n".encode()
        head_out = (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
                    f"Server: halyard-sim\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")  # fmt: skip
        await conn.write(head_out.encode() + (body if method != "HEAD" else b""))
        if close:
            return
