"""What the adapter keeps per camera stream, in one object, and the running signals it is judged by."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .objectives import FeatureMoments

# The source rotation loss level: the plain mean of a stream's first 10 frames (no steps before it is
# known), then an exponential mean over about the last 10.
LEVEL_WARMUP = 10
LEVEL_RATE = 0.1
# The confidence check compares the source and the adapted weights over a stream's last 30 frames and
# trusts the adapted ones after at least 3 (window and margin chosen on val, docs/adaptation.md).
CONFIDENCE_WINDOW = 30
CONFIDENCE_MIN_FRAMES = 3


class LossHealth:
    """Running range of a stream's self-supervised loss; flags sustained excursions far above it.

    After an automatic reset the stream starts a new range, so a lasting change of scene that the
    source weights cannot fix is learnt as the new normal instead of resetting forever.
    """

    def __init__(self, warmup: int = 10, alpha: float = 0.05):
        self.warmup, self.alpha = warmup, alpha
        self.count, self.mean, self.var, self.strikes = 0, 0.0, 0.0, 0

    def unhealthy(self, loss: float, sigma: float, patience: int) -> bool:
        if self.count >= self.warmup:
            z = (loss - self.mean) / math.sqrt(self.var + 1e-6)
            self.strikes = self.strikes + 1 if z > sigma else 0
            if self.strikes:  # an excursion must not widen the range it is judged against
                return self.strikes >= patience
        self.count += 1
        rate = 1.0 / self.count if self.count < self.warmup else self.alpha
        delta = loss - self.mean
        self.mean += rate * delta
        self.var = (1 - rate) * (self.var + rate * delta * delta)
        return self.strikes >= patience


@dataclass
class RunningLevel:
    """A stream's running mean of the source weights' rotation loss (what the shift gate reads)."""

    count: int = 0
    value: float = 0.0

    def add(self, loss: float) -> None:
        if math.isfinite(loss):
            self.count += 1
            self.value += max(1.0 / self.count, LEVEL_RATE) * (loss - self.value)

    @property
    def known(self) -> bool:
        return self.count >= LEVEL_WARMUP


class ConfidenceRecord:
    """The main head's confidence on the same recent frames under the source and the adapted weights.

    A step lowers the rotation loss on every shift, but on some (blur, low contrast, elastic warps) it
    moves the features away from what the main head knows; the head then gets less sure of itself.
    """

    def __init__(self, window: int = CONFIDENCE_WINDOW):
        self.source: deque[float] = deque(maxlen=window)
        self.adapted: deque[float] = deque(maxlen=window)

    def add(self, source: float, adapted: float) -> None:
        if math.isfinite(source) and math.isfinite(adapted):
            self.source.append(source)
            self.adapted.append(adapted)

    def adapted_trusted(self, margin: float) -> bool:
        """The adapted weights' mean confidence is at least ``1 + margin`` times the source weights'."""
        if len(self.adapted) < CONFIDENCE_MIN_FRAMES:
            return False
        return sum(self.adapted) >= (1.0 + margin) * sum(self.source)


@dataclass
class StreamState:
    """One camera stream (or all of them, when they share): its adapted weights and its signals."""

    # Its weights and optimizer state while another stream's are loaded in the model; None: the source.
    saved: dict | None = None
    adapted: bool = False  # its weights have moved away from the source
    health: LossHealth = field(default_factory=LossHealth)
    source_level: RunningLevel = field(default_factory=RunningLevel)
    moments: FeatureMoments | None = None  # feature alignment's running statistics
    confidence: ConfidenceRecord = field(default_factory=ConfidenceRecord)

    def forget_adaptation(self) -> None:
        """Back to the source: the weights and what was learnt about them; the stream's level stays."""
        self.saved, self.adapted, self.health = None, False, LossHealth()
        self.confidence = ConfidenceRecord()
