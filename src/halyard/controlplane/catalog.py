"""The resource types this control plane serves: one registration line per type.

A new type is a module (its models and behaviour, and a function that declares it) and one line here. Types are
built with the services their behaviours use (``TypeServices``), never with the whole control plane.
"""

from __future__ import annotations

from halyard.controlplane.arm.resourcetypes import ResourceTypes
from halyard.controlplane.configuration.extensions import extension_type
from halyard.controlplane.configuration.fluxconfigs import flux_configuration_type, source_control_type
from halyard.controlplane.gateway.resources import gateway_type
from halyard.controlplane.kubernetes.connectedclusters import connected_cluster_type
from halyard.controlplane.network.types import declare_network_types
from halyard.controlplane.plane import TypeServices
from halyard.controlplane.privatelink.scopes import scope_types


def declare_types(services: TypeServices) -> ResourceTypes:
    types = ResourceTypes()
    clusters = connected_cluster_type(services)
    types.add(clusters)
    types.add_extra("Microsoft.Kubernetes", "operations", clusters.api_versions)
    types.add_extra("Microsoft.Kubernetes", "locations/operationStatuses", clusters.api_versions)
    gateways, cluster_settings = gateway_type(clusters)
    types.add(gateways)
    types.add(cluster_settings)
    types.add(extension_type(services, clusters))
    types.add(flux_configuration_type(services, clusters))  # GitOps (issue 15): docs/gitops.md
    types.add(source_control_type(services, clusters))
    # Private link (issue 13): the scope and its connections, then the Microsoft.Network subset.
    scopes, connections = scope_types()
    types.add(scopes)
    types.add(connections)
    declare_network_types(types, services.settings)
    return types
