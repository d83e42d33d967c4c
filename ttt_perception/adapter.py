"""The test-time adapter: the one owner of mutable model state.

For each frame: a few SGD steps of a self-supervised objective on copies of that frame (the extractor
for rotation/TTT and feature alignment, norm affines for entropy/Tent), within the frame's deadline,
and the prediction. ``reset`` restores the source weights after the frame (TTT), ``online`` keeps
them for the stream's next frame (TTT-Online), ``off`` is plain inference. Online, the steps can come
after the prediction is published (``adapt_after_publish``), in the time before the next frame.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from .adaptation_config import PAPER_ONLINE, PAPER_RESET, AdaptationConfig
from .deadline import DurationEstimator, FrameDeadline
from .detection import Detections, decode_detections, frame_class_probs
from .devices import resolve_device, synchronize
from .model import YNet
from .objectives import (
    FeatureMoments,
    adaptable_parameters,
    augmented_copies,
    entropy_loss,
    feature_alignment_loss,
    plain_rotations,
    rotation_batch,
)
from .preprocess import scale_to_image, to_model_input
from .stream_state import StreamState
from .uncertainty import summarise

# What `from ttt_perception.adapter import ...` offers; the settings are defined in adaptation_config.
__all__ = ["PAPER_ONLINE", "PAPER_RESET", "SHARED_STREAM", "AdaptationConfig", "FrameReport", "FrameResult",
           "TestTimeAdapter"]

SHARED_STREAM = "__shared__"


@dataclass
class FrameReport:
    """What happened to one frame; ``as_dict`` is what the node publishes as uncertainty.

    Times in ms; ``total_ms`` runs from arrival to the prediction (what the deadline bounds). With
    ``adapted_after_publish`` the frame's steps came after its prediction was handed out.
    """

    stream: str
    mode: str
    objective: str
    steps_planned: int
    steps_taken: int
    stop_reason: str
    adapt_ms: float
    predict_ms: float
    preprocess_ms: float
    total_ms: float
    budget_ms: float
    deadline_met: bool
    ssl_loss_before: float
    ssl_loss_after: float
    entropy: float
    max_prob: float
    margin: float
    auto_reset: str = ""
    adapted_after_publish: bool = False
    source_predicted: bool = False  # the confidence check kept the stream's adapted weights from predicting
    outputs_averaged: bool = False  # the published output is the mean of the source and adapted weights' ones

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FrameResult:
    detections: Detections
    class_probs: np.ndarray
    report: FrameReport


@dataclass
class _Steps:
    """The adaptation of one frame as it happens."""

    planned: int = 0
    taken: int = 0
    reason: str = "done"
    loss_before: float = math.nan
    auto_reset: str = ""
    seconds: float = 0.0
    confidence_before: float = math.nan  # the main head's confidence on the frame before the first step


class _Prediction(NamedTuple):
    detections: Detections
    class_probs: np.ndarray
    loss_after: float  # the predicting weights' rotation loss on the frame (nan when not measured)
    pooled: torch.Tensor | None  # feature alignment: the frame's pooled features
    confidence: float  # the main head's (nan unless asked for)
    output: Any  # the main head's raw output for the frame (logits; a detector's heatmap and box maps)


class TestTimeAdapter:
    """Adapts and predicts frame by frame; one instance serves every camera stream."""

    __test__ = False  # not a pytest class despite its name

    def __init__(self, model: YNet, config: AdaptationConfig | None = None, device: str | torch.device = "auto",
                 clock: Callable[[], float] = time.perf_counter):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        # The adapter owns its copy: adapting never changes the caller's model, so several adapters
        # (benchmark methods, tests) built from one model all start from the same source weights.
        self.model = copy.deepcopy(model).to(self.device).eval()
        # A frozen copy with the source weights: the shift gate and the confidence check run it as a plain
        # module (torch.func.functional_call on the live model costs ~1.9 ms more per classifier forward
        # on a CPU, most of a 1.2x budget).
        self.source_model = copy.deepcopy(self.model).requires_grad_(False)
        self.clock = clock
        self.timings = DurationEstimator()
        self._lock = threading.RLock()
        self._last_frame: tuple[str, torch.Tensor, tuple[int, ...]] | None = None
        self.prewarms = 0  # throwaway predictions run by ``prewarm``
        self._config = self.check_supported((config or AdaptationConfig()).validated())
        self._effective = self._config.resolved_for(self.model.config.task)
        self._generator = torch.Generator().manual_seed(self._config.seed)
        self._build_parameter_state()

    # ---- configuration and state -------------------------------------------------------------

    @property
    def config(self) -> AdaptationConfig:
        """The settings as given ("auto" values included)."""
        return self._config

    @property
    def effective_config(self) -> AdaptationConfig:
        """The settings in force: ``config`` with its "auto" values set for the model's task."""
        return self._effective

    def update_config(self, **changes) -> AdaptationConfig:
        """Apply from the next frame; ValueError (nothing changed) when any value is invalid.

        Changing mode, objective or parameters returns every stream to the source weights.
        """
        with self._lock:
            try:
                new = self.check_supported(dataclasses.replace(self._config, **changes).validated())
            except TypeError as exc:
                raise ValueError(f"unknown adaptation setting: {exc}") from exc
            old, self._config = self._config, new
            self._effective = new.resolved_for(self.model.config.task)
            if (old.objective, old.parameters) != (new.objective, new.parameters):
                self._restore_source_everywhere()
                self._build_parameter_state()
            elif old.mode != new.mode or old.share_state != new.share_state:
                self._restore_source_everywhere()
            for group in self._optimizer.param_groups:
                group["lr"], group["momentum"] = self._effective.learning_rate, self._effective.momentum
            return new

    def _reference(self, key: str):
        stats = getattr(self.model, "reference_stats", None) or {}
        return stats.get(key)

    def check_supported(self, config: AdaptationConfig) -> AdaptationConfig:
        """ValueError when the model lacks what the settings need (its clean reference levels)."""
        needs = []
        if config.objective == "features" and self._reference("feature_mean") is None:
            needs.append("objective 'features' needs the clean feature statistics")
        if needs:
            raise ValueError(f"{'; '.join(needs)}, which this model's checkpoint does not carry "
                             f"(checkpoints written by `ttt-perception train` do)")
        return config

    def _build_parameter_state(self) -> None:
        cfg = self._config
        self._params = adaptable_parameters(self.model, cfg.objective, cfg.parameters)
        chosen = {id(p) for p in self._params.values()}
        for param in self.model.parameters():
            param.requires_grad_(id(param) in chosen)  # frozen parts need no gradient buffers
        self._optimizer = torch.optim.SGD(list(self._params.values()), lr=self._effective.learning_rate,
                                          momentum=self._effective.momentum)
        self._source = self._snapshot()
        self._streams: dict[str, StreamState] = {}
        self._live: str | None = None  # whose weights the model holds now (None: the source)

    def _snapshot(self) -> dict:
        return {
            "params": {name: p.detach().clone() for name, p in self._params.items()},
            "optimizer": copy.deepcopy(self._optimizer.state_dict()["state"]),
        }

    def _load(self, snapshot: dict) -> None:
        with torch.no_grad():
            for name, param in self._params.items():
                param.copy_(snapshot["params"][name])
        state = self._optimizer.state_dict()
        state["state"] = copy.deepcopy(snapshot["optimizer"])
        self._optimizer.load_state_dict(state)

    def _save_live(self) -> None:
        """Keep the loaded weights (and optimizer state) with the stream they belong to."""
        state = self._streams[self._live]
        if state.saved is None:
            state.saved = self._snapshot()
            return
        with torch.no_grad():
            for name, param in self._params.items():
                state.saved["params"][name].copy_(param)
        state.saved["optimizer"] = copy.deepcopy(self._optimizer.state_dict()["state"])

    def _restore_source_everywhere(self) -> None:
        self._load(self._source)
        self._streams.clear()
        self._live = None

    def _activate(self, key: str) -> None:
        """Make the model hold ``key``'s weights; copies only when the stream changes."""
        if self._live == key:
            return
        if self._live is not None:
            self._save_live()
        saved = self._streams[key].saved
        if saved is not None:
            self._load(saved)
        elif self._live is not None:
            self._load(self._source)
        self._live = key

    def reset(self, stream: str | None = None) -> None:
        """Back to the source weights and a fresh optimizer: one stream, or all of them."""
        with self._lock:
            if stream is None:
                self._restore_source_everywhere()
                return
            key = self._stream_key(stream)
            if self._live == key:
                self._load(self._source)
                self._live = None
            self._streams.pop(key, None)

    def _reset_live(self, key: str) -> None:
        """An automatic reset of the loaded stream: source weights, a new health range."""
        self._load(self._source)
        self._streams[key].forget_adaptation()

    def _stream_key(self, stream: str) -> str:
        """Whose online state a frame of ``stream`` uses: its own, or the shared one."""
        return SHARED_STREAM if self._config.share_state else stream

    def stream_names(self) -> list[str]:
        return sorted(self._streams)

    def source_parameters(self) -> dict[str, torch.Tensor]:
        return self._source["params"]

    def stream_parameters(self, stream: str) -> dict[str, torch.Tensor]:
        """The weights ``stream`` would start its next frame from (copies)."""
        with self._lock:
            key = self._stream_key(stream)
            if key == self._live:
                return {n: p.detach().clone() for n, p in self._params.items()}
            state = self._streams.get(key)
            saved = state.saved if state and state.saved is not None else self._source
            return {n: t.clone() for n, t in saved["params"].items()}

    def source_level(self, stream: str) -> float | None:
        """The stream's running source rotation loss (what the shift gate reads); None before it is known."""
        with self._lock:
            state = self._streams.get(self._stream_key(stream))
            return state.source_level.value if state and state.source_level.known else None

    # ---- one frame ---------------------------------------------------------------------------

    def process(self, image: np.ndarray, stream: str = "default", arrival_time: float | None = None,
                publish: Callable[[FrameResult], None] | None = None,
                adapt_until: float | None = None) -> FrameResult:
        """Adapt on one RGB uint8 frame within its budget, predict, and report.

        With ``adapt_after_publish`` (online mode) the prediction comes first: ``publish(result)`` is
        called with it, then the steps are taken while they end by ``adapt_until`` (on this adapter's
        clock; default: the frame's own deadline), and the report is completed.
        """
        with self._lock:
            return self._process(image, stream, arrival_time, publish, adapt_until)

    def _process(self, image, stream, arrival_time, publish, adapt_until) -> FrameResult:
        cfg = self._config
        start = self.clock()
        arrival = start if arrival_time is None else arrival_time
        x = to_model_input(image, self.model.config, self.device)
        after_preprocess = self.clock()
        key = self._stream_key(stream)
        state = self._enter_stream(key)
        step_s = self.timings.estimate(self._step_kind())
        frame_deadline = FrameDeadline.for_frame(arrival, cfg.budget_ms / 1000.0, step_s,
                                                 self.timings.estimate(self._predict_kind()))
        later = cfg.mode == "online" and cfg.adapt_after_publish
        steps = _Steps()
        self._frame_source_features = None  # the gate's source features of this frame, when it measures
        if not later:
            self._adapt(x, key, state, frame_deadline, steps)
            if steps.auto_reset:  # what went wrong must not make this prediction
                self._reset_live(key)
        adapt_end = self.clock()
        checked = self._checks_confidence() and state.adapted
        source_predicts = self._source_predicts(state)
        prediction = self._predict(x, image.shape, source_predicts, with_confidence=checked)
        predicted = self.clock()
        self.timings.record(self._predict_kind(), predicted - adapt_end)  # one prediction's time, for planning
        known = {"source" if source_predicts else "adapted": prediction.confidence}
        averaged, fallback = False, self._effective.confidence_fallback
        if source_predicts and fallback != "source" and frame_deadline.fits(predicted, 0):
            other = self._predict(x, image.shape, source=False, with_confidence=True)
            known["adapted"] = other.confidence
            if fallback == "average":
                prediction, source_predicts, averaged = self._averaged(prediction, other, image.shape), False, True
            elif other.confidence > prediction.confidence and other.confidence >= self._effective.confidence_floor:
                prediction, source_predicts = other, False  # below the floor both are unsure: the source's
            predicted = self.clock()
        detections, class_probs, loss_after, pooled, _, _ = prediction
        report = FrameReport(
            stream=stream, mode=cfg.mode, objective=cfg.objective, steps_planned=0, steps_taken=0,
            stop_reason="", adapt_ms=(adapt_end - after_preprocess) * 1e3, predict_ms=(predicted - adapt_end) * 1e3,
            preprocess_ms=(after_preprocess - start) * 1e3, total_ms=(predicted - arrival) * 1e3,
            budget_ms=cfg.budget_ms, deadline_met=frame_deadline.met(predicted), ssl_loss_before=math.nan,
            ssl_loss_after=loss_after, adapted_after_publish=later, source_predicted=source_predicts,
            outputs_averaged=averaged,
            **summarise(class_probs))
        result = FrameResult(detections, class_probs, report)
        if state.moments is not None and pooled is not None and not source_predicts:
            state.moments.update(pooled)
        if later:
            if publish is not None:
                publish(result)
            if checked:  # before the steps: the weights that were judged, not the ones after this frame
                self._record_confidence(x, state, **known)
            began = self.clock()
            until = frame_deadline.limit if adapt_until is None else adapt_until
            self._adapt(x, key, state, FrameDeadline(until, step_s), steps)
            if steps.taken and cfg.measure_ssl_loss:
                report.ssl_loss_after = self._rotation_probe(x)
            report.adapt_ms = (self.clock() - began) * 1e3
        elif checked:  # the adapted weights as they came to this frame: before its own steps, when known
            if math.isfinite(steps.confidence_before):
                known["adapted"] = steps.confidence_before
            self._record_confidence(x, state, **known)
        self._finish_frame(key, state, steps, report, loss_at_prediction=loss_after)
        self._last_frame = (key, x, image.shape)  # what ``prewarm`` predicts again
        return result

    def prewarm_at(self, due: float) -> float | None:
        """When to start ``prewarm`` for a frame due at ``due`` (this adapter's clock) so that it ends
        ``prewarm_ms`` before the frame; None when the pre-warm is off."""
        if self._config.prewarm_ms <= 0:
            return None
        return due - self._config.prewarm_ms / 1000.0 - self._predict_estimate()

    def prewarm(self, until: float | None = None) -> bool:
        """A throwaway prediction of the last frame with the weights that will predict its stream's next
        one, when it ends by ``until`` (this adapter's clock); True when it ran. Nothing is recorded or
        changed: the point is that the next real prediction runs on warm caches. Measured on a 2-core CPU
        at 10 Hz, a forward pass 5 ms after such a throwaway one took 1.7 ms, after an idle wait 2.3 ms
        (docs/node.md)."""
        with self._lock:
            if self._last_frame is None:
                return False
            key, x, image_shape = self._last_frame
            state = self._streams.get(key)
            if state is None:  # reset since: its next frame starts a new stream
                return False
            if until is not None and self.clock() + self._predict_estimate() > until:
                return False
            self._predict(x, image_shape, self._source_predicts(state))
            self.prewarms += 1
            return True

    def _enter_stream(self, key: str) -> StreamState:
        """The stream's state, with its weights loaded in online mode (reset/off start from the source)."""
        if self._config.mode != "online" and self._live is not None:
            self._restore_source_everywhere()
        state = self._streams.setdefault(key, StreamState())
        if self._config.mode == "online":
            self._activate(key)
        if state.moments is None:
            state.moments = self._new_moments()
        return state

    def _new_moments(self) -> FeatureMoments | None:
        """Running feature statistics for feature alignment, starting at the clean ones (else None)."""
        if self._config.objective != "features":
            return None
        return FeatureMoments(self._reference("feature_mean").to(self.device),
                              self._reference("feature_cov").to(self.device))

    def _adapt(self, x: torch.Tensor, key: str, state: StreamState, deadline: FrameDeadline, steps: _Steps) -> None:
        """Plan the frame's steps, then take those that fit the deadline (``steps`` records it all)."""
        cfg = self._config
        began = self.clock()
        steps.planned = cfg.max_steps if cfg.mode != "off" else 0
        if steps.planned == 0:
            steps.reason = "off"
        elif not deadline.fits(self.clock(), 0):
            steps.reason = "late"
        elif cfg.policy == "skip" and not deadline.fits(self.clock(), steps.planned):
            steps.reason = "budget"
        elif self._gate_measures() and not deadline.fits(self.clock() + self._gate_estimate(), 1):
            steps.reason = "budget"  # the gate's measurement and one step would make the prediction late
        elif closed := self._gate_closed(x, state):
            steps.reason = closed
            if state.adapted:  # the shift is over or has changed: what was learnt for it would only do harm
                steps.auto_reset = f"running source rotation loss {self._gate_limit_note(closed)}"
        else:
            while steps.taken < steps.planned:
                if not deadline.fits(self.clock(), 1):
                    steps.reason = "budget"
                    break
                loss = self._step(x, state, steps if steps.taken == 0 else None)
                steps.taken += 1
                if steps.taken == 1:
                    steps.loss_before = loss
                if not math.isfinite(loss):
                    steps.auto_reset = "non-finite self-supervised loss"
                    break
        if steps.taken and cfg.mode == "online":
            state.adapted = True
        if steps.taken == 0 and steps.reason == "budget":
            self.timings.refused(self._step_kind())
        steps.seconds = self.clock() - began

    @property
    def gate_note(self) -> str:
        """Why the relative shift gate is inactive although asked for ("" when it works as set)."""
        if self._config.min_ssl_loss_ratio > 0 and self._reference("ssl_loss") is None:
            return ("min_ssl_loss_ratio has no effect: this model's checkpoint stores no clean rotation loss "
                    "(checkpoints written by `ttt-perception train` do); only min_ssl_loss gates the steps")
        return ""

    def _gate_threshold(self) -> float:
        """The source rotation loss level below which no step is taken (0: no lower bound)."""
        cfg, reference = self._config, self._reference("ssl_loss")
        relative = cfg.min_ssl_loss_ratio * reference if cfg.min_ssl_loss_ratio > 0 and reference is not None else 0.0
        return max(cfg.min_ssl_loss, relative)

    def _gate_measures(self) -> bool:
        """Whether the shift gate has a bound to check (and so measures the source loss of each frame)."""
        return self._gate_threshold() > 0 or self._effective.max_ssl_loss > 0

    def _gate_limit_note(self, reason: str) -> str:
        if reason == "high_loss":
            return f"above the gate's upper bound ({self._effective.max_ssl_loss:g})"
        return f"below the gate ({self._gate_threshold():g})"

    def _gate_closed(self, x: torch.Tensor, state: StreamState) -> str:
        """The shift gate: "" while the stream's running source rotation loss, with this frame, lies between
        its bounds; else the stop reason ("low_loss" below, also before the level is known; "high_loss" above).

        Measured with the source weights (the frozen source copy), so adapting cannot bend the signal that
        decides whether to adapt; no steps before the level is known (the stream's first 10 frames) while
        there is a lower bound.
        """
        if not self._gate_measures():
            return ""
        threshold, ceiling = self._gate_threshold(), self._effective.max_ssl_loss
        began = self.clock()
        rotated, labels = plain_rotations(x)
        with torch.no_grad():
            features = self.source_model.extractor(rotated)
            state.source_level.add(float(F.cross_entropy(self.source_model.ssl_head(features), labels)))
        self._frame_source_features = features[:1]  # rotation 0: the frame itself
        self.timings.record(("gate",), self.clock() - began)
        level = state.source_level
        if threshold > 0 and not (level.known and level.value >= threshold):
            return "low_loss"
        if ceiling > 0 and level.known and level.value > ceiling:
            return "high_loss"
        return ""

    def _finish_frame(self, key: str, state: StreamState, steps: _Steps, report: FrameReport,
                      loss_at_prediction: float) -> None:
        """Health check, automatic resets and reset mode's restore; completes the report."""
        cfg = self._config
        loss_before = steps.loss_before if steps.taken else loss_at_prediction
        if report.adapted_after_publish:
            loss_before = loss_at_prediction  # the weights that predicted, before this frame's steps
        if report.source_predicted:  # the health check watches the adapted weights, which did not predict
            loss_before = steps.loss_before if steps.taken else math.nan
        auto_reset = steps.auto_reset
        if not auto_reset and cfg.mode == "online" and math.isfinite(loss_before):
            if state.health.unhealthy(loss_before, cfg.health_sigma, cfg.health_patience):
                auto_reset = f"self-supervised loss {cfg.health_sigma:g} sigma above its running range " \
                             f"for {cfg.health_patience} frames"
        if auto_reset and cfg.mode == "online":
            self._reset_live(key)
        elif cfg.mode == "reset" and steps.taken:
            self._load(self._source)
        report.steps_planned, report.steps_taken, report.stop_reason = steps.planned, steps.taken, steps.reason
        report.ssl_loss_before, report.auto_reset = loss_before, auto_reset
        if not report.adapted_after_publish:
            report.adapt_ms = steps.seconds * 1e3

    def _gate_estimate(self) -> float:
        """Seconds the shift gate's source-loss measurement takes (0 until measured)."""
        return self.timings.estimate(("gate",)) or 0.0

    def _predict_estimate(self) -> float:
        """Seconds one prediction takes (a high quantile of the recent ones; 0 until measured)."""
        return self.timings.estimate(self._predict_kind()) or 0.0

    def _step_kind(self) -> tuple:
        cfg = self._effective
        return ("step", cfg.objective, cfg.parameters, cfg.batch_size)

    def _predict_kind(self) -> tuple:
        return ("predict", self._config.measure_ssl_loss)

    def _step(self, x: torch.Tensor, state: StreamState, first: _Steps | None = None) -> float:
        """One SGD step on the objective; returns the loss on the plain frame before the update. On the
        frame's ``first`` step of the rotation objective, the confidence check gets the main head's
        confidence before the update from the plain copy's features (no extra extractor pass)."""
        cfg = self._effective
        began = self.clock()
        self._optimizer.zero_grad(set_to_none=True)
        if cfg.objective == "rotation":
            images, labels = rotation_batch(x, cfg.batch_size, self._generator)
            features = self.model.extractor(images)
            per_sample = F.cross_entropy(self.model.ssl_head(features), labels, reduction="none")
            if first is not None and self._checks_confidence():
                with torch.no_grad():  # copy 0 is the plain frame, unrotated
                    first.confidence_before = self._confidence(self.model.main_head(features[:1]))
            loss = per_sample.mean()
            probe = per_sample[:4].mean()  # the plain frame's four rotations
        elif cfg.objective == "entropy":
            loss = entropy_loss(self.model, augmented_copies(x, cfg.batch_size, self._generator))
            probe = loss
        else:
            loss = feature_alignment_loss(self.model, augmented_copies(x, cfg.batch_size, self._generator),
                                          state.moments, self._reference("feature_mean").to(self.device),
                                          self._reference("feature_cov").to(self.device))
            probe = loss
        value = float(probe.detach())  # one host sync per step: the health check and the report need it
        if math.isfinite(value):
            loss.backward()
            self._optimizer.step()
        synchronize(self.device)
        self.timings.record(self._step_kind(), self.clock() - began)
        return value

    @torch.no_grad()
    def _rotation_probe(self, x: torch.Tensor) -> float:
        rotated, labels = plain_rotations(x)
        return float(F.cross_entropy(self.model.rotation_logits(rotated), labels))

    def _checks_confidence(self) -> bool:
        """Whether the confidence check decides which weights predict: online mode with verify_confidence."""
        return self._config.mode == "online" and self._config.verify_confidence

    def _source_predicts(self, state: StreamState) -> bool:
        """The check keeps the stream's adapted weights from predicting (they are not surer by the margin)."""
        return self._checks_confidence() and state.adapted and \
            not state.confidence.adapted_trusted(self._config.confidence_margin)

    def _confidence(self, output) -> float:
        """How sure the main head is: the top class probability, or a detector's strongest heatmap cell."""
        if self.model.config.task == "classifier":
            return float(torch.softmax(output[0].float(), dim=0).max())
        return float(torch.sigmoid(output["heatmap"][0].float()).max())

    @torch.no_grad()
    def _record_confidence(self, x: torch.Tensor, state: StreamState, source: float | None = None,
                           adapted: float | None = None) -> None:
        """Both weights' confidence on this frame; the one not already known from one more forward (only
        the main head when the shift gate has just run the source extractor on the frame)."""
        if adapted is None:
            adapted = self._confidence(self.model.main_head(self.model.extractor(x[None])))
        if source is None:
            features = self._frame_source_features
            if features is None:
                features = self.source_model.extractor(x[None])
            source = self._confidence(self.source_model.main_head(features))
        state.confidence.add(source=source, adapted=adapted)

    @torch.no_grad()
    def _predict(self, x: torch.Tensor, image_shape: tuple[int, ...], source: bool = False,
                 with_confidence: bool = False) -> _Prediction:
        """Detections, class probabilities, the rotation loss of the predicting weights (nan when not
        measured), for feature alignment the frame's pooled features, and the main head's confidence
        (nan unless ``with_confidence``). ``source``: the source weights predict instead of the stream's
        adapted ones."""
        cfg = self._config
        model = self.source_model if source else self.model  # else: the loaded stream's adapted weights
        loss_after = math.nan
        if cfg.measure_ssl_loss:
            rotated, labels = plain_rotations(x)
            features = model.extractor(rotated)  # rotation 0 is the frame itself
            loss_after = float(F.cross_entropy(model.ssl_head(features), labels))
            features = features[:1]
        else:
            features = model.extractor(x[None])
        output = model.main_head(features)
        confidence = self._confidence(output) if with_confidence else math.nan
        pooled = features.mean(dim=(2, 3)) if cfg.objective == "features" else None
        detections, probs = self._decoded(output, image_shape)
        return _Prediction(detections, probs, loss_after, pooled, confidence, output)

    def _averaged(self, source: _Prediction, adapted: _Prediction, image_shape: tuple[int, ...]) -> _Prediction:
        """Both weights' predictions of one frame merged: the mean of their class probabilities (a
        detector's heatmap probabilities and box maps), decoded as one output. Rotation loss and pooled
        features are the adapted weights' (they are what adaptation and its health check follow)."""
        if self.model.config.task == "classifier":
            mean = sum(torch.softmax(p.output.float(), dim=1) for p in (source, adapted)) / 2
            output = torch.log(mean.clamp_min(1e-12))  # softmax of it gives the mean back
        else:
            heat = sum(torch.sigmoid(p.output["heatmap"].float()) for p in (source, adapted)) / 2
            output = {"heatmap": torch.logit(heat, eps=1e-6),
                      "box": (source.output["box"].float() + adapted.output["box"].float()) / 2}
        detections, probs = self._decoded(output, image_shape)
        # no confidence: both weights' own are already recorded, and the mean's is never judged
        return _Prediction(detections, probs, adapted.loss_after, adapted.pooled, math.nan, output)

    def _decoded(self, output, image_shape: tuple[int, ...]) -> tuple[Detections, np.ndarray]:
        """The main head's output for one frame as detections in image pixels, and class probabilities."""
        cfg, config = self._config, self.model.config
        if config.task == "classifier":
            probs = torch.softmax(output[0].float(), dim=0).cpu().numpy()
            height, width = image_shape[:2]
            box = np.array([[0, 0, width, height]], np.float32)
            cls = int(np.argmax(probs))
            return Detections(box, np.array([probs[cls]], np.float32), np.array([cls]), probs[None]), probs
        detections = decode_detections(output["heatmap"][0], output["box"][0], config.output_stride,
                                       cfg.score_threshold, cfg.max_detections)
        detections = detections.scaled(*scale_to_image(config, image_shape))
        if len(detections):
            probs = detections.class_probs[int(np.argmax(detections.scores))]
        else:
            probs = frame_class_probs(output["heatmap"][0]).cpu().numpy()
        return detections, probs

    def calibrate(self, repeats: int = 3) -> dict[str, float]:
        """Measure step and prediction times on a grey frame; weights and streams are left as they were."""
        with self._lock:
            cfg, size = self._config, self.model.config.input_size
            frame = np.full((size, size, 3), 127, np.uint8)
            x = to_model_input(frame, self.model.config, self.device)
            saved = self._snapshot()
            state = StreamState(moments=self._new_moments())  # a throwaway stream
            generator_state = self._generator.get_state()
            try:
                # The first step and prediction of a fresh model pay one-off costs (allocations, kernel
                # selection) that can be 10x a normal step; measured, they would make the estimate refuse
                # every step, and a refused step is never measured again. Warm up without recording.
                measured, self.timings = self.timings, DurationEstimator()
                try:
                    if cfg.max_steps:
                        self._step(x, state)
                    self._predict(x, frame.shape)
                    synchronize(self.device)
                finally:
                    self.timings = measured
                for _ in range(repeats):
                    if cfg.max_steps:
                        self._step(x, state)
                    began = self.clock()
                    self._predict(x, frame.shape)
                    synchronize(self.device)
                    self.timings.record(self._predict_kind(), self.clock() - began)
            finally:
                self._load(saved)
                self._generator.set_state(generator_state)
            step = self.timings.estimate(self._step_kind())
            return {"step_ms": (step or 0.0) * 1e3,
                    "predict_ms": self._predict_estimate() * 1e3}
