"""Jittered exponential backoff ("full jitter"): after a failure, wait a random time up to an exponentially growing
cap, so a fleet of agents that lost the control plane at the same moment does not come back at the same moment."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 1.0
    cap: float = 120.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """The wait after one more failure: uniform in [base/2, min(cap, base * factor**failures)]."""
        ceiling = min(self.cap, self.base * self.factor**self.failures)
        self.failures += 1
        return self.rng.uniform(min(self.base / 2, ceiling), ceiling)

    def reset(self) -> None:
        self.failures = 0
