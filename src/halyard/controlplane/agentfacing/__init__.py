"""What every agent-facing service shares: who is calling and how the connection arrived, and where agents reach
each service. ``his`` and ``dp`` use it today; relay, gateway and private-endpoint listeners plug in here."""
