"""The one settings object, passed explicitly. Every field may come from a ``HALYARD_*`` environment variable."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from halyard import __version__
from halyard.core.agentversions import AgentCatalog

DEFAULT_LOCATIONS = ["eastus", "westus", "westeurope", "northeurope", "local"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALYARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8443
    data_dir: Path = Field(default_factory=lambda: Path.home() / ".local" / "share" / "halyard")
    database_url: str | None = None
    domain: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_http: bool = False
    ca_bundle: Path | None = Field(default=None, description="The CA bundle clients should trust (set at start).")
    public_url: str | None = Field(
        default=None, description="The URL clients use to reach this server; derived from host and port."
    )
    relay_peer_address: str | None = Field(
        default=None,
        description="host:port at which the other replicas reach this one's relay (replicas on PostgreSQL forward "
        "users' streams to the replica holding the cluster's tunnel); default: the listen host and port, or this "
        "machine's host name and the port when listening on every address. Covered by the server certificate.",
    )
    token_lifetime_seconds: int = 3600
    signing_key_rotation_days: int = 30
    offline_threshold_seconds: int = 900
    cluster_certificate_lifetime_seconds: int = Field(
        default=90 * 86400, description="Validity of the cluster certificates his issues (90 days, as Azure Arc)."
    )
    heartbeat_interval_seconds: float = Field(default=30.0, description="How often agents are asked to heartbeat.")
    operation_retry_after_seconds: int = 1
    flux_image_registry: str = Field(
        default="ghcr.io", description="Registry of Flux's images in the built-in microsoft.flux chart (a mirror)."
    )
    extension_wait_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long an extension's create, update or delete waits for its cluster to report (10 min).",
    )
    # A person mistyping a secret fails a few times; a script guessing fails thousands. 10, then one every 6 s (ten a
    # minute) never slows the first and makes the second hopeless against 40-character secrets.
    login_failure_burst: int = Field(
        default=10,
        ge=0,
        description="Failed logins allowed per client address before the token endpoint answers 429; 0 turns the "
        "throttle off (behind a proxy every client shares the proxy's address: raise it, or let the proxy limit).",
    )
    login_failure_refill_seconds: float = Field(
        default=6.0, gt=0, description="Seconds for an address to earn back one allowed failed login."
    )
    federation_file: Path | None = Field(
        default=None,
        description="JSON file of the external OpenID Connect providers users may sign in with (docs/security.md, "
        "federation); none by default.",
    )
    # What one client may cost before it is authenticated (docs/security.md, "Limits"). Each is per request or per
    # connection, so one client cannot spend the memory, descriptors or time every other client needs.
    request_body_limit_bytes: int = Field(
        default=4 * 1024 * 1024, gt=0, description="Largest request body of the management API (413 beyond)."
    )
    agent_body_limit_bytes: int = Field(
        default=128 * 1024, gt=0, description="Largest request body of the token endpoint, his and dp (413 beyond)."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Seconds a request body may take to arrive after its headers (408 beyond)."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a request's headers may take to arrive (408, connection closed)."
    )
    header_limit_bytes: int = Field(default=64 * 1024, gt=0, description="Largest request line plus headers (431).")
    header_count_limit: int = Field(default=100, gt=0, description="Most header fields in one request (431).")
    long_poll_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="The longest the server holds an agent's long poll of its desired configuration when nothing "
        "changes (5 min, as a Kubernetes watch; agents ask for that much and are held at most this long). Every "
        "proxy and load balancer between the agents and the server must let a response take this long plus a minute "
        "(docs/operations.md).",
    )
    keep_alive_seconds: int = Field(
        default=75,
        ge=1,
        description="Seconds an idle keep-alive connection is kept open before the server closes it. Longer than its "
        "clients keep theirs (httpx, the agents' client: 5 s), so that the client closes first: at an equal 5 s "
        "(uvicorn's default) a request on a connection just reused met the server's close and failed unanswered.",
    )
    connections_per_address: int = Field(
        default=4096,
        ge=0,
        description="Open connections allowed per client address (IPv6: per /64); more are answered 503 and closed. "
        "0 turns the limit off. 4,096 holds 1,000 clusters behind one address (a NAT, a proxy, a gateway's egress) "
        "with a heartbeat, a long poll and a login connection each.",
    )
    new_connections_per_address_rate: float = Field(
        default=200.0,
        ge=0,
        description="New connections a second per client address after its burst, checked before the TLS handshake; "
        "more are closed unread. 0 turns the limit off (docs/security.md, Limits).",
    )
    new_connections_per_address_burst: int = Field(
        default=4000, gt=0, description="New connections a client address may open at once (its bucket's size)."
    )
    refused_connection_penalty: float = Field(
        default=20.0,
        ge=0,
        description="New connections' worth an address loses when a connection's first request is refused as "
        "malformed, oversized or too slow (400 unstorable text, 408, 413, 431). 0: no penalty.",
    )
    connection_limits_exempt: str = Field(
        default="",
        description="Comma-separated addresses and networks (CIDR) the per-address connection limits do not apply "
        "to: a reverse proxy in front of replicas, a site's NAT you trust.",
    )
    throttled_answer_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description="Seconds a 429 answer is held before it is sent (at most its Retry-After): a client that asks "
        "again at once asks once per delay per connection. 0: answered at once.",
    )
    tls_handshake_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Seconds a new connection's TLS handshake may take (closed beyond)."
    )
    agent_versions: str = Field(
        default=__version__,
        description="Comma-separated agent versions this control plane offers; the highest is the latest.",
    )
    locations: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCATIONS))
    # The gateway service (docs/gateway.md): off unless a port is given (0: any free port).
    gateway_port: int | None = Field(default=None, ge=0, le=65535, description="Port of the gateway service.")
    gateway_host: str | None = Field(default=None, description="Address of the gateway service (default: host).")
    gateway_audit_retention_days: int = Field(default=30, gt=0, description="Days gateway audit rows are kept.")
    activity_log_retention_days: int = Field(
        default=90, gt=0, le=3650, description="Days activity log events are kept and can be asked for (Azure: 90)."
    )
    endpoint_ingress: str | None = Field(
        default=None,
        description="HOST:PORT where private endpoint forwarders (halyard endpoint run) connect: mutual TLS with a "
        "certificate of the endpoint CA, then a PROXY v2 header naming the endpoint.",
    )
    endpoint_listeners: list[str] = Field(
        default_factory=list,
        description="Private endpoints this server serves directly, as HOST:PORT=ENDPOINT_RESOURCE_ID: it listens "
        "there too, and every connection arriving there is marked as coming through that endpoint (private link).",
    )
    page_size: int = 100
    portal_page_size: int = Field(
        default=100, ge=1, le=1000, description="Rows per page of the portal's clusters table."
    )
    log_format: str = "keyvalue"
    log_level: str = "info"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'halyard.db'}"

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    @property
    def base_url(self) -> str:
        """Where the management API, login and agent services are reached (no trailing slash)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def audience(self) -> str:
        """The management API's token audience, as ARM's ``https://management.azure.com/``."""
        return f"https://management.{self.domain or 'halyard.local'}/"

    @property
    def agent_audience(self) -> str:
        """The audience of tokens for the agent-facing services (his, dp, relay); never valid on the management API."""
        return f"https://agents.{self.domain or 'halyard.local'}/"

    @property
    def relay_audience(self) -> str:
        """The audience of the stream tokens ``listClusterUserCredential`` hands the local proxy (bound to one
        cluster by their ``xms_mirid`` claim); never valid on the management API or the agent services."""
        return f"https://relay.{self.domain or 'halyard.local'}/"

    @property
    def relay_peer_audience(self) -> str:
        """The audience of the tokens one replica signs to forward a stream to another (the replicas share the
        signing keys); never valid anywhere else, and no other token is valid there."""
        return f"https://relay-peers.{self.domain or 'halyard.local'}/"

    @property
    def peer_address(self) -> str:
        """Where the other replicas reach this one (``relay_peer_address``, or the listen address)."""
        if self.relay_peer_address:
            return self.relay_peer_address
        host = self.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def relay_url(self) -> str:
        """Where users' kubectl and the agents' tunnels reach the relay."""
        return f"{self.base_url}/relay"

    @property
    def agent_catalog(self) -> AgentCatalog:
        """The offered agent versions (ValueError if ``agent_versions`` does not parse: :meth:`check` says so)."""
        return AgentCatalog.parse(self.agent_versions)

    def check(self) -> None:
        """Refuse unsafe combinations before anything listens."""
        self.agent_catalog  # noqa: B018 - parsed for its ValueError
        for part in self.connection_limits_exempt.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"HALYARD_CONNECTION_LIMITS_EXEMPT: {part.strip()!r} is not an address or a network (CIDR)."
                    ) from None
        if self.insecure_http and not _is_loopback(self.host):
            raise ValueError(
                f"plain HTTP is allowed only on a loopback address; {self.host!r} is not. "
                "Drop --insecure-http or bind to 127.0.0.1."
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together: give both or neither.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
