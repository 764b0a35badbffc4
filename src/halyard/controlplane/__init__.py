"""The control plane: one process (or N replicas) serving every service behind one listener."""
