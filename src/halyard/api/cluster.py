"""Names of what onboarding writes into a cluster, shared by the CLI (which writes them) and the agents; and the
connected cluster's resource-name rule, which the CLI checks before it touches anything."""

from __future__ import annotations

import re

# ARM's rule for Microsoft.Kubernetes/connectedClusters names. The control plane enforces it on every write; connect
# checks it first without importing the control plane (its store and migrations are most of a second to load).
CLUSTER_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$")
CLUSTER_NAME_RULE = (
    "It must be 1-63 characters, start and end with a letter or digit, and contain only letters, digits, '-', '_' "
    "and '.'."
)

NAMESPACE = "halyard-system"
CLUSTER_CONFIGMAP = "halyard-clusterconfig"
ONBOARDING_SECRET = "halyard-onboarding"
IDENTITY_SECRET = "halyard-identity"
MANAGED_BY_LABEL = {"app.kubernetes.io/managed-by": "halyard"}
# The chart's Deployments and their pods carry it (and select by it); Helm overwrites app.kubernetes.io/managed-by
# with "Helm", so that label cannot find them.
AGENT_WORKLOAD_LABEL = {"app.kubernetes.io/part-of": "halyard-agent"}

# Keys of the ConfigMap.
KEY_RESOURCE_ID = "RESOURCE_ID"
KEY_SUBSCRIPTION = "SUBSCRIPTION_ID"
KEY_RESOURCE_GROUP = "RESOURCE_GROUP"
KEY_RESOURCE_NAME = "RESOURCE_NAME"
KEY_LOCATION = "LOCATION"
KEY_ENDPOINTS = "ENDPOINTS"  # JSON of api.agents.EndpointMap
KEY_CA_BUNDLE = "CA_BUNDLE"  # PEM the agents trust for the control plane's TLS
KEY_FEATURES = "FEATURES"  # comma-separated optional agent features on (absent: DEFAULT_FEATURES)

# Optional agent features, as `az connectedk8s enable-features/disable-features --features` names them. Cluster
# connect is on unless turned off (as Arc's chart has it); azure-rbac (guard) is off until enabled; extensions
# (extension-manager in the chart's pods, which holds cluster-admin: decision 014) is off until enabled. Local agents
# run extension-manager whatever FEATURES says (they act with the connecting user's kubeconfig).
FEATURE_CLUSTER_CONNECT = "cluster-connect"
FEATURE_AZURE_RBAC = "azure-rbac"
FEATURE_EXTENSIONS = "extensions"
FEATURES = (FEATURE_CLUSTER_CONNECT, FEATURE_AZURE_RBAC, FEATURE_EXTENSIONS)
DEFAULT_FEATURES = frozenset({FEATURE_CLUSTER_CONNECT})


def parse_features(text: str | None) -> frozenset[str]:
    """The features a FEATURES value turns on (None: the defaults); unknown names are ignored, so an older agent
    reads a newer CLI's value without failing."""
    if text is None:
        return DEFAULT_FEATURES
    return frozenset(f for f in (part.strip() for part in text.split(",")) if f in FEATURES)


def format_features(features: frozenset[str]) -> str:
    return ",".join(f for f in FEATURES if f in features)


# Keys of the Secrets.
KEY_ONBOARDING_KEY = "onboarding.key"
KEY_TLS_CERT = "tls.crt"
KEY_TLS_KEY = "tls.key"
KEY_ISSUED = "issued"  # JSON {clientId, tenantId, tokenEndpoint, audience, issuedAt, notAfter}
