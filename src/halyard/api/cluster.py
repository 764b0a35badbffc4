"""Names of what onboarding writes into a cluster, shared by the CLI (which writes them) and the agents."""

from __future__ import annotations

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
# Keys of the Secrets.
KEY_ONBOARDING_KEY = "onboarding.key"
KEY_TLS_CERT = "tls.crt"
KEY_TLS_KEY = "tls.key"
KEY_ISSUED = "issued"  # JSON {clientId, tenantId, tokenEndpoint, audience, issuedAt, notAfter}
