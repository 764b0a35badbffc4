"""Microsoft.Kubernetes: the connectedClusters resource type."""
