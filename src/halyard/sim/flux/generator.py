"""The ``kustomization.yaml`` kustomize-controller builds (``fluxcd/pkg/kustomize`` Generator): the one found at the
path, or one generated from every manifest under it; then the Kustomization's ``targetNamespace``, ``namePrefix``,
``nameSuffix``, ``patches``, ``images`` and ``components`` written into it. Synchronous file work: run it in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class GenerateError(Exception):
    pass


def _kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _scan(base: Path) -> list[str]:
    """Manifests under ``base`` (``.yaml``/``.yml``), and sub-directories that hold their own kustomization (not
    descended into), in the lexical order of Go's ``filepath.Walk``."""
    found: list[str] = []

    def walk(directory: Path) -> None:
        for path in sorted(directory.iterdir(), key=lambda p: p.name):
            if path.is_dir():
                if _kustomization_file(path) is not None:
                    found.append("./" + str(path.relative_to(base)))
                elif path.name != ".git":
                    walk(path)
                continue
            if path.suffix not in (".yaml", ".yml"):
                continue
            try:
                list(yaml.safe_load_all(path.read_text()))
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise GenerateError(f"failed to decode Kubernetes YAML from {path.name}: {e}") from e
            found.append("./" + str(path.relative_to(base)))

    walk(base)
    return found


def write(directory: Path, spec: dict[str, Any]) -> None:
    """Find or generate the kustomization of ``directory`` and write the Kustomization's overrides into it."""
    existing = _kustomization_file(directory)
    if existing is not None:
        try:
            kus = yaml.safe_load(existing.read_text()) or {}
        except yaml.YAMLError as e:
            raise GenerateError(f"failed to parse {existing.name}: {e}") from e
        if not isinstance(kus, dict):
            raise GenerateError(f"{existing.name} is not a kustomization")
        target = existing
    else:
        kus = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization"}
        resources = _scan(directory)
        if resources:
            kus["resources"] = resources
        else:
            kus["namespace"] = "_placeholder"  # Flux's way around "kustomization.yaml is empty"
        target = directory / "kustomization.yaml"
    if spec.get("targetNamespace"):
        kus["namespace"] = spec["targetNamespace"]
    if spec.get("namePrefix"):
        kus["namePrefix"] = spec["namePrefix"]
    if spec.get("nameSuffix"):
        kus["nameSuffix"] = spec["nameSuffix"]
    for p in spec.get("patches") or []:
        entry: dict[str, Any] = {"patch": p.get("patch", "")}
        if p.get("target"):
            entry["target"] = p["target"]
        kus.setdefault("patches", []).append(entry)
    for image in spec.get("images") or []:
        images = kus.setdefault("images", [])
        current = next((i for i in images if i.get("name") == image.get("name")), None)
        if current is None:
            images.append({k: v for k, v in image.items() if v})
        else:
            current.update({k: v for k, v in image.items() if v})
    for component in spec.get("components") or []:
        if component.startswith("/") or ".." in Path(component).parts:
            raise GenerateError(f"component path '{component}' must be local and relative")
        if not (directory / component).exists() and spec.get("ignoreMissingComponents"):
            continue
        kus.setdefault("components", []).append(component)
    target.write_text(yaml.safe_dump(kus, sort_keys=False))
