"""``halyard connectedk8s proxy`` and ``get-credentials``: kubectl to a connected cluster through the agents'
outbound tunnel (cluster connect), as ``az connectedk8s proxy`` and Arc's listClusterUserCredential kubeconfig.

Both ask the control plane for the cluster's credentials (``clustercredentials``); ``proxy`` then serves a local
listener (``localproxy``) that opens one relay stream per kubectl connection, ``get-credentials`` writes the
kubeconfig that reaches the relay directly.
"""

from __future__ import annotations

import ssl
import sys
from pathlib import Path
from typing import Annotated

import typer

from halyard.cli import kubeconfigs
from halyard.cli.clustercredentials import RelayAccess, auth_method, list_credentials
from halyard.cli.connectedclusters import cluster_id
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.transport import tls_verify

DEFAULT_PORT = 47011  # az connectedk8s proxy's
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")]
File = Annotated[
    str | None,
    typer.Option("--file", "-f", help="Kubeconfig file to merge into (default: ~/.kube/config); - prints it."),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="A Kubernetes service-account token: used as is at the API server (Token mode) instead of your "
        "Halyard identity (AAD mode, impersonated in the cluster).",
    ),
]


def proxy(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Local port of the proxy (127.0.0.1).")
    ] = DEFAULT_PORT,
    file: File = None,
    token: Token = None,
    kube_context: Annotated[
        str | None, typer.Option("--kube-context", help="Name of the kubeconfig context (default: the cluster's).")
    ] = None,
) -> None:
    """Get access to a connected cluster from anywhere: a local proxy (127.0.0.1:--port) and a kubeconfig context
    pointing at it; kubectl's requests travel through the control plane's relay and the cluster's outbound tunnel.
    Runs until Ctrl-C; the context stays in the kubeconfig, as az leaves it."""
    from halyard.cli.eventloop import run_on_own_loop
    from halyard.cli.localcert import make_local_certificate
    from halyard.cli.localproxy import Renewal, check_port_free, run_until_signalled

    inv = Invocation.of(ctx)
    check_port_free(port)
    path = cluster_id(inv.subscription_id, resource_group, name)
    method = auth_method(token)

    def fetch() -> RelayAccess:
        relay = list_credentials(inv.arm, path, method=method, client_proxy=True).relay
        if relay is None:
            raise CliError(
                "listClusterUserCredential returned no hybridConnectionConfig: the control plane does not offer "
                "cluster connect for this cluster.",
                "InvalidResponse",
            )
        return relay

    access = fetch()
    _check_relay_url(access.relay)
    certificate = make_local_certificate()
    context_name = kube_context or name
    kubeconfig = kubeconfigs.single(
        context=context_name,
        cluster=name,
        server=f"https://127.0.0.1:{port}",
        ca_pem=certificate.ca_pem,
        user=f"clusterUser_{resource_group}_{name}",
        # AAD: auth-proxy drops whatever kubectl sends, but a user with no credentials at all makes kubectl prompt
        # for a basic-auth username; a placeholder bearer keeps it quiet (it proves nothing and is never checked).
        credentials={"token": token if token is not None else AAD_PLACEHOLDER},
    )
    to_stdout = file == kubeconfigs.STDOUT
    target = Path(file).expanduser() if file and not to_stdout else kubeconfigs.default_path()

    def say(line: str) -> None:
        # The kubeconfig owns stdout with -f -; the proxy's lines then go to stderr.
        print(line, file=sys.stderr if to_stdout else sys.stdout, flush=True)

    def on_listening() -> None:
        say(f"Proxy is listening on port {port}")
        if to_stdout:
            sys.stdout.write(kubeconfigs.dump(kubeconfig))
            sys.stdout.flush()
        else:
            kubeconfigs.merge_into_file(target, kubeconfig)
            say(f'Merged "{context_name}" as current context in {target}')
            say(f"Start sending kubectl requests on '{context_name}' context using kubeconfig at {target}")
        say("Press Ctrl+C to close proxy.")

    def warn(line: str) -> None:
        print(f"WARNING: {line}", file=sys.stderr, flush=True)

    relay_tls = _relay_tls(inv)
    run_on_own_loop(
        lambda: run_until_signalled(
            port=port,
            server_tls=certificate.server_context(),
            relay_tls=relay_tls,
            method=method,
            renewal=Renewal(access, fetch, warn),
            on_listening=on_listening,
            log=warn,
        )
    )


AAD_PLACEHOLDER = "halyard-proxy-aad"


def get_credentials(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    file: File = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Name of the kubeconfig context (default: the returned one).")
    ] = None,
) -> None:
    """Write a kubeconfig that reaches a connected cluster without a local proxy (a Halyard addition; az has no such
    command): kubectl talks to the control plane's relay directly, authenticated by 'halyard get-token' (your
    login), and the cluster sees you impersonated (AAD). For a service-account token use 'connectedk8s proxy
    --token': kubectl's one bearer token cannot prove both who you are to the relay and who you are to the cluster."""
    inv = Invocation.of(ctx)
    path = cluster_id(inv.subscription_id, resource_group, name)
    config = list_credentials(inv.arm, path, method="AAD", client_proxy=False).kubeconfig
    if config is None:
        raise CliError("listClusterUserCredential returned no kubeconfig.", "InvalidResponse")
    if context:
        config = kubeconfigs.rename_context(config, context)
    if file == kubeconfigs.STDOUT:
        sys.stdout.write(kubeconfigs.dump(config))
        return
    target = Path(file).expanduser() if file else kubeconfigs.default_path()
    kubeconfigs.merge_into_file(target, config)
    inv.note(f'Merged "{config.get("current-context")}" as current context in {target}')


def _check_relay_url(url: str) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CliError(
            f"listClusterUserCredential returned an unusable relay URL: {url!r} is not an https URL.",
            "InvalidResponse",
        )


def _relay_tls(inv: Invocation) -> ssl.SSLContext:
    """Trust for the relay: the CA the CLI trusts for the management API (the profile's, else the environment's)."""
    verify = tls_verify(inv.profile.caCert)
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else ssl.create_default_context()
