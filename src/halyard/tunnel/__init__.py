"""The cluster-connect tunnel: sans-I/O cores (control frames, HTTP/1.1 heads) and the asyncio byte pipes that the
relay (control plane), the clusterconnect-agent and the CLI's local proxy share. See decision 008."""
