"""Small helpers over lightkube shared by the agents and the CLI: connecting, and reading what a cluster is."""
