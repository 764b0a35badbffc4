"""What a gateway's ``allowedFeatures`` may name, and which agent-facing services each one opens.

Pure: the resource type validates against it and the gateway service decides with it. The core services (login,
``his``, ``dp``) are what onboarding and heartbeats need, so every gateway carries them; ``*`` is every feature.
"""

from __future__ import annotations

from collections.abc import Iterable

ALL = "*"
CORE_SERVICES = frozenset({"login", "his", "dp"})
# feature → the services (path prefixes of the control plane) it opens besides the core
FEATURE_SERVICES: dict[str, frozenset[str]] = {
    "cluster-connect": frozenset({"relay"}),
    "extensions": frozenset({"extensions"}),
    "configuration": frozenset({"configuration"}),
}
KNOWN = (ALL, *FEATURE_SERVICES)


def unknown_features(features: Iterable[str]) -> list[str]:
    return [f for f in features if f not in KNOWN]


def allowed_services(features: Iterable[str]) -> frozenset[str]:
    """The services a gateway with these allowed features lets agents reach."""
    wanted = set(features)
    services = set(CORE_SERVICES)
    for feature, opened in FEATURE_SERVICES.items():
        if ALL in wanted or feature in wanted:
            services |= opened
    return frozenset(services)
