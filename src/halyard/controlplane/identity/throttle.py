"""Failed-login throttling per source address: a token bucket of allowed failures, pure (the clock is passed in).

Each address may fail ``burst`` times, then earns one more failure every ``refill_seconds``. When the attempt names
its principal (the token endpoint's ``client_id``), failures are counted per principal *and* address, with a wider
bucket (:data:`ADDRESS_FACTOR` times the burst) for the address as a whole: ten mistyped secrets for one principal
no longer lock out every other principal signing in from the same machine, while a spray across many principals
from one address is still bounded. A failure never takes a bucket below zero, so however many failed at once, an
address waits at most ``refill_seconds`` after the last of them. A costly attempt (a
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
# An address may fail this many times the per-principal burst across all the principals it names.
ADDRESS_FACTOR = 5


@dataclass
class _Bucket:
    tokens: float  # failures this address may still have now
    at: float  # when ``tokens`` was computed (seconds since the epoch)
    burst: float  # the most it holds


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
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # by address, or by address and principal
        self._addresses: OrderedDict[str, _Bucket] = OrderedDict()  # by address, when attempts name a principal

    @property
    def enabled(self) -> bool:
        return self.burst > 0

    def begin(self, address: str, *, reserve: bool = True, principal: str | None = None) -> int:
        """0 when ``address`` may attempt a login now (for ``principal``, when given); otherwise the whole seconds to
        wait before it may, for a ``Retry-After`` header. With ``reserve`` an allowed attempt takes one failure at
        once; settle every allowed attempt with :meth:`end` (the same ``reserve`` and ``principal``)."""
        if not self.enabled:
            return 0
        buckets = self._buckets_of(address, principal)
        wait = max(self._wait(bucket) for bucket in buckets)
        if wait == 0 and reserve:
            for bucket in buckets:
                bucket.tokens -= 1
        return wait

    def _wait(self, bucket: _Bucket) -> int:
        if bucket.tokens >= 1:
            return 0
        return max(1, math.ceil((1 - bucket.tokens) * self.refill_seconds))

    def _buckets_of(self, address: str, principal: str | None) -> list[_Bucket]:
        if principal is None:
            return [self._current(self._buckets, address, self.burst)]
        return [
            self._current(self._buckets, f"{address}\n{principal}", self.burst),
            self._current(self._addresses, address, self.burst * ADDRESS_FACTOR),
        ]

    def end(self, address: str, *, failed: bool, reserve: bool = True, principal: str | None = None) -> None:
        """Settle an attempt :meth:`begin` allowed: a failure costs one (its reservation, or taken now), anything
        else costs nothing (a reservation is returned).

        A success returns only its own reservation; it does not wipe the address's earlier failures. Otherwise
        whoever holds one valid credential could log in with it every few guesses and guess another's without end.
        """
        if not self.enabled or failed == reserve:  # a reserved failure is paid; an unreserved success costs nothing
            return
        for bucket in self._buckets_of(address, principal):  # one forgotten meanwhile starts full, as if new
            if reserve:
                bucket.tokens = min(bucket.burst, bucket.tokens + 1)
            else:
                # Counted after the work: many may fail at once. Never below zero, or a burst of them would lock
                # the address (and the right credential with it) out for minutes.
                bucket.tokens = max(0.0, bucket.tokens - 1)

    def __len__(self) -> int:
        return len(self._buckets)

    def _current(self, table: OrderedDict[str, _Bucket], key: str, burst: int) -> _Bucket:
        now = self._clock.now().timestamp()
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = _Bucket(float(burst), now, float(burst))
            if len(table) > self.max_addresses:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
            elapsed = max(0.0, now - bucket.at)  # a clock stepped back earns nothing, and takes nothing
            bucket.tokens = min(float(burst), bucket.tokens + elapsed / self.refill_seconds)
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
