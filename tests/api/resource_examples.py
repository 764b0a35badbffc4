"""A minimal valid PUT body for every resource type the server declares, for the resource contract suite.

A type without an entry here fails the suite on the day it is declared: add its example with the type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.api.helpers import cluster_body

Example = Callable[[], dict[str, Any]]

EXAMPLES: dict[str, Example] = {
    "microsoft.kubernetes/connectedclusters": lambda: cluster_body(),
    "microsoft.hybridcompute/gateways": lambda: {
        "location": "eastus",
        "properties": {"gatewayType": "Public", "allowedFeatures": ["*"]},
    },
    "microsoft.hybridcompute/settings": lambda: {"properties": {"gatewayProperties": {"gatewayResourceId": None}}},
    "microsoft.kubernetesconfiguration/extensions": lambda: {
        "properties": {"extensionType": "microsoft.flux", "configurationSettings": {"a": "b"}}
    },
}

# Types whose resources have one fixed name per container (a cluster's ``settings/default``): the suite uses it.
FIXED_NAMES: dict[str, str] = {"microsoft.hybridcompute/settings": "default"}
