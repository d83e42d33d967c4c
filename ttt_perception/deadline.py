"""Per-frame deadline: predict from measured times whether one more step still fits.

Estimates are a high quantile of recent measurements per kind of work (a step of a given batch size
and objective, or the final prediction), so that the rare slow step does not blow the budget.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Hashable


class DurationEstimator:
    """Recent durations (seconds) per kind of work, and a conservative estimate of the next one."""

    def __init__(self, window: int = 32, quantile: float = 0.9, longest_wait: int = 1024):
        self.window, self.quantile, self.longest_wait = window, quantile, longest_wait
        self._samples: dict[Hashable, deque] = defaultdict(lambda: deque(maxlen=window))
        self._refusals: dict[Hashable, int] = defaultdict(int)
        self._wait: dict[Hashable, int] = {}  # refusals before the next probe, when longer than a window

    def record(self, kind: Hashable, seconds: float) -> None:
        if math.isfinite(seconds) and seconds >= 0:
            if self._samples.get(kind):  # taken on its estimate, not as a probe: the wait starts afresh
                self._wait.pop(kind, None)
            self._samples[kind].append(seconds)
            self._refusals[kind] = 0

    def estimate(self, kind: Hashable) -> float | None:
        """None until the first measurement of this kind."""
        samples = self._samples.get(kind)
        if not samples:
            return None
        # np.quantile's linear interpolation, in plain Python: on 32 samples it is ~50x cheaper, and this
        # runs twice before every prediction, inside the frame's budget
        ordered = sorted(samples)
        position = self.quantile * (len(ordered) - 1)
        low = math.floor(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

    def refused(self, kind: Hashable) -> None:
        """Work of this kind was refused on its estimate. After a window of refusals in a row the
        estimate is dropped, so the work is tried once and re-measured (a probe): a passing slowdown
        cannot disable adaptation for good. Each probe that does not lead to work taken on its estimate
        doubles the wait before the next one (32, 64, ... up to ``longest_wait`` refusals), so work that
        really never fits costs few late frames."""
        self._refusals[kind] += 1
        wait = self._wait.get(kind, self.window)
        if self._refusals[kind] >= wait:
            self._samples.pop(kind, None)
            self._refusals[kind] = 0
            self._wait[kind] = min(2 * wait, self.longest_wait)


class FrameDeadline:
    """Does more work still end by ``limit``: ``steps`` more steps and, when still to come, the prediction?

    Unknown durations count as zero: the first frame takes a step and so measures it.
    """

    def __init__(self, limit: float, step_s: float | None, predict_s: float | None = None):
        self.limit = limit
        self.step_s = step_s or 0.0
        self.predict_s = predict_s or 0.0

    @classmethod
    def for_frame(cls, arrival: float, budget_s: float, step_s: float | None,
                  predict_s: float | None) -> FrameDeadline:
        """Steps before the prediction, which must be out ``budget_s`` after arrival (0: no deadline)."""
        return cls(arrival + budget_s if budget_s > 0 else math.inf, step_s, predict_s)

    def fits(self, now: float, steps: int) -> bool:
        return now + steps * self.step_s + self.predict_s <= self.limit

    def met(self, finished: float) -> bool:
        return finished <= self.limit
