"""``relay``: cluster connect. Agents' outbound tunnels register here; users' kubectl streams are authenticated,
authorised and carried to the cluster over them. See docs/cluster-connect.md and decision 008."""
