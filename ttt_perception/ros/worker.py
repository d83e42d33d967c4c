"""The thread that runs the model, so that executor callbacks never do.

``FrameWorker`` takes the next frame from ``LatestFrameSlots`` and calls ``handle(camera, frame)``. An
exception from ``handle`` goes to ``on_error(camera, frame, exc)`` and the loop goes on: one bad frame
never stops the node. Between frames it calls ``idle()``, which may do work that is due (the pre-warm
before the next frame) and returns the seconds until it wants to be called again (None: not before the
next frame). No rclpy here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from .frame_buffer import LatestFrameSlots

IDLE_POLL_S = 0.5  # the longest wait for a frame before the loop looks at ``closed`` again


class FrameWorker:
    def __init__(
        self,
        slots: LatestFrameSlots,
        handle: Callable[[Hashable, Any], None],
        on_error: Callable[[Hashable, Any, BaseException], None],
        name: str = "ttt_perception_worker",
        idle: Callable[[], float | None] | None = None,
    ):
        self._slots = slots
        self._idle = idle
        self._handle = handle
        self._on_error = on_error
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> FrameWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._slots.closed:
            item = self._slots.take(timeout=self._idle_work())
            if item is None:
                continue
            camera, frame = item
            self._busy.set()
            try:
                self._handle(camera, frame)
            except Exception as exc:  # noqa: BLE001 - reported, and the worker keeps going
                try:
                    self._on_error(camera, frame, exc)
                except Exception:  # noqa: BLE001 - an error reporter must not end the loop either
                    pass
            finally:
                self._busy.clear()

    def _idle_work(self) -> float:
        """Run ``idle`` and return how long to wait for a frame before calling it again (at most 0.5 s)."""
        wait = None
        if self._idle is not None:
            try:
                wait = self._idle()
            except Exception:  # noqa: BLE001 - ``idle`` logs its own failures; they must never end the loop
                wait = None
        return IDLE_POLL_S if wait is None else min(IDLE_POLL_S, max(0.0, wait))

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Close the slots and wait for the frame in work to finish; True if the thread ended."""
        self._slots.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
