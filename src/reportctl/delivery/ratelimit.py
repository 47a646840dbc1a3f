"""A rate limit that holds over every one-second window, as the receiving server measures it.

A token bucket lets a full bucket plus a second's refill through in one second; this keeps a log instead. A send
holds its recipients from the moment it starts until one window after it ends, so the sends of any window, counted
by when they reach the server (after they start, before they end), never add up to more than the limit.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class WindowRateLimit:
    """At most ``limit`` units (recipients) in any ``window`` seconds."""

    def __init__(self, limit: float, window: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if limit <= 0:
            raise ValueError("a rate limit must be above 0")
        if limit < 1:  # 0.2 per second is 1 per 5 seconds
            window, limit = window / limit, 1
        self.limit = int(limit)
        self.window = window
        self._clock = clock
        self._ended: deque[tuple[float, int]] = deque()
        self._in_flight = 0
        self._condition = threading.Condition()

    def acquire(self, units: int) -> None:
        """Wait until ``units`` more fit in the window, then hold them; call ``release`` when the send ends."""
        units = self.units(units)
        with self._condition:
            while True:
                now = self._clock()
                while self._ended and self._ended[0][0] <= now - self.window:
                    self._ended.popleft()
                used = self._in_flight + sum(count for _, count in self._ended)
                if used + units <= self.limit:
                    self._in_flight += units
                    return
                wait = self._ended[0][0] + self.window - now if self._ended else self.window
                self._condition.wait(timeout=max(wait, 0.001))

    def units(self, units: int) -> int:
        """What a send of ``units`` counts for: a send larger than the limit holds the whole window."""
        return min(units, self.limit)

    def release(self, units: int) -> None:
        """The send of ``units`` has ended; they count for one more window."""
        units = self.units(units)
        with self._condition:
            self._in_flight -= units
            self._ended.append((self._clock(), units))
            self._condition.notify_all()
