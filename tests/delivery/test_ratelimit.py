"""The window rate limit: no one-second window, a send counted from its start to its end, holds more than the limit."""

from __future__ import annotations

import threading

import pytest

from reportctl.delivery.ratelimit import WindowRateLimit


class FakeClock:
    """Time that moves only when a waiter would sleep: the limiter's waits become exact jumps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(
    limit: WindowRateLimit, clock: FakeClock, sends: list[int], duration: float
) -> list[tuple[float, float, int]]:
    """Run ``sends`` one after another; each takes ``duration``; returns (start, end, units) of each."""
    log = []
    original_wait = threading.Condition.wait

    def jump(self: threading.Condition, timeout: float | None = None) -> bool:
        clock.now += timeout or 0.0
        return False

    threading.Condition.wait = jump  # type: ignore[method-assign]
    try:
        for units in sends:
            limit.acquire(units)
            start = clock.now
            clock.now += duration
            limit.release(units)
            log.append((start, clock.now, units))
    finally:
        threading.Condition.wait = original_wait  # type: ignore[method-assign]
    return log


@pytest.mark.parametrize(("rate", "batch", "duration"), [(100, 10, 0.01), (1000, 100, 0.05), (5, 5, 0.3)])
def test_no_one_second_window_holds_more_than_the_limit(rate: int, batch: int, duration: float) -> None:
    clock = FakeClock()
    log = _drive(WindowRateLimit(rate, clock=clock), clock, [batch] * 50, duration)
    # a send reaches the server somewhere between its start and end: count every send overlapping each window
    for start, _, _ in log:
        window_end = start + 1.0
        held = sum(units for s, e, units in log if s < window_end and e > start)
        assert held <= rate, f"window from {start:.3f} s holds {held}"
    total_time = log[-1][1]
    assert sum(units for *_, units in log) / total_time > rate * 0.7, "the limit is used, not just respected"


def test_a_rate_below_one_per_second_spaces_single_sends() -> None:
    clock = FakeClock()
    log = _drive(WindowRateLimit(0.5, clock=clock), clock, [1, 1, 1], 0.0)
    assert [start for start, _, _ in log] == [0.0, 2.0, 4.0]


def test_a_send_larger_than_the_limit_holds_the_whole_window() -> None:
    limit = WindowRateLimit(10)
    assert limit.units(25) == 10


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        WindowRateLimit(0)
