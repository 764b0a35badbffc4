"""The charts of the built-in extension types, made by the control plane itself (no outside registry).

``microsoft.flux``: the chart in ``charts/microsoft-flux`` (Flux's two controllers, their RBAC, the artifact
Service) packed with Flux's CRDs (``halyard.api.fluxcrds``) in its ``crds/``, its version set to the extension
version asked for and its default image registry to the operator's (``flux_image_registry``). The package is the
same bytes whenever made (sorted entries, fixed times), so an agent's digest of it is stable.
"""

from __future__ import annotations

import functools
import gzip
import io
import re
import tarfile
from pathlib import Path

from halyard.api import fluxcrds

CHARTS = Path(__file__).parent / "charts"
FLUX = "microsoft.flux"
_DIRECTORIES = {FLUX: "microsoft-flux"}


def has_chart(type_name: str) -> bool:
    return type_name.lower() in _DIRECTORIES


@functools.lru_cache(maxsize=16)
def builtin_chart(type_name: str, version: str, registry: str) -> bytes:
    """The package of a built-in type's chart at ``version``, its images from ``registry``."""
    directory = _DIRECTORIES[type_name.lower()]
    root = CHARTS / directory
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            files[f"{directory}/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    chart_yaml = files[f"{directory}/Chart.yaml"].decode()
    files[f"{directory}/Chart.yaml"] = re.sub(r"(?m)^version: .*$", f"version: {version}", chart_yaml).encode()
    values = files[f"{directory}/values.yaml"].decode()
    files[f"{directory}/values.yaml"] = re.sub(r"(?m)^registry: .*$", f"registry: {registry}", values).encode()
    if type_name.lower() == FLUX:
        for name in fluxcrds.FILES:
            files[f"{directory}/crds/{name}"] = (fluxcrds.CRD_DIR / name).read_bytes()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
