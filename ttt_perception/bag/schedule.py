"""The environment schedule of a synthetic flight: segments of clear air or a corruption over time.

Text form, one comma-separated entry per segment, ``CONDITION[@SEVERITY]:SECONDS``:

* ``clear:10``: ten seconds of clean frames;
* ``fog@5:8``: eight seconds of fog at severity 5;
* ``fog@1-5:20``: fog rising from severity 1 to 5 over twenty seconds (equal time at each level);
* ``gaussian_noise@3:10``: any of the 15 corruptions of ``ttt_perception.corruptions``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..corruptions import CORRUPTIONS

CLEAR = "clear"
# clear -> fog rising to severity 5 -> a strongly compressed video link -> moderate, then strong sensor
# noise -> clear again (seconds). Fog costs the packaged detector nothing (docs/targets.md); JPEG and
# noise do, and adaptation wins them back.
DEFAULT_SCHEDULE = ("clear:10,fog@1-5:20,jpeg_compression@5:20,gaussian_noise@3:10,gaussian_noise@5:10,"
                    "clear:10")


@dataclass(frozen=True)
class Segment:
    condition: str  # "clear" or a corruption name
    seconds: float
    severity_from: int = 0
    severity_to: int = 0

    @property
    def name(self) -> str:
        if self.condition == CLEAR:
            return CLEAR
        if self.severity_from == self.severity_to:
            return f"{self.condition} {self.severity_from}"
        return f"{self.condition} {self.severity_from}-{self.severity_to}"

    def to_text(self) -> str:
        if self.condition == CLEAR:
            return f"{CLEAR}:{self.seconds:g}"
        levels = (str(self.severity_from) if self.severity_from == self.severity_to
                  else f"{self.severity_from}-{self.severity_to}")
        return f"{self.condition}@{levels}:{self.seconds:g}"

    def severity_at(self, position: int, count: int) -> int:
        """Severity of frame ``position`` of ``count`` in this segment (a ramp spends equal time per level)."""
        if self.condition == CLEAR:
            return 0
        low, high = self.severity_from, self.severity_to
        levels = abs(high - low) + 1
        step = min(levels - 1, (position * levels) // max(count, 1))
        return low + step if high >= low else low - step


@dataclass(frozen=True)
class PlannedFrame:
    index: int  # frame number in the flight (per camera)
    time_s: float  # seconds since the flight started
    segment_index: int
    segment: Segment
    severity: int

    @property
    def condition(self) -> str:
        return self.segment.condition


def parse_schedule(text: str) -> list[Segment]:
    """Segments of a schedule in text form (see the module docstring); ValueError with the reason."""
    segments = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        condition, sep, seconds_text = entry.rpartition(":")
        if not sep or not condition:
            raise ValueError(f"schedule entry {entry!r} must look like CONDITION[@SEVERITY]:SECONDS")
        try:
            seconds = float(seconds_text)
        except ValueError:
            raise ValueError(f"schedule entry {entry!r}: {seconds_text!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"schedule entry {entry!r}: seconds must be > 0")
        name, at, levels = condition.partition("@")
        if name == CLEAR:
            if at:
                raise ValueError(f"schedule entry {entry!r}: clear takes no severity")
            segments.append(Segment(CLEAR, seconds))
            continue
        if name not in CORRUPTIONS:
            raise ValueError(f"schedule entry {entry!r}: unknown condition {name!r}; use clear or one of "
                             f"{', '.join(CORRUPTIONS)}")
        if not at:
            raise ValueError(f"schedule entry {entry!r}: a corruption needs @SEVERITY or @FROM-TO")
        low_text, dash, high_text = levels.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise ValueError(f"schedule entry {entry!r}: severity {levels!r} is not N or N-M") from None
        if not (1 <= low <= 5 and 1 <= high <= 5):
            raise ValueError(f"schedule entry {entry!r}: severities must be in 1..5")
        segments.append(Segment(name, seconds, low, high))
    if not segments:
        raise ValueError("the schedule is empty")
    return segments


def schedule_text(segments: Sequence[Segment]) -> str:
    return ",".join(segment.to_text() for segment in segments)


def plan_frames(segments: Sequence[Segment], rate_hz: float) -> list[PlannedFrame]:
    """One planned frame every 1/rate seconds; each segment gets round(seconds x rate) frames (at least 1)."""
    if not (math.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    frames: list[PlannedFrame] = []
    for segment_index, segment in enumerate(segments):
        count = max(1, int(round(segment.seconds * rate_hz)))
        for position in range(count):
            index = len(frames)
            frames.append(PlannedFrame(index, index / rate_hz, segment_index, segment,
                                       segment.severity_at(position, count)))
    return frames
