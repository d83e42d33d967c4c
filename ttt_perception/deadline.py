"""Per-frame deadline: predict from measured times whether one more step still fits.

Estimates are a high quantile of recent measurements per kind of work (a step of a given batch size
and objective, or the final prediction), so that the rare slow step does not blow the budget.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Hashable

import numpy as np


class DurationEstimator:
    """Recent durations (seconds) per kind of work, and a conservative estimate of the next one."""

    def __init__(self, window: int = 32, quantile: float = 0.9):
        self.window, self.quantile = window, quantile
        self._samples: dict[Hashable, deque] = defaultdict(lambda: deque(maxlen=window))
        self._refusals: dict[Hashable, int] = defaultdict(int)

    def record(self, kind: Hashable, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            self._samples[kind].append(seconds)
            self._refusals[kind] = 0

    def estimate(self, kind: Hashable) -> float | None:
        """None until the first measurement of this kind."""
        samples = self._samples.get(kind)
        if not samples:
            return None
        return float(np.quantile(np.fromiter(samples, float), self.quantile))

    def refused(self, kind: Hashable) -> None:
        """Work of this kind was refused on its estimate. After a window of refusals in a row the
        estimate is dropped, so the work is tried once and re-measured: a passing slowdown cannot
        disable adaptation for good, and work that really does not fit costs one late frame a window."""
        self._refusals[kind] += 1
        if self._refusals[kind] >= self.window:
            self._samples.pop(kind, None)
            self._refusals[kind] = 0


class FrameDeadline:
    """The decisions for one frame: may it adapt, and may it take one more step?

    Unknown durations count as zero: the first frame takes a step and so measures it.
    """

    def __init__(self, now: float, arrival: float, budget_s: float, predict_s: float | None, step_s: float | None):
        self.deadline = arrival + budget_s if budget_s > 0 else math.inf
        self.now = now
        self.predict_s = predict_s or 0.0
        self.step_s = step_s or 0.0

    def late(self) -> bool:
        """Even the prediction alone would finish after the deadline."""
        return self.now + self.predict_s > self.deadline

    def fits(self, now: float, steps: int) -> bool:
        return now + steps * self.step_s + self.predict_s <= self.deadline

    def met(self, finished: float) -> bool:
        return finished <= self.deadline
