"""Simulated Flux controllers for ``halyard sim``: Flux's CRDs, a source-controller that fetches git repositories
with the real git, and a kustomize-controller that builds with the real kustomize and applies with server-side
apply. They reconcile the Flux objects of any cluster that has the CRDs (``halyard sim --flux`` installs them).
"""

from halyard.sim.flux.crds import install as install_crds
from halyard.sim.flux.runner import FluxControllers, FluxSettings

__all__ = ["FluxControllers", "FluxSettings", "install_crds"]
