"""Per-token rate limit: a token bucket per user, in this process (N workers allow N times the
rate; good enough to stop a runaway script, not a distributed quota)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """``rate`` requests per second on average, bursts of up to ``burst``; ``rate == 0`` is off.

    >>> now = [0.0]
    >>> b = TokenBuckets(rate=1.0, burst=2, clock=lambda: now[0])
    >>> [b.take("a") for _ in range(3)]
    [0.0, 0.0, 1.0]
    >>> now[0] = 1.0; b.take("a"), b.take("b")
    (0.0, 0.0)
    """

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, t)

    def take(self, key: str) -> float:
        """Spend one token: 0.0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """Seconds until ``key`` could spend a token, without spending one (0.0: it can now).

        >>> now = [0.0]
        >>> b = TokenBuckets(rate=0.5, burst=1, clock=lambda: now[0])
        >>> b.wait("a"), b.take("a"), b.wait("a")
        (0.0, 0.0, 2.0)
        """
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def forget_idle(self, max_keys: int) -> None:
        """Bound memory against many keys (e.g. client addresses): past ``max_keys``, drop
        the buckets that have refilled completely (they hold no state worth keeping)."""
        if len(self._buckets) <= max_keys:
            return
        now = self.clock()
        full_after = self.burst / self.rate if self.rate > 0 else 0.0
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """Whole seconds for the ``Retry-After`` header (at least 1).

        >>> TokenBuckets.retry_after(0.2), TokenBuckets.retry_after(1.5)
        ('1', '2')
        """
        return str(max(1, math.ceil(wait_s)))
