"""The adaptation settings (a frozen dataclass; ``validated`` names the first bad value) and the paper's
settings as presets. The defaults and the choice lists live in ``choices``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .choices import ADAPTATION_DEFAULTS as DEFAULT
from .choices import (
    AUTO_VALUES,
    CONFIDENCE_FALLBACKS,
    GATE_OFF,
    MAX_PREWARM_MS,
    MODES,
    OBJECTIVES,
    PARAMETER_SETS,
    POLICIES,
    TASK_DEFAULTS,
)


@dataclass(frozen=True)
class AdaptationConfig:
    """Adaptation settings. Defaults are real-time ones (see docs/adaptation.md).

    The paper's settings (Sun et al. 2020): SGD lr 0.001, no momentum, 32 copies, 10 steps in reset
    mode and 1 step online; ``PAPER_RESET`` and ``PAPER_ONLINE`` below.
    """

    mode: str = DEFAULT["mode"]
    objective: str = DEFAULT["objective"]
    learning_rate: float = DEFAULT["learning_rate"]  # 0: the rate chosen for the model's task (resolved_for)
    momentum: float = DEFAULT["momentum"]  # -1: the momentum chosen for the model's task (resolved_for)
    max_steps: int = DEFAULT["max_steps"]
    batch_size: int = DEFAULT["batch_size"]  # 0: the copies chosen for the model's task (resolved_for)
    parameters: str = DEFAULT["parameters"]
    share_state: bool = DEFAULT["share_state"]
    budget_ms: float = DEFAULT["budget_ms"]  # 0: no deadline
    policy: str = DEFAULT["policy"]
    score_threshold: float = DEFAULT["score_threshold"]
    max_detections: int = DEFAULT["max_detections"]
    measure_ssl_loss: bool = DEFAULT["measure_ssl_loss"]
    health_sigma: float = DEFAULT["health_sigma"]  # z-score of the ssl loss that counts as unhealthy
    health_patience: int = DEFAULT["health_patience"]  # consecutive unhealthy frames before an automatic reset
    # Adapt only while the source weights' rotation loss on the stream (mean over about the last 10
    # frames) is at least this; 0: no lower bound. A shift signal that adapting cannot bend: high under
    # noise, near its clean level under fog and low contrast, where steps do harm (docs/adaptation.md).
    min_ssl_loss: float = DEFAULT["min_ssl_loss"]
    # The same gate, relative to the model's own clean rotation loss (stored in its checkpoint at training
    # time): adapt while the stream's level is at least this multiple of it; 0: off.
    min_ssl_loss_ratio: float = DEFAULT["min_ssl_loss_ratio"]
    # The gate's upper bound: no steps while that level is above this (absolute; 0: no bound). Far above
    # chance (ln 4 = 1.39) the rotation head is confidently wrong: the shift carries an orientation cue
    # of its own (motion blur's streaks turn with the frame) and steps would learn that cue.
    max_ssl_loss: float = DEFAULT["max_ssl_loss"]
    # Online mode: predict and publish first, then adapt on the frame before the next one is due, so
    # the deadline bounds only the prediction (reset mode always adapts first).
    adapt_after_publish: bool = DEFAULT["adapt_after_publish"]
    # Whoever knows when the next frame is due (the node, bench realtime) runs a throwaway prediction
    # that ends this long before it (``prewarm_at``, ``prewarm``), so that the real one runs warm: on a
    # CPU the first forward pass after an idle wait is far slower than one right after another
    # (docs/node.md); 0: never.
    prewarm_ms: float = DEFAULT["prewarm_ms"]
    # Online mode: publish the adapted weights' prediction only while, over the stream's last 30 frames,
    # their main-head confidence is at least (1 + confidence_margin) times the source weights' on the
    # same frames; otherwise confidence_fallback decides what is published while adaptation goes on
    # (docs/adaptation.md).
    verify_confidence: bool = DEFAULT["verify_confidence"]
    confidence_margin: float = DEFAULT["confidence_margin"]
    # While the check does not trust the adapted weights: "source" weights predict; "surer": whichever
    # weights are surer of the frame; "average": the mean of both weights' main-head outputs (class
    # probabilities; a detector's heatmap probabilities and box maps); "auto": the model's task's choice.
    # "surer" and "average" need a second prediction, taken only when it fits the frame's deadline.
    confidence_fallback: str = DEFAULT["confidence_fallback"]
    # "surer" publishes the adapted weights' answer only when they are surer of the frame and at least this
    # sure (top class probability; a detector's strongest heatmap cell); below it both weights are unsure,
    # their choice a coin toss (glass blur), and the source's answer is published. -1: the model's task's.
    confidence_floor: float = DEFAULT["confidence_floor"]
    seed: int = DEFAULT["seed"]

    def validated(self) -> AdaptationConfig:
        """Self, or ValueError naming the first invalid value and why."""
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}"),
            (self.policy in POLICIES, f"policy must be one of {POLICIES}, got {self.policy!r}"),
            (self.parameters in PARAMETER_SETS, f"parameters must be one of {PARAMETER_SETS}, got {self.parameters!r}"),
            (math.isfinite(self.learning_rate) and 0 <= self.learning_rate <= 1.0,
             f"learning_rate must be in [0, 1] (0: the model's task's rate), got {self.learning_rate}"),
            (self.confidence_fallback in CONFIDENCE_FALLBACKS,
             f"confidence_fallback must be one of {CONFIDENCE_FALLBACKS}, got {self.confidence_fallback!r}"),
            (self.momentum == AUTO_VALUES["momentum"] or (math.isfinite(self.momentum) and 0 <= self.momentum < 1),
             f"momentum must be in [0, 1), or {AUTO_VALUES['momentum']:g} for the model's task's, "
             f"got {self.momentum}"),
            (0 <= self.max_steps <= 100, f"max_steps must be in 0..100, got {self.max_steps}"),
            (0 <= self.batch_size <= 256,
             f"batch_size must be in 1..256 (0: the model's task's), got {self.batch_size}"),
            (math.isfinite(self.budget_ms) and self.budget_ms >= 0, f"budget_ms must be >= 0, got {self.budget_ms}"),
            (math.isfinite(self.prewarm_ms) and 0 <= self.prewarm_ms <= MAX_PREWARM_MS,
             f"prewarm_ms must be in [0, {MAX_PREWARM_MS:g}], got {self.prewarm_ms}"),
            (0 <= self.score_threshold <= 1, f"score_threshold must be in [0, 1], got {self.score_threshold}"),
            (1 <= self.max_detections <= 1000, f"max_detections must be in 1..1000, got {self.max_detections}"),
            (self.health_sigma > 0, f"health_sigma must be > 0, got {self.health_sigma}"),
            (self.health_patience >= 1, f"health_patience must be >= 1, got {self.health_patience}"),
            (math.isfinite(self.min_ssl_loss) and self.min_ssl_loss >= 0,
             f"min_ssl_loss must be a finite value >= 0, got {self.min_ssl_loss}"),
            (math.isfinite(self.min_ssl_loss_ratio) and self.min_ssl_loss_ratio >= 0,
             f"min_ssl_loss_ratio must be a finite value >= 0, got {self.min_ssl_loss_ratio}"),
            (self.max_ssl_loss == AUTO_VALUES["max_ssl_loss"] or
             (math.isfinite(self.max_ssl_loss) and self.max_ssl_loss >= 0),
             f"max_ssl_loss must be a finite value >= 0, or {AUTO_VALUES['max_ssl_loss']:g} for the model's "
             f"task's, got {self.max_ssl_loss}"),
            (math.isfinite(self.confidence_margin) and 0 <= self.confidence_margin <= 1,
             f"confidence_margin must be in [0, 1], got {self.confidence_margin}"),
            (self.confidence_floor == AUTO_VALUES["confidence_floor"] or
             (math.isfinite(self.confidence_floor) and 0 <= self.confidence_floor <= 1),
             f"confidence_floor must be in [0, 1], or {AUTO_VALUES['confidence_floor']:g} for the model's "
             f"task's, got {self.confidence_floor}"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ValueError(reason)
        return self

    def resolved_for(self, task: str) -> AdaptationConfig:
        """Self with its "auto" values (learning rate 0, momentum -1, batch size 0, fallback "auto", upper
        bound and confidence floor -1) set to those chosen for ``task``."""
        chosen = TASK_DEFAULTS[task]
        return dataclasses.replace(self, **{field: chosen[field] for field, auto in AUTO_VALUES.items()
                                            if getattr(self, field) == auto})


# The paper's settings, without this package's shift gate and confidence check (the paper has neither).
PAPER_RESET = AdaptationConfig(mode="reset", learning_rate=0.001, momentum=0.0, max_steps=10, batch_size=32,
                               **GATE_OFF, verify_confidence=False)
PAPER_ONLINE = AdaptationConfig(mode="online", learning_rate=0.001, momentum=0.0, max_steps=1, batch_size=32,
                                **GATE_OFF, verify_confidence=False)
