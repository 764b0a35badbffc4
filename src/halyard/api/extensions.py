"""What the control plane and extension-manager agree on about one extension's delivery and report.

The control plane delivers each extension as an entry (``desired_entry`` in the control plane builds it); the agent
reports, per extension, the digest of the entry it acted on. An operation waits until the report's digest is the
digest of the entry the control plane would deliver now: the cluster acted on this generation, not an older one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

INSTALLED = "Installed"
FAILED = "Failed"
UNINSTALLED = "Uninstalled"  # the release is gone from the cluster (or never was): a deletion may complete


def entry_digest(entry: dict[str, Any]) -> str:
    """The digest of one delivered extension entry, the same on both sides (canonical JSON)."""
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
