"""Which commit a GitRepository's ``spec.ref`` names, from a ``git ls-remote`` listing, and the revision string Flux
v1 reports for it (``main@sha1:<sha>``, ``v1.2.0@sha1:<sha>``, ``refs/heads/main@sha1:<sha>``, ``sha1:<sha>``).
Free of I/O; semver constraints are those of Masterminds/semver v3, which source-controller uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_BRANCH = "master"  # source-controller's default when spec.ref is empty (GitRepositoryRef docs)


@dataclass(frozen=True)
class Target:
    """What to fetch and how to name it: ``fetch`` is a ref for ``git fetch`` (empty for a commit on the default
    branch), ``sha`` the commit expected (empty when only the fetch tells), ``label`` the revision's name part."""

    fetch: str
    sha: str
    label: str
    shallow: bool = True


class RefError(Exception):
    """The reference cannot be resolved; the message is what the Ready condition says."""


def parse_ls_remote(text: str) -> dict[str, str]:
    """``{ref: sha}`` from ``git ls-remote`` output; an annotated tag's peeled commit (``^{}``) replaces the tag
    object's sha, since Flux reports the commit."""
    refs: dict[str, str] = {}
    for line in text.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref:
            continue
        if ref.endswith("^{}"):
            refs[ref[:-3]] = sha
        else:
            refs.setdefault(ref, sha)
    return refs


def revision(label: str, sha: str) -> str:
    return f"{label}@sha1:{sha}" if label else f"sha1:{sha}"


def resolve(ref: dict[str, Any] | None, refs: dict[str, str]) -> Target:
    """The target of ``spec.ref`` given the remote's refs. Precedence as in Flux: commit, name, semver, tag, branch."""
    ref = ref or {}
    branch = ref.get("branch") or ""
    if ref.get("commit"):
        commit = str(ref["commit"])
        if branch:
            return Target(f"refs/heads/{branch}", commit, branch, shallow=False)
        return Target("HEAD", commit, "", shallow=False)
    if ref.get("name"):
        name = str(ref["name"])
        sha = refs.get(name)
        if sha is None:
            raise RefError(f'couldn\'t find remote ref "{name}"')
        return Target(name, sha, name)
    if ref.get("semver"):
        tags = {r[len("refs/tags/") :]: sha for r, sha in refs.items() if r.startswith("refs/tags/")}
        best = highest_matching(str(ref["semver"]), list(tags))
        if best is None:
            raise RefError(f"no match found for semver: {ref['semver']}")
        return Target(f"refs/tags/{best}", tags[best], best)
    if ref.get("tag"):
        tag = str(ref["tag"])
        sha = refs.get(f"refs/tags/{tag}")
        if sha is None:
            raise RefError(f'couldn\'t find remote ref "refs/tags/{tag}"')
        return Target(f"refs/tags/{tag}", sha, tag)
    branch = branch or DEFAULT_BRANCH
    sha = refs.get(f"refs/heads/{branch}")
    if sha is None:
        raise RefError(f'couldn\'t find remote ref "refs/heads/{branch}"')
    return Target(f"refs/heads/{branch}", sha, branch)


# ---- semver (Masterminds/semver v3 semantics for the common constraint forms)

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_TERM = re.compile(r"^(=|!=|>=|<=|>|<|~>|~|\^)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2})(?:-([0-9A-Za-z.-]+))?$")
Version = tuple[int, int, int, tuple[Any, ...]]


def parse_version(text: str) -> Version | None:
    m = _VERSION.match(text.strip())
    if m is None:
        return None
    pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
    return int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre


def _key(v: Version) -> tuple[Any, ...]:
    # A release sorts after its pre-releases; numeric identifiers before alphanumeric ones.
    pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in v[3])
    return (v[0], v[1], v[2], 1 if not v[3] else 0, pre)


def _bounds(op: str, parts: list[str], pre: str) -> list[tuple[str, Version]]:
    """A constraint term as comparisons (op, version) that must all hold."""
    wild = [p in ("x", "X", "*") for p in parts]
    nums = [0 if w else int(p) for p, w in zip(parts, wild, strict=True)]
    given = next((i for i, w in enumerate(wild) if w), len(parts))  # how many leading parts are concrete
    nums += [0] * (3 - len(nums))
    pre_t: tuple[Any, ...] = tuple(int(p) if p.isdigit() else p for p in pre.split(".")) if pre else ()
    low: Version = (nums[0], nums[1], nums[2], pre_t)

    def bump(i: int) -> Version:
        v = [nums[0], nums[1], nums[2]]
        v[i] += 1
        for j in range(i + 1, 3):
            v[j] = 0
        return v[0], v[1], v[2], ()

    if op in ("", "=") and given < 3:
        if given == 0:
            return []
        return [(">=", low), ("<", bump(given - 1))]
    if op in ("~", "~>"):
        return [(">=", low), ("<", bump(0 if given <= 1 else 1))]
    if op == "^":
        if nums[0] > 0 or given == 1:
            return [(">=", low), ("<", bump(0))]
        if nums[1] > 0 or given == 2:
            return [(">=", low), ("<", bump(1))]
        return [(">=", low), ("<", bump(2))]
    if op == ">" and given < 3:
        return [(">=", bump(given - 1))] if given else [("<", (0, 0, 0, ()))]
    if op == "<=" and given < 3:
        return [("<", bump(given - 1))] if given else []
    return [(op or "=", low)]


def _holds(v: Version, op: str, bound: Version) -> bool:
    a, b = _key(v), _key(bound)
    return {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]


def constraint(text: str) -> list[list[tuple[str, Version]]]:
    """A constraint as OR-groups of AND-ed comparisons; ValueError if it cannot be parsed."""
    groups = []
    for group in text.split("||"):
        terms = [t for t in re.split(r"[,\s]+", re.sub(r"(=|!=|>=|<=|>|<|~>|~|\^)\s+", r"\1", group.strip())) if t]
        if not terms:
            raise ValueError(f"improper constraint: {text}")
        comparisons: list[tuple[str, Version]] = []
        for term in terms:
            m = _TERM.match(term)
            if m is None:
                raise ValueError(f"improper constraint: {text}")
            comparisons += _bounds(m.group(1) or "", m.group(2).split("."), m.group(3) or "")
        groups.append(comparisons)
    return groups


def matches(text: str, version: str) -> bool:
    v = parse_version(version)
    if v is None:
        return False
    groups = constraint(text)
    allow_pre = "-" in text
    if v[3] and not allow_pre:
        return False
    return any(all(_holds(v, op, b) for op, b in g) for g in groups)


def highest_matching(text: str, tags: list[str]) -> str | None:
    """The tag with the highest version that satisfies the constraint (``ValueError`` for a bad constraint)."""
    constraint(text)
    found = [(t, v) for t in tags if (v := parse_version(t)) is not None and matches(text, t)]
    if not found:
        return None
    return max(found, key=lambda tv: _key(tv[1]))[0]
