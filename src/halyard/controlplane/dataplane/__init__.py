"""``dp``, the agent data plane: heartbeats and cluster metadata in, connectivity status out."""
