"""Throttled log lines keyed by what happened, not by where in the code.

rclpy's ``throttle_duration_sec`` throttles per call site, so one site that reports different reasons
(unknown encoding on one camera, short data on another) would hide all but one. ``LogThrottle`` lets a
line through once per ``period_s`` per key and says how many were held back in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class LogThrottle:
    def __init__(self, period_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._period = period_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[Hashable, tuple[float, int]] = {}  # key -> (last emitted, suppressed since)

    def __call__(self, key: Hashable, emit: Callable[[str], None], message: str) -> bool:
        """Emit ``message`` through ``emit`` unless ``key`` was emitted less than a period ago."""
        with self._lock:
            now = self._clock()
            last, suppressed = self._state.get(key, (None, 0))
            if last is not None and now - last < self._period:
                self._state[key] = (last, suppressed + 1)
                return False
            self._state[key] = (now, 0)
        if suppressed:
            message = f"{message} ({suppressed} similar messages suppressed)"
        emit(message)
        return True
