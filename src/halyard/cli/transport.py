"""The CLI's HTTP session: which CA to trust, what ``--debug`` shows, and network failures as clear errors."""

from __future__ import annotations

import os
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from halyard.cli.errors import CliError

CA_BUNDLE_ENV = "REQUESTS_CA_BUNDLE"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# Query parameters whose values must never reach a log line.
_SECRET_PARAMS = ("sig", "token", "code", "client_secret", "password")


def tls_verify(ca_cert: str | None) -> str | bool:
    """``--ca-cert``, else ``REQUESTS_CA_BUNDLE`` (as az and the Azure SDKs honour it), else the system store."""
    path = ca_cert or os.environ.get(CA_BUNDLE_ENV)
    if not path:
        return True
    if not Path(path).is_file():
        source = "--ca-cert" if ca_cert else CA_BUNDLE_ENV
        raise CliError(f"The CA bundle '{path}' given by {source} does not exist.", "CertificateFileNotFound")
    return path


def redact(url: str) -> str:
    """The URL with the values of secret-looking query parameters replaced."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = "&".join(
        f"{k}=REDACTED" if k.lower() in _SECRET_PARAMS else f"{k}{sep}{v}"
        for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
    )
    return urlunsplit(parts._replace(query=query))


class Transport:
    """One ``httpx.Client`` per command. ``debug`` logs method, URL and status to stderr; never headers or bodies."""

    def __init__(self, verify: str | bool, *, debug: bool = False, client: httpx.Client | None = None) -> None:
        self.debug = debug
        self.client = client or httpx.Client(verify=verify, timeout=TIMEOUT, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def log(self, message: str) -> None:
        if self.debug:
            print(f"DEBUG: {message}", file=sys.stderr)

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        self.log(f"Request: {method} {redact(url)}")
        with translate_network_errors(url):
            response = self.client.request(method, url, **kwargs)
        self.log(
            f"Response: {response.status_code} {method} {redact(url)} ({(time.monotonic() - started) * 1000:.0f} ms)"
        )
        return response


@contextmanager
def translate_network_errors(url: str) -> Iterator[None]:
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    try:
        yield
    except httpx.ConnectError as exc:
        if _is_certificate_error(exc):
            raise CliError(
                f"The certificate of {origin} is not trusted ({_reason(exc)}). Give its CA with --ca-cert "
                f"(halyard login) or {CA_BUNDLE_ENV}.",
                "CertificateVerificationFailed",
            ) from None
        raise CliError(f"Cannot connect to {origin}: {_reason(exc)}.", "ConnectionError") from None
    except httpx.TimeoutException:
        raise CliError(f"{origin} did not answer in time.", "Timeout") from None
    except httpx.RemoteProtocolError as exc:
        parts = urlsplit(url)
        if parts.scheme == "http":
            # A TLS listener drops a plain-HTTP request unanswered; httpx then says only "Server disconnected".
            raise CliError(
                f"{origin} closed the connection without answering a plain-HTTP request: Halyard serves HTTPS "
                f"(unless started with --insecure-http). Use https://{parts.netloc}.",
                "HttpsRequired",
            ) from None
        raise CliError(f"The request to {origin} failed: {_reason(exc)}.", "ConnectionError") from None
    except httpx.UnsupportedProtocol:
        raise CliError(f"'{url}' is not an http(s) URL.", "InvalidUrl") from None
    except httpx.InvalidURL as exc:
        raise CliError(f"'{url}' is not a valid URL: {exc}.", "InvalidUrl") from None
    except httpx.HTTPError as exc:
        raise CliError(f"The request to {origin} failed: {_reason(exc)}.", "ConnectionError") from None


def _is_certificate_error(exc: Exception) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.rstrip(".")
