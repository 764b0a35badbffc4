"""The endpoint ingress's transport towards the agent: one turn of the loop's writes leave as one write (one TLS
record through the forwarder), in order, and nothing written before a close is lost."""

from __future__ import annotations

import asyncio

from halyard.controlplane.privatelink.ingress import BULK, _Coalescing


class _Recorded(asyncio.Transport):
    """A transport that keeps what it was asked to do."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 1)}.get(name, default)


def test_a_turns_writes_leave_as_one_and_a_close_flushes_first() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        inner = _Recorded()
        marked = _Coalescing(inner, ("pe:x", 0), ("10.1.0.9", 4000))
        assert marked.get_extra_info("sockname") == ("pe:x", 0)
        assert marked.get_extra_info("peername") == ("10.1.0.9", 4000)
        marked.write(b"HTTP/1.1 200 OK\r\n\r\n")
        marked.write(b"{}")
        assert inner.calls == [] and marked.get_write_buffer_size() == 21
        await asyncio.sleep(0)
        marked.write(b"x" * BULK)  # a stream's chunk, nothing waiting: at once
        marked.write(b"later")
        marked.write(b"y" * BULK)  # behind a small write: in order
        marked.close()
        return inner.calls

    assert asyncio.run(scenario()) == [
        ("write", b"HTTP/1.1 200 OK\r\n\r\n{}"),
        ("write", b"x" * BULK),
        ("write", b"later" + b"y" * BULK),
        ("close", b""),
    ]


def test_an_abort_drops_what_waits() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        inner = _Recorded()
        marked = _Coalescing(inner, ("pe:x", 0), None)
        marked.write(b"lost")
        marked.abort()
        await asyncio.sleep(0)
        return inner.calls

    assert asyncio.run(scenario()) == [("abort", b"")]
