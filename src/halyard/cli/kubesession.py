"""One Kubernetes session per command: one event loop and one lightkube client for every step a command takes
against a cluster, and the one place that turns the client's failures into a clear error line.

The CLI is synchronous (the only place that bridges to asyncio); a command that checks, installs and then watches
a cluster makes a dozen calls, and each used to start a loop and a client of its own (a new TLS handshake each).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

from halyard.cli.errors import CliError
from halyard.kube.client import KubeConfigError
from halyard.kube.client import connect as kube_connect

T = TypeVar("T")


class KubeSession:
    """The cluster of ``kubeconfig`` (None: $KUBECONFIG or ~/.kube/config) and ``context``, opened on first use (so
    a command that never reaches the cluster never reads the kubeconfig) and closed with the command."""

    def __init__(self, kubeconfig: Path | None, context: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self._runner: asyncio.Runner | None = None
        self._client: AsyncClient | None = None

    def run(self, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run one async step against the cluster, turning client failures into one clear error line."""
        try:
            return self._run(step)
        except KubeConfigError as exc:
            raise CliError(f"The kubeconfig cannot be used: {exc}.", "KubeconfigError") from None
        except ApiError as exc:
            raise CliError(
                f"The Kubernetes API server refused a request: {exc.status.code} {exc.status.message}.",
                "KubernetesApiError",
            ) from None
        except CliError:
            raise
        except Exception as exc:  # connection refused, TLS, DNS, timeouts (httpx under lightkube)
            raise CliError(
                f"The Kubernetes API server cannot be reached: {type(exc).__name__}: {exc}. Check the kubeconfig, "
                "the context and that the cluster is running.",
                "KubernetesConnectivityError",
            ) from None

    def run_raw(self, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
        """Run one step and let the client's own exceptions through (for callers that report them their way)."""
        return self._run(step)

    def _run(self, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        if self._client is None:
            self._client = kube_connect(self.kubeconfig, self.context)  # KubeConfigError before any request
        client = self._client
        return self._runner.run(_call(step, client))

    def close(self) -> None:
        try:
            if self._client is not None and self._runner is not None:
                with contextlib.suppress(Exception):  # a broken connection must not hide the command's outcome
                    self._runner.run(self._client.close())
        finally:
            self._client = None
            if self._runner is not None:
                self._runner.close()
                self._runner = None

    def __enter__(self) -> KubeSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _call(step: Callable[[AsyncClient], Awaitable[T]], client: AsyncClient) -> T:
    return await step(client)
