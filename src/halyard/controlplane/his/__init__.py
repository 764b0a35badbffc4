"""``his``, the hybrid identity service: cluster certificates from the control plane's cluster CA, and revocation."""
