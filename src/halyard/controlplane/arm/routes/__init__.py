"""The management API's routes, one module per family of paths."""
