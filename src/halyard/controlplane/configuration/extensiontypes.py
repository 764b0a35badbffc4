"""The catalog of extension types: what can be installed, with its versions per release train.

Pure data and rules, no I/O: the built-in types here, operators' published ones from the store (``published.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_TRAIN = "stable"


def _version_key(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@dataclass(frozen=True)
class ExtensionType:
    name: str  # as users spell it: "microsoft.flux"
    trains: Mapping[str, Sequence[str]]  # release train → versions offered on it
    default_scope: str = "cluster"  # "cluster" or "namespace"
    namespace_scope_allowed: bool = False
    default_release_namespace: str = ""
    published: bool = False  # the control plane serves a chart of it (published in the store, or built in)

    def newest(self, train: str) -> str | None:
        versions = self.trains.get(train.lower())
        return max(versions, key=_version_key) if versions else None

    def offers(self, version: str) -> bool:
        return any(version in versions for versions in self.trains.values())

    @property
    def versions(self) -> list[str]:
        return sorted({v for vs in self.trains.values() for v in vs}, key=_version_key)


@dataclass
class ExtensionTypeCatalog:
    types: dict[str, ExtensionType] = field(default_factory=dict)

    def add(self, extension_type: ExtensionType) -> None:
        self.types[extension_type.name.lower()] = extension_type

    def find(self, name: str) -> ExtensionType | None:
        return self.types.get(name.lower())

    def names(self) -> list[str]:
        return sorted(t.name for t in self.types.values())


def builtin_catalog() -> ExtensionTypeCatalog:
    catalog = ExtensionTypeCatalog()
    # What microsoft.flux is to Arc: the GitOps engine. Its chart is built in (builtincharts.py: Flux v2.7's
    # controllers and CRDs, whichever of these versions is asked for).
    catalog.add(
        ExtensionType(
            "microsoft.flux",
            {"stable": ("1.13.0", "1.14.0"), "preview": ("1.15.0",)},
            default_release_namespace="flux-system",
            published=True,
        )
    )
    return catalog
