"""The tables. Resource bodies are JSON documents; what is queried or constrained is a column."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: UTCDateTime()}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    default_domain: Mapped[str] = mapped_column(String(256))


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    display_name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(32), default="Enabled")


class ProviderRegistration(Base):
    __tablename__ = "provider_registrations"
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    namespace_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))


class ResourceGroup(Base):
    __tablename__ = "resource_groups"
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), primary_key=True)
    name_key: Mapped[str] = mapped_column(String(90), primary_key=True)
    name: Mapped[str] = mapped_column(String(90))
    location: Mapped[str] = mapped_column(String(64))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    managed_by: Mapped[str | None] = mapped_column(String(512), nullable=True)
    provisioning_state: Mapped[str] = mapped_column(String(32), default="Succeeded")
    etag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    changed_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(64), default="")


class Resource(Base):
    """Every ARM resource other than subscriptions and groups, keyed by its lower-cased id.

    ``properties`` is what users wrote; what agents and the server report about the resource is in
    ``ResourceReport`` rows, merged when the resource is rendered, so neither side's writes overwrite the other's.
    """

    __tablename__ = "resources"
    id_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    id: Mapped[str] = mapped_column(String(1024))
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"), nullable=True)  # tenant: None
    group_key: Mapped[str] = mapped_column(String(90))  # "" outside a group
    # The lower-cased id of the resource this one is a child or an extension of: its lists and delete cascade.
    parent_key: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    type_key: Mapped[str] = mapped_column(String(256))
    type: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(256))
    location: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    identity: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Secret values (protected settings, ...) encrypted with the server's data key; never rendered.
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    provisioning_state: Mapped[str] = mapped_column(String(32), default="Succeeded")
    etag: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    changed_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_by_type: Mapped[str] = mapped_column(String(32), default="Application")
    changed_by: Mapped[str] = mapped_column(String(64), default="")
    changed_by_type: Mapped[str] = mapped_column(String(32), default="Application")

    __table_args__ = (
        Index("ix_resources_sub_type", "subscription_id", "type_key", "id_key"),
        Index("ix_resources_sub_group", "subscription_id", "group_key", "id_key"),
        Index("ix_resources_parent", "parent_key", "type_key", "id_key"),
    )


class ResourceReport(Base):
    """What one reporter (``dp`` for heartbeats, ``his`` for certificates, ...) last said about a resource.

    Each reporter replaces its own row whole, with no read first: reports never race users' writes nor each
    other. Rendering merges them onto the resource's properties.
    """

    __tablename__ = "resource_reports"
    id_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    reporter: Mapped[str] = mapped_column(String(32), primary_key=True)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reported_at: Mapped[dt.datetime]


class ConfigurationSnapshot(Base):
    """A connected cluster's configuration resources saved by a region move, to be recreated on the cluster's new
    resource: what GET showed of them (for the comparison), what a PUT needs, and their secret values sealed together
    with the server's data key. Keyed by the source cluster's id, which the move deletes: the snapshot outlives it."""

    __tablename__ = "configuration_snapshots"
    source_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(1024))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    resources: Mapped[list[Any]] = mapped_column(default=list)  # [{type, name, body, shown}] with no secret
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # {"type/name": secret properties}
    created_at: Mapped[dt.datetime]
    created_by: Mapped[str] = mapped_column(String(64), default="")


class Operation(Base):
    """An asynchronous operation: what the LRO status endpoints report and the worker completes."""

    __tablename__ = "operations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(36))
    namespace: Mapped[str] = mapped_column(String(128))
    location: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(32), default="InProgress")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Who asked for it and the ARM action it is (``Microsoft.Kubernetes/connectedClusters/write``), kept so that its
    # end is written to the activity log in their name (None for operations from before migration 0011).
    operation_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    caller: Mapped[str | None] = mapped_column(String(256), nullable=True)
    caller_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    caller_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tenant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)

    __table_args__ = (Index("ix_operations_status", "status", "lease_until"),)


class ActivityEvent(Base):
    """One event of the activity log (Azure Monitor's administrative category): a write, delete or action that was
    started, accepted, succeeded or failed. Rows are only added and pruned after the retention, never changed."""

    __tablename__ = "activity_events"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    at: Mapped[dt.datetime]
    correlation_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    subscription_id: Mapped[str] = mapped_column(String(36))
    group_key: Mapped[str] = mapped_column(String(90))  # lower-cased; "" for a subscription or tenant resource
    resource_group: Mapped[str] = mapped_column(String(90))
    resource_id: Mapped[str] = mapped_column(String(1024))
    resource_key: Mapped[str] = mapped_column(String(1024))  # lower-cased resource_id
    provider_key: Mapped[str] = mapped_column(String(128))  # lower-cased namespace
    resource_type: Mapped[str] = mapped_column(String(256))
    operation_name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))  # Started, Accepted, Succeeded, Failed
    sub_status: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str] = mapped_column(String(256))
    caller_id: Mapped[str] = mapped_column(String(36))
    caller_type: Mapped[str] = mapped_column(String(32))
    http_method: Mapped[str] = mapped_column(String(8))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_activity_events_subscription_at", "subscription_id", "at"),
        Index("ix_activity_events_resource_at", "resource_key", "at"),
        Index("ix_activity_events_group_at", "subscription_id", "group_key", "at"),
        Index("ix_activity_events_at", "at"),
    )


class Principal(Base):
    __tablename__ = "principals"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    display_name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(32), default="ServicePrincipal")
    resource_id: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[dt.datetime]
    # A user's sign-in name (alice@contoso.example), lower-cased; None for service principals, clusters and groups.
    user_name: Mapped[str | None] = mapped_column(String(256), nullable=True, unique=True, index=True)


class GroupMember(Base):
    """A principal (user, service principal, group) in a group: it holds the group's role assignments."""

    __tablename__ = "group_members"
    group_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[str] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RefreshToken(Base):
    """A refresh token, by the SHA-256 of its value: used once (rotation); a second use revokes its family."""

    __tablename__ = "refresh_tokens"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    family: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class PortalSession(Base):
    """A portal sign-in: the browser holds a random value, stored only as its SHA-256 (a stolen row is no cookie); the
    user's access and refresh tokens and the CSRF token sealed with the server's data key. Ends when idle too long, at
    its absolute expiry, or at sign-out (the row deleted)."""

    __tablename__ = "portal_sessions"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(256))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # {"access", "refresh", "csrf"}
    access_expires_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    last_used: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    # While one request (of any replica) redeems the refresh token, others keep the current access token: a refresh
    # token is single-use, and a second redemption would revoke the whole family.
    refreshing_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class PortalSignIn(Base):
    """A portal sign-in under way, by the SHA-256 of its state: the PKCE verifier (sealed) and where to return.
    Spent by the callback (deleted), whichever replica it reaches."""

    __tablename__ = "portal_sign_ins"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # {"verifier", "return_to"}
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class DeviceCode(Base):
    """A device-code sign-in in progress (RFC 8628): pending until a user enters its user code and password."""

    __tablename__ = "device_codes"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the device code
    user_code: Mapped[str] = mapped_column(String(16), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime]
    principal_id: Mapped[str | None] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), nullable=True)


class AuthorizationCode(Base):
    """An authorization code (OAuth 2.0 with PKCE): single-use, minutes long, bound to its client, redirect and
    code challenge; stored by the SHA-256 of its value."""

    __tablename__ = "authorization_codes"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str] = mapped_column(String(256), default="")
    expires_at: Mapped[dt.datetime]


class FederationRequest(Base):
    """A sign-in sent to an external OpenID Connect provider, waiting for the browser to come back: single-use,
    minutes long, by the SHA-256 of its ``state``; bound to the browser that started it (the digest of its cookie)."""

    __tablename__ = "federation_requests"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    browser: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(64))
    verifier: Mapped[str] = mapped_column(String(128))
    resume: Mapped[dict[str, Any]] = mapped_column(JSON)  # the Halyard authorization request to answer afterwards
    expires_at: Mapped[dt.datetime]


class FederatedIdentity(Base):
    """A Halyard user's account at an external provider (issuer and subject, as OpenID Connect names an account),
    and the groups its last sign-in gave (so that a group the provider stops asserting is taken away again)."""

    __tablename__ = "federated_identities"
    issuer: Mapped[str] = mapped_column(String(512), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    signed_in_at: Mapped[dt.datetime]


class Credential(Base):
    __tablename__ = "credentials"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "secret" | "publicKey"
    secret_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    public_key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    hint: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class RoleDefinition(Base):
    __tablename__ = "role_definitions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role_name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    actions: Mapped[list[Any]] = mapped_column(default=list)
    not_actions: Mapped[list[Any]] = mapped_column(default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=True)


class RoleAssignment(Base):
    __tablename__ = "role_assignments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(1024), index=True)
    scope: Mapped[str] = mapped_column(String(1024))
    role_definition_id: Mapped[str] = mapped_column(ForeignKey("role_definitions.id"))
    principal_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[dt.datetime]


class SigningKey(Base):
    """Token-signing keys. Published in JWKS from creation, used for signing from ``activates_at``."""

    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime]
    activates_at: Mapped[dt.datetime]
    retires_at: Mapped[dt.datetime]


class UsedAssertion(Base):
    """Client-assertion ids seen before their expiry, so a captured assertion cannot be replayed."""

    __tablename__ = "used_assertions"
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class ClusterAuthority(Base):
    """The CA that issues cluster certificates; kept in the store so every replica issues and checks alike."""

    __tablename__ = "cluster_authorities"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sealed_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    certificate_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]


class ClusterIdentity(Base):
    """A connected cluster's identity: its login principal, onboarding key and current certificate.

    Deleting the connected cluster deletes this row and the principal, which revokes every certificate and token the
    cluster held: the agent services look the caller up here on every request.
    """

    __tablename__ = "cluster_identities"
    resource_key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(1024))
    principal_id: Mapped[str] = mapped_column(String(36), unique=True)
    app_id: Mapped[str] = mapped_column(String(36))
    tenant_id: Mapped[str] = mapped_column(String(36))
    onboarding_key: Mapped[str] = mapped_column(Text)
    cert_serial: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cert_not_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    certificates_issued: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime]
    renewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class EndpointCertificate(Base):
    """A certificate issued to a private endpoint's forwarder (``halyard endpoint certificate``). The endpoint
    ingress accepts a certificate only while it is on record here and not revoked; deleting the endpoint revokes
    its certificates in the deleting transaction (a new endpoint of the same name gets none of them)."""

    __tablename__ = "endpoint_certificates"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex, lower case
    endpoint_key: Mapped[str] = mapped_column(String(1024), index=True)  # the endpoint's id, lower case
    issued_at: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RelayReplica(Base):
    """A replica serving the relay, where the others reach it, and how long it is believed alive.

    A replica renews its lease every few seconds; one whose lease has lapsed (crashed, cut off) is ignored by the
    others, so its routes stop being used without anyone having to remove them first.
    """

    __tablename__ = "relay_replicas"
    replica_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    peer_address: Mapped[str] = mapped_column(String(512))  # host:port, reachable from the other replicas
    started_at: Mapped[dt.datetime]
    lease_until: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)


class RelayRoute(Base):
    """Which replica holds a connected cluster's tunnel (one row per cluster: the newest tunnel wins)."""

    __tablename__ = "relay_routes"
    cluster_key: Mapped[str] = mapped_column(String(1024), primary_key=True)  # the cluster's lower-cased id
    replica_id: Mapped[str] = mapped_column(String(64), index=True)
    since: Mapped[dt.datetime]
