"""Flux's CustomResourceDefinitions, verbatim from Flux v2.7 (source-controller v1.7.4, kustomize-controller v1.7.3;
Apache-2.0, https://github.com/fluxcd), as the simulator's Flux vendored them: GitRepository, Bucket and
OCIRepository (``source.toolkit.fluxcd.io``), Kustomization (``kustomize.toolkit.fluxcd.io``).

Shared data, not code: the control plane puts them in the built-in ``microsoft.flux`` extension's chart (its
``crds/``), the simulator installs them into clusters started with ``--flux``. One copy, read by path.
"""

from __future__ import annotations

from pathlib import Path

CRD_DIR = Path(__file__).parent
FILES = (
    "source.toolkit.fluxcd.io_gitrepositories.yaml",
    "source.toolkit.fluxcd.io_buckets.yaml",
    "source.toolkit.fluxcd.io_ocirepositories.yaml",
    "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
)
