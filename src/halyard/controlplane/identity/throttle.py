"""Failed-login throttling per source address: a token bucket of allowed failures, pure (the clock is passed in).

Each address may fail ``burst`` times, then earns one more failure every ``refill_seconds``. A costly attempt (a
client secret: scrypt) reserves a failure *before* any work is done (:meth:`LoginThrottle.begin`) and gives it back
unless it failed on credentials (:meth:`LoginThrottle.end`): so concurrent guesses from one address are bounded too,
not only finished ones. A cheap attempt (a signed assertion) is only checked, and counted if it fails: many agents
behind one NAT address may sign in at once (after a control-plane restart, say) without being refused.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

from halyard.core.clock import Clock

# Enough addresses for any real deployment's clients; ~200 bytes each, so the table stays under a few MiB.
DEFAULT_MAX_ADDRESSES = 10_000


@dataclass
class _Bucket:
    tokens: float  # failures this address may still have now
    at: float  # when ``tokens`` was computed (seconds since the epoch)


class LoginThrottle:
    """Failed logins per address; ``burst`` 0 turns throttling off."""

    def __init__(
        self, clock: Clock, *, burst: int, refill_seconds: float, max_addresses: int = DEFAULT_MAX_ADDRESSES
    ) -> None:
        if burst < 0 or refill_seconds <= 0 or max_addresses < 1:
            raise ValueError("burst must be >= 0, refill_seconds > 0 and max_addresses >= 1")
        self._clock = clock
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_addresses = max_addresses
        # Least recently seen first: when full, the address forgotten is the one quiet for longest. Forgetting
        # only ever lets an address try again sooner; it never refuses one that should pass.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def begin(self, address: str, *, reserve: bool = True) -> int:
        """0 when ``address`` may attempt a login now; otherwise the whole seconds to wait before it may, for a
        ``Retry-After`` header. With ``reserve`` an allowed attempt takes one failure at once; settle every allowed
        attempt with :meth:`end` (the same ``reserve``)."""
        if not self.enabled:
            return 0
        bucket = self._current(address)
        if bucket.tokens >= 1:
            if reserve:
                bucket.tokens -= 1
            return 0
        return max(1, math.ceil((1 - bucket.tokens) * self.refill_seconds))

    def end(self, address: str, *, failed: bool, reserve: bool = True) -> None:
        """Settle an attempt :meth:`begin` allowed: a failure costs one (its reservation, or taken now), anything
        else costs nothing (a reservation is returned).

        A success returns only its own reservation; it does not wipe the address's earlier failures. Otherwise
        whoever holds one valid credential could log in with it every few guesses and guess another's without end.
        """
        if not self.enabled or failed == reserve:  # a reserved failure is paid; an unreserved success costs nothing
            return
        bucket = self._buckets.get(address)
        if bucket is None:  # forgotten meanwhile: a forgotten address starts full, as if new
            bucket = self._current(address)
        bucket.tokens = min(float(self.burst), bucket.tokens + (1 if reserve else -1))

    def __len__(self) -> int:
        return len(self._buckets)

    def _current(self, address: str) -> _Bucket:
        now = self._clock.now().timestamp()
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(address)
            elapsed = max(0.0, now - bucket.at)  # a clock stepped back earns nothing, and takes nothing
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed / self.refill_seconds)
            bucket.at = now
        return bucket


def address_key(host: str | None) -> str:
    """The throttling key of a peer address: IPv4 as is, IPv6 by its /64 (one host commonly holds a whole /64, so
    per-address counting would not limit it), an IPv4-mapped IPv6 address as its IPv4 address."""
    if not host:
        return ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
