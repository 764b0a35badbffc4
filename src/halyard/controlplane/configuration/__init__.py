"""Microsoft.KubernetesConfiguration: extensions under connected clusters, and their delivery to the agents."""
