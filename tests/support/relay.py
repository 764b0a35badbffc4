"""A TCP relay on loopback whose link can be cut the way a network fails: silently (no reset, no answer)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

from tests.support.processes import free_port


class Relay:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``upstream``. ``blackhole()`` stops carrying anything while keeping
    every connection open and accepting new ones (what a dead link or a dropped route looks like to a client: its
    requests hang until its own timeout); ``restore()`` closes those dead connections and carries traffic again."""

    def __init__(self, upstream: int, port: int | None = None) -> None:
        self.upstream = upstream
        self.port = port or free_port()
        self._dark = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def blackhole(self) -> None:
        self._dark.set()

    def restore(self) -> None:
        self._close_connections()
        self._dark.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._close_connections()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if self._dark.is_set():
                continue  # accepted, then never answered
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._dark.is_set():  # in the dark, bytes are swallowed: the peer hears nothing
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _close_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
