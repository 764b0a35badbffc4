"""A Kubernetes API simulator: many small virtual clusters over the real Kubernetes REST protocol.

Public surface: :class:`SimServer` (``await start()`` / ``await stop()`` in a running loop), :func:`run_sim` (serve
until cancelled), :class:`SimThread` (a simulator on a background thread) and :class:`SimOptions`. After start,
``<data_dir>/sim.json`` lists the clusters, their kubeconfigs, server URLs and the CA. See ``docs/sim.md``.
"""

from halyard.sim.server import SimOptions, SimServer, SimThread, run_sim

__all__ = ["SimOptions", "SimServer", "SimThread", "run_sim"]
