"""The budget clock in event time, robust to alerts dated far from the others (pure).

The selector's clock decides when a night ends and what the rolling period holds. It used to be
the latest observation time of each batch, so one alert dated 10 years ahead moved the clock 10
years on: every delivery of the following nights then counted against that far-away night and
users received 1, 4, 0, 0 alerts instead of 5, 5, 5. An alert from the past cannot move a clock
that only goes forward, but one at the very start could set it.

Here the clock is the ``agree``-th latest of the last ``window`` alerts' times (8th of 64): it
follows the stream within 8 alerts, fewer than 8 alerts dated ahead cannot move it however far
ahead they are, and alerts from the past cannot move it back. A real change (a new night) moves
it once 8 alerts agree, a few seconds into a night of thousands. Until 8 alerts have been seen
the clock is provisional (the very first alert may be the outlier) and follows what the window
says, back as well as forward; the selector rebases its state when it goes back by more than a
night gap (``BudgetSelector._rewind``). From then on it only goes forward: a stream that mixes
alerts from other years (an archive replayed into the live topic) cannot make it flap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

MJD_UNIX_EPOCH = 40587.0


def unix_seconds(mjd: Iterable[float]) -> np.ndarray:
    """Observation times (MJD) as unix seconds.

    >>> float(unix_seconds([40588.0])[0])
    86400.0
    """
    return (np.asarray(list(mjd), dtype=np.float64) - MJD_UNIX_EPOCH) * 86_400.0


class EventClock:
    """A monotone clock from alerts' event times (module docstring)."""

    def __init__(self, window: int = 64, agree: int = 8) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.agree = min(agree, window)
        self.now: float | None = None
        self.confirmed = False  # set once ``agree`` alerts stood behind the clock

    def advance(self, times: Iterable[float]) -> float:
        """Add a batch's event times (unix seconds); the clock after them.

        >>> clock = EventClock(window=6, agree=2)
        >>> clock.advance([100.0, 101.0, 102.0, 10 * 365 * 86_400.0])  # one alert 10 years ahead
        102.0
        >>> clock.advance([103.0, -1e9, 104.0])  # one from the past
        104.0
        >>> first = EventClock(window=6, agree=2)
        >>> first.advance([10 * 365 * 86_400.0])  # alone, the very first: provisional
        315360000.0
        >>> first.advance([100.0, 101.0])  # two alerts agree: the clock goes back to them
        101.0
        """
        self.recent.extend(float(t) for t in times)
        if not self.recent:
            raise ValueError("the clock needs at least one event time")
        ordered = np.sort(np.fromiter(self.recent, np.float64))
        agreed = float(ordered[-min(self.agree, len(ordered))])
        if self.now is None or not self.confirmed or agreed > self.now:
            self.now = agreed
        self.confirmed = self.confirmed or len(ordered) >= self.agree
        return self.now
