"""Per-camera counters and recent statistics behind ``/diagnostics``; thread-safe, no rclpy.

Every received frame ends in exactly one of: published, dropped (replaced by a newer frame, or
discarded at deactivation), rejected (bad input, counted by reason) or failed (the adapter raised).
Frames still waiting or in work make up the difference (``in_flight``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

WINDOW_S = 10.0  # rates and "recent" event counts are over this many seconds
RECENT_FRAMES = 100  # deadline fraction, steps and timing percentiles are over this many frames


# what a camera counts, in total and over the last window
EVENT_KINDS = ("received", "published", "dropped", "rejected", "failed", "auto_resets", "empty_frame_id", "bad_stamp")


class CameraStats:
    def __init__(self, camera: str, clock=time.monotonic, window_s: float = WINDOW_S):
        self.camera = camera
        self._clock = clock
        self._window = window_s
        self._lock = threading.Lock()
        self._created = clock()
        self.counts: dict[str, int] = dict.fromkeys(EVENT_KINDS, 0)
        self.rejected_by_reason: dict[str, int] = {}
        self.last_auto_reset = ""
        self.last_error = ""
        self._events: dict[str, deque[float]] = {kind: deque() for kind in EVENT_KINDS}
        self._frames: deque[tuple[bool, int, float, float]] = deque(maxlen=RECENT_FRAMES)

    def _event(self, kind: str, count: int = 1) -> None:
        now = self._clock()
        self.counts[kind] += count
        events = self._events[kind]
        for _ in range(count):
            events.append(now)

    def received(self) -> None:
        with self._lock:
            self._event("received")

    def dropped(self, count: int = 1) -> None:
        if count:
            with self._lock:
                self._event("dropped", count)

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._event("rejected")
            self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def failed(self, error: str) -> None:
        with self._lock:
            self._event("failed")
            self.last_error = error

    def empty_frame_id(self) -> None:
        with self._lock:
            self._event("empty_frame_id")

    def bad_stamp(self) -> None:
        """A header stamp that is no time (deadline.clock stamp): the frame is answered all the same."""
        with self._lock:
            self._event("bad_stamp")

    def published(self, report: Mapping[str, Any]) -> None:
        """A frame answered; ``report`` is the adapter's ``FrameReport.as_dict()``."""
        with self._lock:
            self._event("published")
            self._frames.append((bool(report.get("deadline_met", True)), int(report.get("steps_taken", 0)),
                                 float(report.get("adapt_ms", 0.0)), float(report.get("total_ms", 0.0))))
            if report.get("auto_reset"):
                self._event("auto_resets")
                self.last_auto_reset = str(report["auto_reset"])

    def snapshot(self) -> dict[str, Any]:
        """Totals, rates over the window, events in the window, and recent-frame statistics."""
        with self._lock:
            now = self._clock()
            recent = {}
            for kind, events in self._events.items():
                while events and events[0] < now - self._window:
                    events.popleft()
                recent[kind] = len(events)
            span = max(min(self._window, now - self._created), 1e-3)
            frames = list(self._frames)
            counts = dict(self.counts)
            snap: dict[str, Any] = {
                "camera": self.camera,
                "counts": counts,
                "rejected_by_reason": dict(self.rejected_by_reason),
                "recent": recent,
                "input_hz": recent["received"] / span,
                "output_hz": recent["published"] / span,
                "in_flight": counts["received"] - counts["published"] - counts["dropped"] - counts["rejected"]
                - counts["failed"],
                "last_auto_reset": self.last_auto_reset,
                "last_error": self.last_error,
                "window_s": self._window,
                "age_s": now - self._created,
            }
        snap.update(_frame_statistics(frames))
        return snap


def _frame_statistics(frames) -> dict[str, float | None]:
    if not frames:
        return {"frames": 0, "deadline_met_fraction": None, "mean_steps": None, "adapt_ms_p50": None,
                "adapt_ms_p95": None, "total_ms_p95": None}
    met, steps, adapt, total = (np.asarray(column, dtype=np.float64) for column in zip(*frames))
    return {
        "frames": len(frames),
        "deadline_met_fraction": float(met.mean()),
        "mean_steps": float(steps.mean()),
        "adapt_ms_p50": float(np.percentile(adapt, 50)),
        "adapt_ms_p95": float(np.percentile(adapt, 95)),
        "total_ms_p95": float(np.percentile(total, 95)),
    }


# ---- health ------------------------------------------------------------------------------------

OK, WARN, ERROR = 0, 1, 2
MIN_DEADLINE_FRACTION = 0.8
MAX_DROP_FRACTION = 0.5
STALL_S = 5.0


def assess(snapshot: Mapping[str, Any], active: bool, input_hint: str = "") -> tuple[int, str]:
    """Level (OK/WARN/ERROR) and the reasons, from one camera's snapshot."""
    if not active:
        return OK, "inactive: frames are ignored"
    recent = snapshot["recent"]
    errors, warnings = [], []
    if recent["failed"]:
        errors.append(f"{recent['failed']} frames failed in the last {snapshot['window_s']:.0f} s"
                      f" (last: {snapshot['last_error']})")
    if recent["received"] and not recent["published"] and snapshot["age_s"] >= STALL_S \
            and recent["received"] > recent["rejected"] + recent["failed"]:
        errors.append(f"{recent['received']} frames received but none answered in the last "
                      f"{snapshot['window_s']:.0f} s")
    if not recent["received"] and snapshot["age_s"] >= STALL_S:
        warnings.append("no frames received" + (f" ({input_hint})" if input_hint else ""))
    if recent["rejected"]:
        reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(snapshot["rejected_by_reason"].items()))
        warnings.append(f"{recent['rejected']} bad frames rejected recently (totals: {reasons})")
    if recent["received"] and recent["dropped"] / recent["received"] > MAX_DROP_FRACTION:
        warnings.append(f"dropping {100.0 * recent['dropped'] / recent['received']:.0f}% of frames "
                        "(the model is slower than the camera)")
    fraction = snapshot.get("deadline_met_fraction")
    if fraction is not None and fraction < MIN_DEADLINE_FRACTION:
        warnings.append(f"deadline met on {100.0 * fraction:.0f}% of recent frames")
    if recent["auto_resets"]:
        warnings.append(f"automatic reset to the source weights ({snapshot['last_auto_reset']})")
    if recent["empty_frame_id"]:
        warnings.append("frames with an empty frame_id (outputs cannot be placed in TF)")
    if recent["bad_stamp"]:
        warnings.append("frames with a header stamp that is no time (budgets from their arrival instead)")
    if errors:
        return ERROR, "; ".join(errors + warnings)
    if warnings:
        return WARN, "; ".join(warnings)
    return OK, "ok"
