"""Wire contracts shared by the control plane and the agents (pydantic models, names, constants)."""
