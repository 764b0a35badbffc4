"""Arc gateways: the ``Microsoft.HybridCompute/gateways`` and cluster ``settings/default`` resource types, the links
between clusters and gateways, and the gateway service agents reach through an enterprise proxy."""
