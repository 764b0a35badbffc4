"""The relying party's side of OpenID Connect (Core 1.0, authorization code flow with PKCE), pure: the request sent
to the provider, the id token's checks (§3.1.3.7), and what its claims say about the user. No I/O.

Every refusal is a :class:`FederationRefused` whose message is worded for the person at the browser and for the
operator reading the log: it says which check failed, never a token or a secret.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt

from halyard.controlplane.identity.providers import ALGORITHMS, ClaimMapping, GroupMapping

# Clock skew allowed between the provider and Halyard when checking exp, iat and nbf.
LEEWAY_SECONDS = 120
# An id token issued longer ago than this is refused, whatever its exp (a replayed old token).
MAX_AGE_SECONDS = 600


class FederationRefused(Exception):
    """A federated sign-in refused; ``message`` says why, plainly."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Discovery:
    """What the provider's ``/.well-known/openid-configuration`` says (the part a relying party uses)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]

    @classmethod
    def parse(cls, document: Mapping[str, Any], expected_issuer: str) -> Discovery:
        """The document, once its issuer is the one configured (Discovery §4.3: else it may be an impostor's)."""
        issuer = str(document.get("issuer", "")).rstrip("/")
        if issuer != expected_issuer.rstrip("/"):
            raise FederationRefused(
                f"The identity provider's configuration names the issuer '{issuer[:200]}', not the configured "
                f"'{expected_issuer}'."
            )
        try:
            endpoints = [str(document[k]) for k in ("authorization_endpoint", "token_endpoint", "jwks_uri")]
        except KeyError as exc:
            raise FederationRefused(f"The identity provider's configuration has no {exc.args[0]}.") from None
        if not all(e.startswith("https://") for e in endpoints):
            raise FederationRefused("The identity provider's endpoints must be https:// URLs.")
        offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(a for a in offered if a in ALGORITHMS) if isinstance(offered, list) else ()
        if not algorithms:
            raise FederationRefused("The identity provider signs id tokens with no algorithm Halyard accepts.")
        return cls(issuer, endpoints[0], endpoints[1], endpoints[2], algorithms)


def authorization_url(
    discovery: Discovery,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: Sequence[str],
    state: str,
    nonce: str,
    code_challenge: str,
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    joiner = "&" if "?" in discovery.authorization_endpoint else "?"
    return discovery.authorization_endpoint + joiner + urlencode(query)


def key_for(token: str, jwks: Mapping[str, Any], algorithms: Sequence[str]) -> tuple[Any, str] | None:
    """The provider's public key that should have signed ``token`` and the algorithm, or None when its JWKS has no
    key of that id (the caller fetches the JWKS again once: the provider may have rotated)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise FederationRefused("The identity provider's id token is not a JWT.") from None
    alg = header.get("alg")
    if alg not in algorithms:
        raise FederationRefused(f"The identity provider's id token is signed with '{str(alg)[:16]}', not accepted.")
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    kid = header.get("kid")
    matching = [k for k in keys if k.get("kid") == kid] if kid else keys[:1] if len(keys) == 1 else []
    if not matching:
        return None
    try:
        return jwt.PyJWK(matching[0], algorithm=alg).key, str(alg)
    except jwt.PyJWTError:
        raise FederationRefused("The identity provider's signing key cannot be read.") from None


def verify_id_token(
    token: str,
    key: Any,
    algorithm: str,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """The id token's claims once its signature, issuer, audience, time window and nonce are right (OIDC Core
    §3.1.3.7); FederationRefused naming the first check that failed."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={
                "verify_aud": False,  # checked below, with messages of our own
                "verify_iss": False,
                "verify_exp": False,  # against the injected clock, below
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise FederationRefused(
            "The identity provider's id token has a bad signature: it was not signed by a key the provider publishes."
        ) from None
    except jwt.PyJWTError:
        raise FederationRefused("The identity provider's id token cannot be read.") from None
    if str(claims.get("iss", "")).rstrip("/") != issuer.rstrip("/"):
        raise FederationRefused(
            f"The id token was issued by '{str(claims.get('iss', ''))[:200]}', not by the configured issuer '{issuer}'."
        )
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise FederationRefused(
            f"The id token is for another application (audience {json.dumps(audience)[:200]}), not for Halyard's "
            f"client id '{client_id}'."
        )
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise FederationRefused("The id token names several audiences and another authorized party (azp).")
    moment = now.timestamp()
    try:
        exp, iat = float(claims["exp"]), float(claims["iat"])
    except (KeyError, TypeError, ValueError):
        raise FederationRefused("The id token has no valid exp or iat.") from None
    if exp + LEEWAY_SECONDS < moment:
        raise FederationRefused("The id token has expired.")
    if iat - LEEWAY_SECONDS > moment or iat + MAX_AGE_SECONDS + LEEWAY_SECONDS < moment:
        raise FederationRefused("The id token was not issued just now (iat); it may be a replay.")
    if "nbf" in claims and float(claims["nbf"]) - LEEWAY_SECONDS > moment:
        raise FederationRefused("The id token is not valid yet (nbf).")
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not sent:
        raise FederationRefused("The id token carries no nonce: it cannot be tied to this sign-in.")
    if not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise FederationRefused("The id token's nonce is not this sign-in's: it may be a replay.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise FederationRefused("The id token names no subject (sub).")
    return claims


@dataclass(frozen=True)
class ExternalUser:
    """Who the provider says signed in, in the claims the operator mapped."""

    subject: str
    user_name: str
    email: str
    display_name: str
    groups: tuple[str, ...]


def external_user(claims: Mapping[str, Any], mapping: ClaimMapping) -> ExternalUser:
    """The user an id token describes; FederationRefused when the user-name claim is missing."""
    user_name = claims.get(mapping.user_name)
    email = claims.get(mapping.email)
    if not isinstance(user_name, str) or not user_name:
        raise FederationRefused(
            f"The identity provider sent no '{mapping.user_name}' claim, which Halyard's configuration names as "
            "the user name."
        )
    groups = claims.get(mapping.groups, [])
    if isinstance(groups, str):
        groups = [groups]
    display = claims.get(mapping.display_name)
    return ExternalUser(
        subject=str(claims["sub"])[:255],
        user_name=user_name,
        email=email[:320] if isinstance(email, str) else "",
        display_name=display[:256] if isinstance(display, str) and display else user_name,
        groups=tuple(sorted({str(g) for g in groups if isinstance(g, str | int)})) if isinstance(groups, list) else (),
    )


def wanted_groups(external: Sequence[str], mapping: GroupMapping) -> tuple[str, ...]:
    """The Halyard groups (names or object ids) the provider's groups map to: the table first, else (``by_name``)
    the same name."""
    wanted: set[str] = set()
    for value in external:
        if value in mapping.map:
            wanted.add(mapping.map[value])
        elif mapping.by_name:
            wanted.add(value)
    return tuple(sorted(wanted))
