"""A Kubernetes API simulator: many small virtual clusters over the real Kubernetes REST protocol.

Public surface: :class:`halyard.sim.server.SimServer` (start/stop in a running loop, or in a thread),
:func:`halyard.sim.server.run_sim` (serve until cancelled) and :class:`halyard.sim.server.SimOptions`.
"""
