"""When the next camera frame is due, from the arrivals seen so far; no rclpy.

Adapting after publishing (``adaptation.adapt_after_publish``) may use only the idle time before the
worker has another frame to answer. With several cameras on one worker, that is the earliest next
arrival over all of them. Each camera's period is the median of its recent arrival intervals, so one
late or dropped frame does not move it.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import deque
from collections.abc import Hashable

RECENT_INTERVALS = 15
STALLED_PERIODS = 3


class NextFrameClock:
    def __init__(self, recent: int = RECENT_INTERVALS):
        self._lock = threading.Lock()
        self._last: dict[Hashable, float] = {}
        self._intervals: dict[Hashable, deque[float]] = {}
        self._recent = recent

    def arrived(self, camera: Hashable, time_s: float) -> None:
        with self._lock:
            last = self._last.get(camera)
            if last is not None and time_s > last:
                self._intervals.setdefault(camera, deque(maxlen=self._recent)).append(time_s - last)
            self._last[camera] = time_s

    def period(self, camera: Hashable) -> float | None:
        """Median interval between this camera's frames; None before two frames."""
        with self._lock:
            intervals = self._intervals.get(camera)
            return statistics.median(intervals) if intervals else None

    def next_due(self, now: float) -> float | None:
        """Earliest expected arrival after ``now`` over the cameras with a known period; None if none.

        A camera a little late counts from its next slot on the same beat; one silent for more than
        ``STALLED_PERIODS`` of its periods is not expected (a stopped camera must not cut every other
        camera's idle time to its own beat).
        """
        with self._lock:
            due = []
            for camera, intervals in self._intervals.items():
                if intervals:
                    last, period = self._last[camera], statistics.median(intervals)
                    if now - last <= STALLED_PERIODS * period:
                        due.append(last + period * max(1, math.ceil((now - last) / period)))
        return min(due) if due else None

    def forget(self) -> None:
        with self._lock:
            self._last.clear()
            self._intervals.clear()
