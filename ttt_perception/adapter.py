"""The test-time adapter: the one owner of mutable model state.

For each frame: a few SGD steps of a self-supervised objective on copies of that frame (updating
the extractor only for rotation/TTT, norm affines only for entropy/Tent), within the frame's
deadline, then the prediction. ``reset`` restores the source weights after the frame (TTT),
``online`` keeps them for the stream's next frame (TTT-Online), ``off`` is plain inference.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .choices import ADAPTATION_DEFAULTS as DEFAULT
from .choices import MODES, OBJECTIVES, PARAMETER_SETS, POLICIES
from .deadline import DurationEstimator, FrameDeadline
from .detection import Detections, decode_detections, frame_class_probs
from .devices import resolve_device, synchronize
from .model import YNet
from .objectives import (adaptable_parameters, entropy_loss, plain_rotations,
                         rotation_batch, rotation_loss_per_sample, augmented_copies)
from .preprocess import scale_to_image, to_model_input
from .uncertainty import summarise

SHARED_STREAM = "__shared__"
# Running source rotation loss: the plain mean of a stream's first 10 frames (no steps before), then an
# exponential mean over about the last 10.
_SOURCE_LOSS_WARMUP = 10
_SOURCE_LOSS_RATE = 0.1


@dataclass(frozen=True)
class AdaptationConfig:
    """Adaptation settings. Defaults are real-time ones (see docs/adaptation.md).

    The paper's settings (Sun et al. 2020): SGD lr 0.001, no momentum, 32 copies, 10 steps in reset
    mode and 1 step online; ``PAPER_RESET`` and ``PAPER_ONLINE`` below.
    """

    mode: str = DEFAULT["mode"]
    objective: str = DEFAULT["objective"]
    learning_rate: float = DEFAULT["learning_rate"]
    momentum: float = DEFAULT["momentum"]
    max_steps: int = DEFAULT["max_steps"]
    batch_size: int = DEFAULT["batch_size"]
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
    # frames) is at least this; 0: always. A shift signal that adapting cannot bend: high under noise,
    # near its clean level under fog and low contrast, where steps do harm (docs/adaptation.md).
    min_ssl_loss: float = DEFAULT["min_ssl_loss"]
    seed: int = DEFAULT["seed"]

    def validated(self) -> "AdaptationConfig":
        """Self, or ValueError naming the first invalid value and why."""
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}"),
            (self.objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got {self.objective!r}"),
            (self.policy in POLICIES, f"policy must be one of {POLICIES}, got {self.policy!r}"),
            (self.parameters in PARAMETER_SETS, f"parameters must be one of {PARAMETER_SETS}, got {self.parameters!r}"),
            (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1.0,
             f"learning_rate must be in (0, 1], got {self.learning_rate}"),
            (math.isfinite(self.momentum) and 0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (0 <= self.max_steps <= 100, f"max_steps must be in 0..100, got {self.max_steps}"),
            (1 <= self.batch_size <= 256, f"batch_size must be in 1..256, got {self.batch_size}"),
            (math.isfinite(self.budget_ms) and self.budget_ms >= 0, f"budget_ms must be >= 0, got {self.budget_ms}"),
            (0 <= self.score_threshold <= 1, f"score_threshold must be in [0, 1], got {self.score_threshold}"),
            (1 <= self.max_detections <= 1000, f"max_detections must be in 1..1000, got {self.max_detections}"),
            (self.health_sigma > 0, f"health_sigma must be > 0, got {self.health_sigma}"),
            (self.health_patience >= 1, f"health_patience must be >= 1, got {self.health_patience}"),
            (math.isfinite(self.min_ssl_loss) and self.min_ssl_loss >= 0,
             f"min_ssl_loss must be a finite value >= 0, got {self.min_ssl_loss}"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ValueError(reason)
        return self


PAPER_RESET = AdaptationConfig(mode="reset", learning_rate=0.001, max_steps=10, batch_size=32)
PAPER_ONLINE = AdaptationConfig(mode="online", learning_rate=0.001, max_steps=1, batch_size=32)


@dataclass
class FrameReport:
    """What happened to one frame; ``as_dict`` is what the node publishes as uncertainty."""

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

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FrameResult:
    detections: Detections
    class_probs: np.ndarray
    report: FrameReport


class _LossHealth:
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


class TestTimeAdapter:
    """Adapts and predicts frame by frame; one instance serves every camera stream."""

    __test__ = False  # not a pytest class despite its name

    def __init__(self, model: YNet, config: AdaptationConfig | None = None, device: str | torch.device = "auto",
                 clock: Callable[[], float] = time.perf_counter):
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        # The adapter owns its copy: adapting never changes the caller's model, so several adapters
        # (benchmark methods, tests) built from one model all start from the same source weights.
        self.model = copy.deepcopy(model).to(self.device).eval()
        self.clock = clock
        self.timings = DurationEstimator()
        self._lock = threading.RLock()
        self._config = (config or AdaptationConfig()).validated()
        self._generator = torch.Generator().manual_seed(self._config.seed)
        self._build_parameter_state()

    # ---- configuration and state -------------------------------------------------------------

    @property
    def config(self) -> AdaptationConfig:
        return self._config

    def update_config(self, **changes) -> AdaptationConfig:
        """Apply from the next frame; ValueError (nothing changed) when any value is invalid.

        Changing mode, objective or parameters returns every stream to the source weights.
        """
        with self._lock:
            try:
                new = dataclasses.replace(self._config, **changes).validated()
            except TypeError as exc:
                raise ValueError(f"unknown adaptation setting: {exc}") from exc
            old, self._config = self._config, new
            if (old.objective, old.parameters) != (new.objective, new.parameters):
                self._restore_source_everywhere()
                self._build_parameter_state()
            elif old.mode != new.mode or old.share_state != new.share_state:
                self._restore_source_everywhere()
            for group in self._optimizer.param_groups:
                group["lr"], group["momentum"] = new.learning_rate, new.momentum
            return new

    def _build_parameter_state(self) -> None:
        cfg = self._config
        self._params = adaptable_parameters(self.model, cfg.objective, cfg.parameters)
        chosen = {id(p) for p in self._params.values()}
        for param in self.model.parameters():
            param.requires_grad_(id(param) in chosen)  # frozen parts need no gradient buffers
        self._optimizer = torch.optim.SGD(list(self._params.values()), lr=cfg.learning_rate, momentum=cfg.momentum)
        self._source = self._snapshot()
        # the source tensors of the extractor, named as inside it: what the min_ssl_loss gate runs on
        self._source_extractor = {name[len("extractor."):]: t for name, t in self._source["params"].items()
                                  if name.startswith("extractor.")}
        self._streams: dict[str, dict] = {}
        self._health: dict[str, _LossHealth] = {}
        self._source_loss: dict[str, tuple[int, float]] = {}  # per stream: frames, running source loss
        self._adapted: set[str] = set()  # online streams whose weights have moved since the source
        self._live_stream: str | None = None  # whose weights the model holds now (None: the source)

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

    def _save_into(self, snapshot: dict) -> None:
        with torch.no_grad():
            for name, param in self._params.items():
                snapshot["params"][name].copy_(param)
        snapshot["optimizer"] = copy.deepcopy(self._optimizer.state_dict()["state"])

    def _restore_source_everywhere(self) -> None:
        self._load(self._source)
        self._streams.clear()
        self._health.clear()
        self._source_loss.clear()
        self._adapted.clear()
        self._live_stream = None

    def _activate(self, key: str) -> None:
        """Make the model hold ``key``'s weights; copies only when the stream changes."""
        if self._live_stream == key:
            return
        if self._live_stream is not None:
            self._save_into(self._streams[self._live_stream])
        if key not in self._streams:
            self._streams[key] = self._snapshot() if self._live_stream is None else copy.deepcopy(self._source)
            if self._live_stream is not None:
                self._load(self._source)
        else:
            self._load(self._streams[key])
        self._live_stream = key

    def reset(self, stream: str | None = None) -> None:
        """Back to the source weights and a fresh optimizer: one stream, or all of them."""
        with self._lock:
            if stream is None:
                self._restore_source_everywhere()
                return
            key = self._stream_key(stream)
            self._health.pop(key, None)
            self._source_loss.pop(key, None)
            self._adapted.discard(key)
            if self._live_stream == key:
                self._load(self._source)
                self._live_stream = None
            self._streams.pop(key, None)

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
            if key == self._live_stream:
                return {n: p.detach().clone() for n, p in self._params.items()}
            return {n: t.clone() for n, t in self._streams.get(key, self._source)["params"].items()}

    # ---- one frame ---------------------------------------------------------------------------

    def process(self, image: np.ndarray, stream: str = "default", arrival_time: float | None = None) -> FrameResult:
        """Adapt on one RGB uint8 frame within its budget, predict, and report."""
        with self._lock:
            return self._process(image, stream, arrival_time)

    def _process(self, image: np.ndarray, stream: str, arrival_time: float | None) -> FrameResult:
        cfg = self._config
        start = self.clock()
        arrival = start if arrival_time is None else arrival_time
        x = to_model_input(image, self.model.config, self.device)
        after_preprocess = self.clock()
        key = self._stream_key(stream)
        if cfg.mode == "online":
            self._activate(key)
        elif self._live_stream is not None:  # reset/off always start from the source
            self._restore_source_everywhere()

        deadline = FrameDeadline(after_preprocess, arrival, cfg.budget_ms / 1000.0,
                                 self.timings.estimate(self._predict_kind()), self.timings.estimate(self._step_kind()))
        steps_planned = cfg.max_steps if cfg.mode != "off" else 0
        steps, reason, loss_before, auto_reset = 0, "done", math.nan, ""
        if steps_planned == 0:
            reason = "off"
        elif deadline.late():
            reason = "late"
        elif cfg.policy == "skip" and not deadline.fits(after_preprocess, steps_planned):
            reason = "budget"
        elif cfg.min_ssl_loss > 0 and self._running_source_loss(key, x) < cfg.min_ssl_loss:
            reason = "low_loss"
            if key in self._adapted:  # the shift is over: what was learnt for it would only do harm
                auto_reset = f"running source rotation loss below min_ssl_loss {cfg.min_ssl_loss:g}"
        else:
            while steps < steps_planned:
                if not deadline.fits(self.clock(), 1):
                    reason = "budget"
                    break
                loss = self._step(x)
                steps += 1
                if steps == 1:
                    loss_before = loss
                if not math.isfinite(loss):
                    auto_reset = "non-finite self-supervised loss"
                    break
        adapt_end = self.clock()
        if steps and cfg.mode == "online":
            self._adapted.add(key)
        if steps == 0 and reason == "budget":
            self.timings.refused(self._step_kind())

        if auto_reset:
            self._reset_live(key)
        detections, class_probs, loss_after = self._predict(x, image.shape)
        end = self.clock()
        self.timings.record(self._predict_kind(), end - adapt_end)
        if steps == 0:
            loss_before = loss_after
        if not auto_reset and cfg.mode == "online" and math.isfinite(loss_before):
            health = self._health.setdefault(key, _LossHealth())
            if health.unhealthy(loss_before, cfg.health_sigma, cfg.health_patience):
                auto_reset = f"self-supervised loss {cfg.health_sigma:g} sigma above its running range " \
                             f"for {cfg.health_patience} frames"
        if auto_reset and cfg.mode == "online":
            self._reset_live(key)
        elif cfg.mode == "reset" and steps:
            self._load(self._source)

        summary = summarise(class_probs)
        report = FrameReport(
            stream=stream, mode=cfg.mode, objective=cfg.objective, steps_planned=steps_planned, steps_taken=steps,
            stop_reason=reason, adapt_ms=(adapt_end - after_preprocess) * 1e3, predict_ms=(end - adapt_end) * 1e3,
            preprocess_ms=(after_preprocess - start) * 1e3, total_ms=(end - arrival) * 1e3, budget_ms=cfg.budget_ms,
            deadline_met=deadline.met(end), ssl_loss_before=loss_before, ssl_loss_after=loss_after,
            auto_reset=auto_reset, **summary,
        )
        return FrameResult(detections, class_probs, report)

    def _reset_live(self, key: str) -> None:
        self._load(self._source)
        self._health.pop(key, None)
        self._adapted.discard(key)
        if key in self._streams:
            self._save_into(self._streams[key])

    def _running_source_loss(self, key: str, x: torch.Tensor) -> float:
        """The stream's running mean of the source weights' rotation loss, updated with this frame."""
        rotated, labels = plain_rotations(x)
        with torch.no_grad():
            features = torch.func.functional_call(self.model.extractor, self._source_extractor, (rotated,))
            loss = float(F.cross_entropy(self.model.ssl_head(features), labels))
        count, level = self._source_loss.get(key, (0, 0.0))
        if math.isfinite(loss):
            count += 1
            level += max(1.0 / count, _SOURCE_LOSS_RATE) * (loss - level)
            self._source_loss[key] = (count, level)
        return level if count >= _SOURCE_LOSS_WARMUP else 0.0  # no steps before the level is known

    def _step_kind(self) -> tuple:
        cfg = self._config
        return ("step", cfg.objective, cfg.parameters, cfg.batch_size)

    def _predict_kind(self) -> tuple:
        return ("predict", self._config.measure_ssl_loss)

    def _step(self, x: torch.Tensor) -> float:
        """One SGD step on the objective; returns the loss on the plain frame before the update."""
        cfg = self._config
        began = self.clock()
        self._optimizer.zero_grad(set_to_none=True)
        if cfg.objective == "rotation":
            images, labels = rotation_batch(x, cfg.batch_size, self._generator)
            per_sample = rotation_loss_per_sample(self.model, images, labels)
            loss = per_sample.mean()
            probe = per_sample[:4].mean()  # the plain frame's four rotations
        else:
            loss = entropy_loss(self.model, augmented_copies(x, cfg.batch_size, self._generator))
            probe = loss
        value = float(probe.detach())  # one host sync per step: the health check and the report need it
        if math.isfinite(value):
            loss.backward()
            self._optimizer.step()
        synchronize(self.device)
        self.timings.record(self._step_kind(), self.clock() - began)
        return value

    @torch.no_grad()
    def _predict(self, x: torch.Tensor, image_shape: tuple[int, ...]):
        cfg, model = self._config, self.model
        loss_after = math.nan
        if cfg.measure_ssl_loss:
            rotated, labels = plain_rotations(x)
            features = model.extractor(rotated)  # rotation 0 is the frame itself
            output = model.main_head(features[:1])
            loss_after = float(F.cross_entropy(model.ssl_head(features), labels))
        else:
            output = model(x[None])
        if model.config.task == "classifier":
            probs = torch.softmax(output[0].float(), dim=0).cpu().numpy()
            height, width = image_shape[:2]
            box = np.array([[0, 0, width, height]], np.float32)
            cls = int(np.argmax(probs))
            detections = Detections(box, np.array([probs[cls]], np.float32), np.array([cls]), probs[None])
            return detections, probs, loss_after
        stride = model.config.output_stride
        detections = decode_detections(output["heatmap"][0], output["box"][0], stride, cfg.score_threshold,
                                       cfg.max_detections)
        detections = detections.scaled(*scale_to_image(model.config, image_shape))
        if len(detections):
            probs = detections.class_probs[int(np.argmax(detections.scores))]
        else:
            probs = frame_class_probs(output["heatmap"][0]).cpu().numpy()
        return detections, probs, loss_after

    def calibrate(self, repeats: int = 3) -> dict[str, float]:
        """Measure step and prediction times on a grey frame; weights and streams are left as they were."""
        with self._lock:
            cfg, size = self._config, self.model.config.input_size
            frame = np.full((size, size, 3), 127, np.uint8)
            x = to_model_input(frame, self.model.config, self.device)
            saved = self._snapshot()
            generator_state = self._generator.get_state()
            try:
                # The first step and prediction of a fresh model pay one-off costs (allocations, kernel
                # selection) that can be 10x a normal step; measured, they would make the estimate refuse
                # every step, and a refused step is never measured again. Warm up without recording.
                measured, self.timings = self.timings, DurationEstimator()
                try:
                    if cfg.max_steps:
                        self._step(x)
                    self._predict(x, frame.shape)
                    synchronize(self.device)
                finally:
                    self.timings = measured
                for _ in range(repeats):
                    if cfg.max_steps:
                        self._step(x)
                    began = self.clock()
                    self._predict(x, frame.shape)
                    synchronize(self.device)
                    self.timings.record(self._predict_kind(), self.clock() - began)
            finally:
                self._load(saved)
                self._generator.set_state(generator_state)
            step = self.timings.estimate(self._step_kind())
            return {"step_ms": (step or 0.0) * 1e3,
                    "predict_ms": (self.timings.estimate(self._predict_kind()) or 0.0) * 1e3}
