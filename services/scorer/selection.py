"""Which alerts each user receives: budgets enforced in streaming, for all users at once.

A user asks for about B alerts per period out of the N the survey sends. We cannot rank a whole
night before publishing, so each user keeps a running distribution of their own scores (a decayed
histogram on the logit scale, which resolves the crowded ends near 0 and 1) and passes an alert
when it lands in the top ``B/N`` quantile. The budget is split over strategies: ``top`` (score
above the quantile), ``uncertain`` (score closest to 0.5, where a label teaches the model most) and
``random`` (unbiased exploration); each delivery records which one chose it. Deliveries are
paced by a token bucket that refills with the stream (B/N per alert, after a small burst), so a
survey that observes 8 hours a night still gets the whole nightly budget spread over its night,
and a count of recent deliveries per user makes the budget a hard cap: at most B deliveries in any
rolling period, even while the quantile is still learning. A nightly budget is per observing
night: a pause in the stream of ``night_gap_s`` (4 h) or more starts a new night, whose budget
does not wait for the previous night's deliveries to age out of the rolling 24 h (a night that
spent its budget late, or a night that starts earlier than the one before, would otherwise get
only what is left).

N, the alerts per period, is counted exactly over the last period (in 1,440 buckets). Until a
whole period has been seen (a new scorer, or after a gap longer than the period) it is taken as
at least ``min_expected``: the operator's prior for the survey's volume (``AHUNT_SCORER_
EXPECTED_ALERTS``). Too low a prior spends a fresh scorer's first budget early in its first night.

Time is a clock supplied by the caller: the alerts' own observation time (``clock.EventClock``,
robust to outliers) or wall time. It only goes forward, except that a jump back by more than a
night gap rebases the state (``_rewind``). Spending survives restarts through ``restore``.
Everything is numpy over (alerts x users) arrays; no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from services.common.users import UserProfile

STRATEGY_ORDER = ("top", "uncertain", "random")
_BINS = 1024
_LOGIT_RANGE = 12.0


@dataclass(frozen=True)
class Pick:
    alert: int  # row in the batch
    user: int  # column (index into the selector's users)
    reason: str  # "top" | "uncertain" | "random"


class RollingCount:
    """Alerts seen in the last ``period`` seconds of a monotone clock, in 1,440 buckets."""

    BUCKETS = 1440

    def __init__(self, period: float) -> None:
        self.period = period
        self.width = period / self.BUCKETS
        self.buckets: deque[list[int]] = deque()  # [bucket index, alerts]
        self.total = 0
        self.since: float | None = None  # start of the unbroken history the count covers

    def add(self, now: float, n: int) -> None:
        b = int(now // self.width)
        while self.buckets and self.buckets[0][0] <= b - self.BUCKETS:
            self.total -= self.buckets.popleft()[1]
        if not self.buckets:
            self.since = now  # nothing within a period: the history starts again here
        if self.buckets and self.buckets[-1][0] == b:
            self.buckets[-1][1] += n
        else:
            self.buckets.append([b, n])
        self.total += n

    def covers_a_period(self, now: float) -> bool:
        return self.since is not None and now - self.since >= self.period


def _logit_bins(s: np.ndarray) -> np.ndarray:
    p = np.clip(s, 1e-7, 1 - 1e-7)
    z = np.log(p) - np.log1p(-p)
    b = (z + _LOGIT_RANGE) / (2 * _LOGIT_RANGE) * _BINS
    return np.clip(b.astype(np.int64), 0, _BINS - 1)


def _uncertainty_bins(s: np.ndarray) -> np.ndarray:
    u = np.abs(np.asarray(s, dtype=np.float64) - 0.5) * 2.0  # 0 = most uncertain, 1 = certain
    return np.clip((u * _BINS).astype(np.int64), 0, _BINS - 1)


def _upper_threshold_bins(hist: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Per row: the lowest bin such that the mass at or above it is <= fraction (>= 1 bin)."""
    tail = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # mass at or above each bin
    total = tail[:, 0:1]
    share = np.where(total > 0, tail / np.maximum(total, 1e-12), 0.0)
    ok = (share <= fraction[:, None]) & (tail > 0)
    # First bin (from the bottom) whose tail share fits. Where even the highest occupied bin
    # holds more than the fraction (tiny budgets, few alerts seen), that bin is the threshold:
    # the best alerts still pass, and the pacing and the cap limit how many.
    occupied = hist > 0
    highest = _BINS - 1 - np.argmax(occupied[:, ::-1], axis=1)
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), highest)
    return np.asarray(first)


def _lower_threshold_bins(hist: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Per row: the highest bin such that the mass at or below it is <= fraction."""
    head = np.cumsum(hist, axis=1)
    total = head[:, -1:]
    share = np.where(total > 0, head / np.maximum(total, 1e-12), 0.0)
    ok = share <= fraction[:, None]
    # number of leading bins that fit, minus one; -1 means none
    return np.asarray(ok.sum(axis=1) - 1)


@dataclass
class BudgetSelector:
    """Streaming per-user selection with budgets. Create one per set of users; ``resize`` keeps
    the state of users that stay (by name) when profiles change."""

    users: list[str]
    budgets: np.ndarray  # (U,) alerts per period
    periods: np.ndarray  # (U,) seconds
    shares: np.ndarray  # (U, 3) strategy shares in STRATEGY_ORDER, rows sum to 1
    # The score distribution follows the stream: its half-life is an eighth of a period's alerts
    # (at least ``min_half_life``), so a drift (a dismissed class, new data) is absorbed within a
    # night whatever the survey's rate. A new model resets it outright (``forget_scores``).
    min_half_life: float = 100.0
    # Until a whole period has been seen, assume at least this many alerts per period are coming,
    # so the first batches do not spend the whole budget on whatever arrives first.
    min_expected: float = 1_000.0
    burst: float = 0.1  # share of the budget available at once
    # The score thresholds aim this much above the budget's share of the stream: a quantile read
    # off binned, decaying histograms lands below its target more often than above, and the
    # pacing and the hard cap stop any excess, so without it users get 75-90% of their budget.
    headroom: float = 1.25
    # The share of the stream this selector sees: a scorer replica consuming k of a topic's n
    # partitions sees about k/n of the alerts, so it spends k/n of each budget (set on every
    # rebalance). Without it, R replicas would deliver up to R budgets.
    share: float = 1.0
    night_gap_s: float = 4 * 3_600.0  # a pause this long in the stream ends an observing night
    refresh_alerts: int = 2048  # thresholds are recomputed this often

    def __post_init__(self) -> None:
        n = len(self.users)
        self.budgets = np.asarray(self.budgets, dtype=np.float64).reshape(n)
        self.periods = np.asarray(self.periods, dtype=np.float64).reshape(n)
        self.shares = np.asarray(self.shares, dtype=np.float64).reshape(n, 3)
        self.hist_score = np.zeros((n, _BINS))
        self.hist_uncertain = np.zeros((n, _BINS))
        # Decayed counts of alerts seen and of those eligible for each user (filters, dismissed
        # classes), with the histograms' decay: the budget is a share of what a user can receive,
        # so a user whose filters pass 5% of the stream still gets B, from that 5%.
        self.seen_mass = np.zeros(n)
        self.eligible_mass = np.zeros(n)
        self._pending_eligible = np.zeros(n)
        self.recent: list[deque[float]] = [deque() for _ in range(n)]  # delivery times
        # Pacing: a token bucket that starts with a small burst and refills at budget/period, so
        # the budget is spread over the period instead of spent on the first alerts of a night.
        self.tokens = np.maximum(1.0, np.ceil(self.budgets * self.burst)).clip(max=self.budgets)
        # Alerts per period, one count per distinct period among the users.
        self.counts = {float(p): RollingCount(float(p)) for p in np.unique(self.periods)}
        self.seen = 0
        self.clock: float | None = None
        self.night_start: float | None = None  # when the current observing night began
        self._pending: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self._pending_n = 0
        self._top_bin: np.ndarray | None = None
        self._unc_bin: np.ndarray | None = None
        self.interests: list[dict[str, object]] = []  # what each user's scores mean (carry-over)

    # -- state ---------------------------------------------------------------------------------

    def _advance(self, now: float, n: int) -> None:
        if self.clock is None:
            self.clock = self.night_start = now
        if now - self.clock >= self.night_gap_s:  # daytime: a new night, fresh nightly budgets
            for user in np.flatnonzero(self.periods >= 86_400.0):
                self.recent[user].clear()
            self.night_start = now
        elif now < self.clock - self.night_gap_s:
            self._rewind(now)
        self.clock = max(self.clock, now)
        for count in self.counts.values():
            count.add(self.clock, n)
        # Pacing follows the stream: each alert is worth B/N of a token, so a period's alerts
        # earn about one budget wherever in the day they arrive.
        allowance = self.allowance()
        self.tokens = np.minimum(
            self._token_cap(allowance), self.tokens + allowance * n / self.expected()
        )

    def _rewind(self, now: float) -> None:
        """The clock went back by more than a night gap (``clock.EventClock`` does that only when
        the stream's consensus says the clock was wrong, or the stream really went back): what
        was delivered stays spent, at the new time; the volume is counted again from here."""
        for times in self.recent:
            clipped = [min(t, now) for t in times]
            times.clear()
            times.extend(clipped)
        self.counts = {p: RollingCount(p) for p in self.counts}
        self.clock = self.night_start = now

    def restore(
        self, spent: dict[str, list[float]], clock: float | None, night_start: float | None
    ) -> None:
        """Take up the spending of an earlier replica (from Redis, ``services.scorer.budgets``):
        each user's delivery times, the clock and the night's start. Deliveries of an earlier
        night do not count against a nightly budget; the rest count until they age out."""
        if clock is not None and (self.clock is None or clock > self.clock):
            self.clock = clock
        if night_start is not None and (self.night_start is None or night_start > self.night_start):
            self.night_start = night_start
        for i, user in enumerate(self.users):
            times = sorted(spent.get(user, ()))
            if self.periods[i] >= 86_400.0 and self.night_start is not None:
                times = [t for t in times if t >= self.night_start]
            self.recent[i] = deque(times)

    def expected(self) -> np.ndarray:
        """(U,) alerts per period each user's budget is a share of."""
        out = np.full(len(self.users), self.min_expected)
        for period, count in self.counts.items():
            n = float(count.total)
            if not count.covers_a_period(self.clock or 0.0):
                n = max(n, self.min_expected)
            out[self.periods == period] = max(n, 1.0)
        return out

    def _observe(
        self, score_bins: np.ndarray, uncertainty_bins: np.ndarray, eligible: np.ndarray
    ) -> None:
        """Queue the batch's eligible (alert, user) pairs for the histograms; fold the queue in
        and recompute the thresholds every ``refresh_alerts`` alerts. The distributions move
        slowly, and recomputing (users x bins) cumulative sums for every batch would dominate
        with 1,000 users."""
        n, n_users = score_bins.shape
        offsets = (np.arange(n_users) * _BINS)[None, :]
        self._pending[0].append((score_bins + offsets)[eligible])
        self._pending[1].append((uncertainty_bins + offsets)[eligible])
        self._pending_eligible += eligible.sum(axis=0)
        self._pending_n += n
        self.seen += n
        per_period = float(self.expected().max(initial=0.0))
        # Refresh every ``refresh_alerts``, sooner on a small stream, but never more often than
        # once per ``n_users`` alerts: a refresh costs (users x bins), so that bounds its share
        # per alert whatever the number of users.
        every = min(self.refresh_alerts, max(64.0, per_period / 16, float(n_users)))
        if self._top_bin is not None and self._pending_n < every:
            return
        decay = 0.5 ** (self._pending_n / max(self.min_half_life, per_period / 8))
        size = n_users * _BINS
        for hist, queued in (
            (self.hist_score, self._pending[0]),
            (self.hist_uncertain, self._pending[1]),
        ):
            hist *= decay
            # bincount on flat (user, bin) indices: one pass, far cheaper than np.add.at
            hist += np.bincount(np.concatenate(queued), minlength=size).reshape(-1, _BINS)
            queued.clear()
        self.seen_mass = self.seen_mass * decay + self._pending_n
        self.eligible_mass = self.eligible_mass * decay + self._pending_eligible
        self._pending_eligible[:] = 0.0
        self._pending_n = 0
        f = self.fractions() * self.headroom
        self._top_bin = _upper_threshold_bins(self.hist_score, f * self.shares[:, 0])
        self._unc_bin = _lower_threshold_bins(self.hist_uncertain, f * self.shares[:, 1])

    def forget_scores(self) -> None:
        """Drop the score distributions (a new model's scores mean something else); budget
        accounting is kept. Thresholds are re-learnt from the next batches."""
        self.hist_score[:] = 0.0
        self.hist_uncertain[:] = 0.0
        self.seen_mass[:] = self.eligible_mass[:] = self._pending_eligible[:] = 0.0
        for queued in self._pending:
            queued.clear()
        self._pending_n = 0
        self._top_bin = self._unc_bin = None

    def fractions(self) -> np.ndarray:
        """(U,) the share of each user's eligible alerts they should receive."""
        eligible = np.where(
            self.seen_mass > 0, self.eligible_mass / np.maximum(self.seen_mass, 1e-12), 1.0
        )
        return np.clip(self.allowance() / (self.expected() * np.maximum(eligible, 1e-9)), 0.0, 1.0)

    def allowance(self) -> np.ndarray:
        """(U,) this selector's part of each budget per period."""
        return self.budgets * self.share

    @staticmethod
    def _token_cap(allowance: np.ndarray) -> np.ndarray:
        # at least one token where there is any allowance, so a small part can still deliver
        return np.where(allowance > 0, np.maximum(allowance, 1.0), 0.0)

    def remaining(self, user: int) -> int:
        """Deliveries still allowed to ``user`` in the rolling period ending at the clock."""
        times = self.recent[user]
        horizon = (self.clock or 0.0) - self.periods[user]
        while times and times[0] <= horizon:
            times.popleft()
        return int(np.ceil(self.allowance()[user] - 1e-9)) - len(times)

    # -- selection -----------------------------------------------------------------------------

    def select(
        self,
        scores: np.ndarray,
        now: float,
        eligible: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> list[Pick]:
        """Choose deliveries for a batch: ``scores`` (N, U) in [0, 1], ``eligible`` (N, U) bool
        (filters), ``now`` the clock. Never exceeds a user's budget in the rolling period."""
        scores = np.asarray(scores, dtype=np.float64)
        n, n_users = scores.shape
        if n_users != len(self.users) or n == 0:
            if n_users != len(self.users):
                raise ValueError(f"scores have {n_users} users, selector has {len(self.users)}")
            return []
        rng = rng or np.random.default_rng()
        self._advance(now, n)
        score_bins, uncertainty_bins = _logit_bins(scores), _uncertainty_bins(scores)
        ok = np.ones_like(scores, dtype=bool) if eligible is None else np.array(eligible, bool)
        self._observe(score_bins, uncertainty_bins, ok)
        assert self._top_bin is not None and self._unc_bin is not None
        f = self.fractions()
        ok &= (self.tokens >= 1.0)[None, :]  # users with no budget left cost nothing below

        # Candidate masks per strategy (N, U).
        top = (score_bins >= self._top_bin[None, :]) & (self.shares[:, 0] > 0)[None, :]
        # A budget as large as the stream takes everything, whatever the mix.
        top |= (f >= 1.0)[None, :]
        unc = (uncertainty_bins <= self._unc_bin[None, :]) & (self.shares[:, 1] > 0)[None, :]
        rnd = rng.random(scores.shape) < (f * self.shares[:, 2])[None, :]

        # One candidate list over strategies, in random order: when the budget is scarce every
        # strategy loses the same share, so the mix the user asked for holds. A pair chosen by
        # several strategies counts for the first in STRATEGY_ORDER.
        parts: list[np.ndarray] = []
        claimed = np.zeros_like(ok)
        for k, mask in enumerate((top, unc, rnd)):
            candidates = mask & ok & ~claimed
            claimed |= candidates
            pos = np.argwhere(candidates)
            parts.append(np.column_stack([pos, np.full(len(pos), k)]))
        triples = np.concatenate(parts)
        picks: list[Pick] = []
        for i in rng.permutation(len(triples)):
            r, c, kind = (int(v) for v in triples[i])
            if self.tokens[c] < 1.0 or self.remaining(c) < 1:
                continue
            self.tokens[c] -= 1.0
            self.recent[c].append(self.clock or 0.0)
            picks.append(Pick(r, c, STRATEGY_ORDER[kind]))
        return picks


def selector_for(
    profiles: Sequence[UserProfile],
    previous: BudgetSelector | None = None,
    min_expected: float | None = None,
) -> BudgetSelector:
    """A selector for ``profiles``, carrying over the state of users that were already there
    (profile edits must not reset a user's score distribution or refill their budget).
    ``min_expected`` (default: the previous selector's, else 1,000) is the prior for the alerts
    per period until a whole period has been seen."""
    names = [p.name for p in profiles]
    sel = BudgetSelector(
        names,
        np.array([p.budget.alerts for p in profiles], dtype=np.float64),
        np.array([p.budget.seconds for p in profiles], dtype=np.float64),
        np.array(
            [[p.strategy_shares()[s] for s in STRATEGY_ORDER] for p in profiles], dtype=np.float64
        ).reshape(len(names), 3),
    )
    if min_expected is not None:
        sel.min_expected = float(min_expected)
    elif previous is not None:
        sel.min_expected = previous.min_expected
    sel.interests = [p.interest.to_dict() for p in profiles]
    if previous is not None:
        sel.clock, sel.seen, sel.night_start = previous.clock, previous.seen, previous.night_start
        # The same stream: the volume counted so far carries over for every period still used.
        sel.counts = {p: previous.counts.get(p, count) for p, count in sel.counts.items()}
        sel.share = previous.share
        old = {u: i for i, u in enumerate(previous.users)}
        for i, u in enumerate(names):
            if u in old:
                j = old[u]
                # Budget accounting always carries over; the score distribution only while the
                # interest that defines the scores is unchanged.
                if previous.interests and previous.interests[j] == sel.interests[i]:
                    sel.hist_score[i] = previous.hist_score[j]
                    sel.hist_uncertain[i] = previous.hist_uncertain[j]
                    sel.seen_mass[i] = previous.seen_mass[j]
                    sel.eligible_mass[i] = previous.eligible_mass[j]
                sel.recent[i] = deque(previous.recent[j])
                sel.tokens[i] = min(previous.tokens[j], sel.budgets[i])
    return sel
