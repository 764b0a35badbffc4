"""Rewriting the requests of one HTTP/1.1 connection on their way to the API server, sans I/O.

auth-proxy sees kubectl's bytes: requests, one after another on a keep-alive connection, then perhaps an upgrade
(exec, attach, port-forward) after which the connection is a byte stream. Each request head is rewritten (path
prefix stripped, credentials replaced, impersonation added); bodies pass through, re-chunked when they came
chunked; after an upgrade request every byte passes as is. Responses are never parsed: the upstream connection is
this connection's alone, so its bytes go back in order untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

MAX_HEAD = 64 * 1024
MAX_FIELDS = 200


class RewriteRefused(Exception):
    """A request that must not reach the API server: ``status`` and a Kubernetes Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


HeadRewriter = Callable[[str, str, list[tuple[str, str]]], tuple[str, list[tuple[str, str]]]]
"""(method, target, fields) → (target, fields) for the API server; raises RewriteRefused."""


class RequestRewriter:
    """Feed it what the client sent; it returns what to send upstream."""

    def __init__(self, rewrite: HeadRewriter) -> None:
        self._rewrite = rewrite
        self._parser = httptools.HttpRequestParser(self)
        self._out: list[bytes] = []
        self._url = bytearray()
        self._fields: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._chunked = False
        self.upgraded = False  # from here on bytes pass untouched
        self.requests = 0

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward for ``data``; RewriteRefused for a request that must be refused (stop the stream)."""
        if self.upgraded:
            return data
        self._out = []
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            self.upgraded = True
            self._out.append(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, RewriteRefused):
                raise cause from None
            raise RewriteRefused(400, "BadRequest", f"malformed request: {exc}") from None
        except httptools.HttpParserError as exc:
            raise RewriteRefused(400, "BadRequest", f"malformed request: {exc}") from None
        return b"".join(self._out)

    # httptools callbacks.
    def on_message_begin(self) -> None:
        self._url.clear()
        self._fields = []
        self._head_bytes = 0
        self._chunked = False

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self._fields) >= MAX_FIELDS:
            raise RewriteRefused(431, "RequestHeaderFieldsTooLarge", "too many header fields")
        self._count(len(name) + len(value))
        self._fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        method = self._parser.get_method().decode("latin-1")
        self._chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in self._fields)
        target, fields = self._rewrite(method, self._url.decode("latin-1"), self._fields)
        self.requests += 1
        lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields), "", ""]
        self._out.append("\r\n".join(lines).encode("latin-1"))

    def on_body(self, body: bytes) -> None:
        if self._chunked:
            self._out.append(b"%x\r\n%s\r\n" % (len(body), body))
        else:
            self._out.append(body)

    def on_message_complete(self) -> None:
        if self._chunked:
            self._out.append(b"0\r\n\r\n")

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD:
            raise RewriteRefused(431, "RequestHeaderFieldsTooLarge", "request headers too large")
