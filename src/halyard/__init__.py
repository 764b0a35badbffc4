"""Halyard: a self-hosted, ARM-compatible control plane for Kubernetes clusters anywhere."""

__version__ = "0.1.0"
