"""``halyard server``: run the control plane."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from halyard.core.settings import Settings


def command(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1, or HALYARD_HOST].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8443, or HALYARD_PORT].")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Where the SQLite database, keys and TLS files live.")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="postgresql+asyncpg://user:pass@host/db for several replicas; SQLite otherwise."),
    ] = None,
    domain: Annotated[str | None, typer.Option(help="Serve services as host names under this domain.")] = None,
    public_url: Annotated[str | None, typer.Option(help="The URL clients use, when it differs from host:port.")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve this certificate (PEM chain) instead of generating one.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The key of --tls-cert.")] = None,
    insecure_http: Annotated[
        bool | None, typer.Option(help="Plain HTTP (loopback only; the Azure clients refuse tokens over it).")
    ] = None,
    offline_threshold: Annotated[int | None, typer.Option(help="Seconds without heartbeat before Offline.")] = None,
    agent_versions: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated agent versions offered to clusters; the highest is the latest "
            "[default: this server's version, or HALYARD_AGENT_VERSIONS]."
        ),
    ] = None,
    login_failure_burst: Annotated[
        int | None,
        typer.Option(
            help="Failed logins allowed per client address before the token endpoint answers 429, then one more "
            "every HALYARD_LOGIN_FAILURE_REFILL_SECONDS (6); 0 turns it off, e.g. behind a proxy that limits "
            "[default: 10, or HALYARD_LOGIN_FAILURE_BURST].",
            min=0,
        ),
    ] = None,
    request_body_limit: Annotated[
        int | None,
        typer.Option(
            help="Largest management API request body in bytes, 413 beyond [default: 4194304, or "
            "HALYARD_REQUEST_BODY_LIMIT_BYTES].",
            min=1,
        ),
    ] = None,
    agent_body_limit: Annotated[
        int | None,
        typer.Option(
            help="Largest body of the token endpoint, his and dp in bytes [default: 131072, or "
            "HALYARD_AGENT_BODY_LIMIT_BYTES].",
            min=1,
        ),
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request body may take to arrive, 408 beyond [default: 30, or HALYARD_BODY_TIMEOUT_SECONDS]."
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request's headers may take to arrive, 408 beyond [default: 10, or "
            "HALYARD_HEADER_TIMEOUT_SECONDS]."
        ),
    ] = None,
    header_limit: Annotated[
        int | None,
        typer.Option(
            help="Largest request line and headers in bytes, 431 beyond [default: 65536, or "
            "HALYARD_HEADER_LIMIT_BYTES].",
            min=1,
        ),
    ] = None,
    header_count_limit: Annotated[
        int | None,
        typer.Option(
            help="Most header fields in a request, 431 beyond [default: 100, or HALYARD_HEADER_COUNT_LIMIT].", min=1
        ),
    ] = None,
    connections_per_address: Annotated[
        int | None,
        typer.Option(
            help="Open connections per client address (IPv6: per /64), 503 beyond; 0 turns it off, e.g. "
            "behind a proxy or a NAT [default: 4096, or HALYARD_CONNECTIONS_PER_ADDRESS].",
            min=0,
        ),
    ] = None,
    new_connections_per_address_rate: Annotated[
        float | None,
        typer.Option(
            help="New connections a second per client address after its burst, checked before the TLS handshake; "
            "0 turns it off [default: 200, or HALYARD_NEW_CONNECTIONS_PER_ADDRESS_RATE].",
            min=0,
        ),
    ] = None,
    new_connections_per_address_burst: Annotated[
        int | None,
        typer.Option(
            help="New connections a client address may open at once [default: 4000, or "
            "HALYARD_NEW_CONNECTIONS_PER_ADDRESS_BURST].",
            min=1,
        ),
    ] = None,
    refused_connection_penalty: Annotated[
        float | None,
        typer.Option(
            help="New connections' worth an address loses when a connection's first request is refused "
            "(400 unstorable text, 408, 413, 431) [default: 20, or HALYARD_REFUSED_CONNECTION_PENALTY].",
            min=0,
        ),
    ] = None,
    connection_limits_exempt: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated addresses and CIDRs the per-address connection limits skip (a reverse proxy, "
            "a trusted NAT) [or HALYARD_CONNECTION_LIMITS_EXEMPT].",
        ),
    ] = None,
    tls_handshake_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a new connection's TLS handshake may take [default: 10, or "
            "HALYARD_TLS_HANDSHAKE_TIMEOUT_SECONDS].",
        ),
    ] = None,
    relay_peer_address: Annotated[
        str | None,
        typer.Option(
            help="host:port where the other replicas reach this one for cluster-connect streams whose tunnel is here "
            "[default: the listen address, or HALYARD_RELAY_PEER_ADDRESS] (docs/cluster-connect-replicas.md).",
        ),
    ] = None,
    log_format: Annotated[str | None, typer.Option(help="keyvalue or json [default: keyvalue].")] = None,
    endpoint_ingress: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT where private endpoint forwarders connect (mutual TLS, PROXY v2) [or "
            "HALYARD_ENDPOINT_INGRESS]."
        ),
    ] = None,
    endpoint_listener: Annotated[
        list[str] | None,
        typer.Option(
            help="Serve a private endpoint's address directly: HOST:PORT=ENDPOINT_RESOURCE_ID (repeatable) "
            "[or HALYARD_ENDPOINT_LISTENERS, a JSON list]."
        ),
    ] = None,
    federation_file: Annotated[
        Path | None,
        typer.Option(
            help="JSON file naming the OpenID Connect providers users may sign in with [or HALYARD_FEDERATION_FILE] "
            "(docs/security.md, Federation)."
        ),
    ] = None,
) -> None:
    """Run the control plane (management API, login and agent services) on one listener."""
    from halyard.controlplane.server import run

    overrides: dict[str, object] = {
        "host": host,
        "port": port,
        "domain": domain,
        "public_url": public_url,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "insecure_http": insecure_http,
        "log_format": log_format,
        "data_dir": data_dir,
        "database_url": database_url,
        "offline_threshold_seconds": offline_threshold,
        "agent_versions": agent_versions,
        "login_failure_burst": login_failure_burst,
        "request_body_limit_bytes": request_body_limit,
        "agent_body_limit_bytes": agent_body_limit,
        "body_timeout_seconds": body_timeout,
        "header_timeout_seconds": header_timeout,
        "header_limit_bytes": header_limit,
        "header_count_limit": header_count_limit,
        "connections_per_address": connections_per_address,
        "new_connections_per_address_rate": new_connections_per_address_rate,
        "new_connections_per_address_burst": new_connections_per_address_burst,
        "refused_connection_penalty": refused_connection_penalty,
        "connection_limits_exempt": connection_limits_exempt,
        "tls_handshake_timeout_seconds": tls_handshake_timeout,
        "relay_peer_address": relay_peer_address,
        "endpoint_ingress": endpoint_ingress,
        "endpoint_listeners": endpoint_listener or None,
        "federation_file": federation_file,
    }
    # Only what was given on the line: everything else comes from HALYARD_* variables or the defaults.
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    try:
        settings.check()
        from halyard.controlplane.agentfacing.listening import endpoint_listeners, parse_address

        endpoint_listeners(settings)
        if settings.endpoint_ingress:
            parse_address(settings.endpoint_ingress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    run(settings)
