"""The private endpoint forwarder: listens on the endpoint's address and carries each connection to the control
plane's endpoint ingress over mutual TLS (the endpoint's certificate), announced by a PROXY v2 header naming the
endpoint and the original client. The agents' own TLS runs inside, end to end to the control plane."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass

from halyard.core import proxyv2

log = logging.getLogger(__name__)
CHUNK = 256 * 1024


@dataclass(frozen=True)
class Forwarder:
    listen: tuple[str, int]
    ingress: tuple[str, int]
    endpoint_id: str
    context: ssl.SSLContext

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        server = await asyncio.start_server(self._connection, *self.listen, limit=CHUNK)
        log.info("endpoint forwarder listening", extra={"address": f"{self.listen[0]}:{self.listen[1]}"})
        if ready is not None:
            ready.set()
        async with server:
            await server.serve_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self.ingress, ssl=self.context, server_hostname=self.ingress[0], limit=CHUNK
            )
        except (OSError, ssl.SSLError) as exc:
            log.warning("control plane ingress unreachable", extra={"error": str(exc)})
            writer.close()
            return
        up_writer.write(proxyv2.encode(peer[:2], local[:2], {proxyv2.TLV_ENDPOINT: self.endpoint_id.encode()}))
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()


def client_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Mutual TLS to the ingress: the control plane's CA trusted, the endpoint's certificate presented."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
