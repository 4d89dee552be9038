"""The discovery curve as a pure function (no Redis, no HTTP)."""

from __future__ import annotations

from collections.abc import Sequence


def discovery_curve(
    answers: Sequence[tuple[float, bool]], max_points: int
) -> list[tuple[float, int, int]]:
    """``(time, labelled so far, liked so far)`` after each answer (``(time, liked)`` in time
    order), thinned to at most ``max_points`` evenly spaced points; the last answer is always
    kept, so the curve ends at the totals.

    >>> discovery_curve([(1.0, False), (2.0, True), (3.0, True)], 10)
    [(1.0, 1, 0), (2.0, 2, 1), (3.0, 3, 2)]
    >>> discovery_curve([(float(t), t % 2 == 0) for t in range(10)], 3)
    [(0.0, 1, 1), (4.0, 5, 3), (9.0, 10, 5)]
    >>> discovery_curve([], 5)
    []
    """
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    full: list[tuple[float, int, int]] = []
    liked = 0
    for n, (at, good) in enumerate(answers, start=1):
        liked += bool(good)
        full.append((at, n, liked))
    if len(full) <= max_points:
        return full
    step = (len(full) - 1) / (max_points - 1)
    return [full[round(i * step)] for i in range(max_points)]
