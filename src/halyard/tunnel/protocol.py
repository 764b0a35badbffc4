"""The names both ends of the tunnel agree on (relay, clusterconnect-agent, the CLI's local proxy)."""

PREFIX = "/relay/v1"  # every relay path starts here
TUNNEL_UPGRADE = "halyard-tunnel/1"  # an agent's control connection (frames)
STREAM_UPGRADE = "halyard-stream/1"  # one stream's data connection, and a local proxy's stream: raw bytes after 101
METHOD_FIELD = "Halyard-Authentication-Method"  # AAD (impersonation) or Token (the caller's own bearer token)
