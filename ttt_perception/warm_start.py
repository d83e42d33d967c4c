"""Warm start: measure a fresh model's step and prediction times until they settle.

A fresh model's first steps pay one-off costs (allocations, kernel selection, a thread pool
starting); on a busy CPU with several torch threads they stay above the steady state for a few
rounds. Deadline decisions estimated from those measurements refuse steps, or call frames late,
for the first dozens of frames. ``warm_up`` calibrates round after round until a round is no longer
much faster than the one before, and keeps only that round's measurements. No rclpy here; the
node calls it at configure, before it reports active.
"""

from __future__ import annotations

from .deadline import DurationEstimator


def warm_up(adapter, max_rounds: int = 6, tolerance: float = 0.2) -> dict:
    """Calibrate ``adapter`` until times settle; the last round's times and the rounds taken.

    Settled: neither the step nor the prediction time fell by more than ``tolerance`` (a
    fraction) from the previous round. Weights and stream states are left as they were
    (``calibrate`` restores them).
    """
    previous, times, rounds = None, {}, 0
    while rounds < max_rounds:
        rounds += 1
        measured = adapter.timings
        # this round's samples only
        adapter.timings = DurationEstimator(measured.window, measured.quantile)
        times = adapter.calibrate()
        if previous is not None and all(times[key] >= (1.0 - tolerance) * previous[key]
                                        for key in times):
            break
        previous = times
    return {**times, "rounds": rounds}
