"""Latest-frame-only slots, one per camera, shared by one consumer.

A camera's slot holds at most one waiting frame. A frame that arrives while the previous one still
waits replaces it, and the replaced frame is counted as dropped: the model always works on the newest
frame and a slow model never builds a queue. ``take`` hands out the waiting frame that arrived first,
so cameras are served in turn. No rclpy here: the node's subscription callbacks call ``put``, its worker
thread calls ``take``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable
from typing import Any


class LatestFrameSlots:
    """Drop-oldest single-frame slots keyed by camera, with a per-camera drop counter."""

    def __init__(self, cameras: Iterable[Hashable] = (), clock=time.monotonic):
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, tuple[float, Any]] = {}
        self._dropped: dict[Hashable, int] = {camera: 0 for camera in cameras}
        self._closed = False

    def put(self, camera: Hashable, frame: Any) -> Any | None:
        """Store ``frame`` as the camera's waiting frame; return the frame it replaced (dropped) or None."""
        with self._cond:
            previous = self._waiting.get(camera)
            # a replaced frame keeps its place in line: a busy camera cannot starve the others
            since = previous[0] if previous is not None else self._clock()
            self._waiting[camera] = (since, frame)
            if previous is not None:
                self._dropped[camera] = self._dropped.get(camera, 0) + 1
            self._cond.notify()
            return None if previous is None else previous[1]

    def take(self, timeout: float | None = None) -> tuple[Hashable, Any] | None:
        """Remove and return ``(camera, frame)`` that has waited longest; None on timeout or close."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._waiting or self._closed, timeout=timeout):
                return None
            if self._closed:
                return None
            camera = min(self._waiting, key=lambda key: self._waiting[key][0])
            _, frame = self._waiting.pop(camera)
            return camera, frame

    def clear(self) -> dict[Hashable, Any]:
        """Remove every waiting frame (not counted as dropped) and return them by camera."""
        with self._cond:
            waiting = {camera: frame for camera, (_, frame) in self._waiting.items()}
            self._waiting.clear()
            return waiting

    def close(self) -> None:
        """Wake the consumer; ``take`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def dropped(self, camera: Hashable) -> int:
        with self._cond:
            return self._dropped.get(camera, 0)

    def waiting(self, camera: Hashable) -> bool:
        with self._cond:
            return camera in self._waiting
