"""The ARM-compatible management API: paths, api-versions, RBAC, the resource pipeline, async operations."""
