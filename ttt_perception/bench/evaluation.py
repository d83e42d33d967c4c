"""Shared by the accuracy, gradual and correlation benchmarks: the methods compared, the frame sets
(clean and corrupted), and scoring a stream of frames (classification error, detection mAP@0.5)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..adaptation_config import PAPER_ONLINE, PAPER_RESET, AdaptationConfig
from ..adapter import TestTimeAdapter
from ..choices import GATE_OFF
from ..corruptions import CORRUPTIONS, corrupt_batch
from ..data import make_classification_frames, make_detection_frames
from ..metrics import mean_average_precision
from .common import results_dir

TASKS = ("classifier", "detector")
# Detections are scored by mAP, which wants the low-confidence tail too; adaptation does not use it.
DETECTION_SCORE_THRESHOLD = 0.05
LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)

SOURCE_ONLY = "source-only"
JOINT = "joint training (off)"
TENT = "Tent (entropy, norm affine, online)"
FEATURES = "feature alignment (online)"
TTT_RESET = "TTT reset (paper)"
TTT_ONLINE = "TTT online (paper)"
TTT_DEFAULTS = "TTT online (node defaults)"


@dataclass(frozen=True)
class Method:
    name: str
    config: AdaptationConfig
    model: str = "joint"  # "joint": the jointly trained model; "source": the one trained without rotation loss
    note: str = ""
    max_frames: int | None = None  # score only the first frames of each set (a costly per-frame method)


def tent_config(learning_rate: float) -> AdaptationConfig:
    """Tent-style: entropy of the main head, GroupNorm affine parameters only, online, 8 copies, 1 step, no gate
    and no confidence check."""
    return AdaptationConfig(mode="online", objective="entropy", parameters="norm", learning_rate=learning_rate,
                            momentum=0.0, batch_size=8, **GATE_OFF, verify_confidence=False)


def features_config(learning_rate: float) -> AdaptationConfig:
    """Feature alignment (TTT++ / TTAC style): the extractor, online, 8 copies, 1 step, no gate, no confidence check."""
    return AdaptationConfig(mode="online", objective="features", parameters="extractor", learning_rate=learning_rate,
                            momentum=0.0, batch_size=8, **GATE_OFF, adapt_after_publish=False,
                            verify_confidence=False)


# The baselines whose learning rate is chosen on the val split (``chosen_lr``).
LR_SEARCHES = {"tent": tent_config, "features": features_config}


def standard_methods(tent_lr: float | None, features_lr: float | None = None, with_source_only: bool = False,
                     reset_frames: int | None = None) -> list[Method]:
    """The methods every accuracy benchmark compares (a baseline without its learning rate is left out).
    ``reset_frames``: TTT reset (10 steps of 32 copies a frame) scores only the first frames of each set,
    beside mode off on the same frames."""
    methods = [Method(SOURCE_ONLY, AdaptationConfig(mode="off"), "source",
                      "trained with rotation_weight=0, plain inference")] if with_source_only else []
    methods.append(Method(JOINT, AdaptationConfig(mode="off"), note="main + rotation loss, plain inference"))
    if reset_frames:
        methods.append(Method(f"{JOINT}, first {reset_frames}", AdaptationConfig(mode="off"),
                              note="the frames TTT reset is scored on", max_frames=reset_frames))
    if tent_lr is not None:
        methods.append(Method(TENT, tent_config(tent_lr), note=f"lr {tent_lr:g} chosen on the val split"))
    if features_lr is not None:
        methods.append(Method(FEATURES, features_config(features_lr), note=f"lr {features_lr:g} chosen on the val "
                              "split; pooled extractor features pulled toward the clean statistics"))
    methods += [
        Method(TTT_RESET, PAPER_RESET, note="SGD lr 0.001, 10 steps, 32 copies, weights restored after each frame",
               max_frames=reset_frames),
        Method(TTT_ONLINE, PAPER_ONLINE, note="SGD lr 0.001, 1 step, 32 copies, weights kept"),
        Method(TTT_DEFAULTS, AdaptationConfig(), note="AdaptationConfig(): the node's adaptation defaults"),
    ]
    return methods


def scoring_for(task: str) -> dict:
    """The settings a benchmark scores ``task`` with: a detector keeps the low-score tail mAP wants."""
    return {"score_threshold": DETECTION_SCORE_THRESHOLD} if task == "detector" else {}


def for_task(config: AdaptationConfig, task: str, seed: int) -> AdaptationConfig:
    """The method's settings as evaluated: fixed seed, no deadline; low score threshold for mAP."""
    return dataclasses.replace(config, seed=seed, budget_ms=0.0, **scoring_for(task))


# ---- frames ---------------------------------------------------------------------------------------


def make_frames(task: str, split: str, count: int, size: int, seed: int):
    if task == "classifier":
        return make_classification_frames(split, count, size=size, seed=seed)
    return make_detection_frames(split, count, size=size, seed=seed)


def set_key(corruption: str, severity: int) -> str:
    return f"{corruption}/{severity}"


def corrupted_sets(images: np.ndarray, severities, seed: int, corruptions=CORRUPTIONS,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """{'clean': images, 'gaussian_noise/5': ..., ...}: every set holds the same frames."""
    sets = {"clean": images}
    jobs = [(c, s) for s in severities for c in corruptions]
    for corruption, severity in tqdm(jobs, desc="corrupting", unit="set", disable=not progress):
        sets[set_key(corruption, severity)] = corrupt_batch(images, corruption, severity, seed=seed + severity)
    return sets


# ---- scoring --------------------------------------------------------------------------------------


def quality_name(task: str) -> str:
    return "error" if task == "classifier" else "mAP"


def higher_is_better(task: str) -> bool:
    return task == "detector"


def score_stream(adapter: TestTimeAdapter, images: np.ndarray, truth, task: str, stream: str) -> dict:
    """Run one stream through the adapter in order. Classification: error (%); detection: mAP@0.5 (%).

    ``truth``: labels (N,) for classification; (boxes list, labels list) for detection.
    """
    wrong, steps, wall, nll, overhead, ssl_loss = 0, 0, 0.0, 0.0, 0.0, []
    pred_boxes, pred_scores, pred_labels = [], [], []
    per_frame = []
    for i, image in enumerate(images):
        began = time.perf_counter()
        result = adapter.process(image, stream=stream)
        elapsed = time.perf_counter() - began
        wall += elapsed
        report = result.report  # bookkeeping: the call's time beyond preprocessing, steps and prediction
        overhead += elapsed - (report.preprocess_ms + report.adapt_ms + report.predict_ms) / 1e3
        steps += result.report.steps_taken
        if np.isfinite(report.ssl_loss_after):
            ssl_loss.append(report.ssl_loss_after)
        if task == "classifier":
            hit = int(np.argmax(result.class_probs)) == int(truth[i])
            wrong += int(not hit)
            nll -= float(np.log(max(float(result.class_probs[int(truth[i])]), 1e-12)))
            per_frame.append(0 if hit else 1)
        else:
            det = result.detections
            pred_boxes.append(det.boxes)
            pred_scores.append(det.scores)
            pred_labels.append(det.class_ids)
    out = {"frames": len(images), "mean_steps": steps / max(len(images), 1),
           "ssl_loss": float(np.mean(ssl_loss)) if ssl_loss else float("nan"),  # after adapting; off: source
           "ms_per_frame": 1e3 * wall / max(len(images), 1), "overhead_percent": 100.0 * overhead / max(wall, 1e-12)}
    if task == "classifier":
        out["error"] = 100.0 * wrong / max(len(images), 1)
        out["nll"] = nll / max(len(images), 1)  # mean cross-entropy of the true class: a smoother quality
        out["wrong"] = per_frame
        # where in the stream the errors fall: TTT-Online's gain builds up over a stream (Sun et al. 2020)
        tenth = max(len(per_frame) // 10, 1)
        out["error_first_tenth"] = 100.0 * float(np.mean(per_frame[:tenth])) if per_frame else float("nan")
        out["error_last_tenth"] = 100.0 * float(np.mean(per_frame[-tenth:])) if per_frame else float("nan")
    else:
        boxes, labels = truth
        out["mAP"] = 100.0 * mean_average_precision(pred_boxes, pred_scores, pred_labels, boxes, labels,
                                                    adapter.model.config.num_classes)
    return out


def truth_of(data, task: str):
    return data.labels if task == "classifier" else (data.boxes, data.labels)


def private_adapter(model, config: AdaptationConfig, device, **kwargs) -> TestTimeAdapter:
    """An adapter for one method; it adapts its own copy of the model, so no method ever starts from
    another one's adapted weights."""
    return TestTimeAdapter(model, config, device=device, **kwargs)


def evaluate(model, method: Method, task: str, sets: dict[str, np.ndarray], truth, device: torch.device,
             seed: int, progress: bool = True) -> dict[str, dict]:
    """One method over every set; each set is its own stream starting from the method's source weights."""
    adapter = private_adapter(model, for_task(method.config, task, seed), device)
    count = method.max_frames
    if count is not None:
        truth = truth[:count] if task == "classifier" else (truth[0][:count], truth[1][:count])
    per_set = {}
    for name, images in tqdm(sets.items(), desc=f"{task}: {method.name}", unit="set", disable=not progress):
        adapter.reset()
        per_set[name] = score_stream(adapter, images[:count], truth, task, stream=name)
    return per_set


def _evaluate_job(job: tuple) -> dict[str, dict]:
    model, method, task, sets, truth, device, seed, threads = job
    if threads > 0:
        torch.set_num_threads(threads)
    return evaluate(model, method, task, sets, truth, device, seed, progress=False)


def evaluate_methods(model, methods: list[Method], task: str, sets: dict[str, np.ndarray], truth, device: torch.device,
                     seed: int, jobs: int = 1, threads: int = 1, models: dict | None = None) -> dict[str, dict]:
    """``evaluate`` for each method: {method name: per-set records}; on a CPU in ``jobs`` processes.

    ``models`` maps a method's ``model`` field to another model than ``model`` (the source-only one).
    """
    work = [((models or {}).get(m.model, model), m, task, sets, truth, device, seed, threads) for m in methods]
    done = run_jobs(work, jobs, device, desc=f"{task}: methods")
    return {m.name: per_set for m, per_set in zip(methods, done)}


def run_jobs(work: list[tuple], jobs: int, device: torch.device, desc: str) -> list[dict[str, dict]]:
    """``evaluate`` on each (model, method, task, sets, truth, device, seed, threads) job, in order; on a CPU
    in ``jobs`` processes, so jobs of different streams (seeds) can share one pool."""
    if jobs > 1 and device.type == "cpu":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        context = multiprocessing.get_context("spawn")  # torch and fork do not mix reliably
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_evaluate_job, job) for job in work]
            for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="method"):
                pass
            return [future.result() for future in futures]
    return [_evaluate_job(job) for job in tqdm(work, desc=desc, unit="method")]


def mean_quality(per_set: dict[str, dict], task: str, severity: int, corruptions=CORRUPTIONS,
                 key: str | None = None) -> float:
    """The mean over the corruptions of the task's quality (or of ``key``) at one severity."""
    key = key or quality_name(task)
    return float(np.mean([per_set[set_key(c, severity)][key] for c in corruptions]))


def choose_lr(search: str, model, task: str, frames: int, size: int, severities, seed: int, device: torch.device,
              grid=LR_GRID, progress: bool = True) -> dict:
    """A baseline's learning rate (``LR_SEARCHES``), chosen on the val split (disjoint digits and
    backgrounds from test). Criterion: mean quality over the 15 corruptions at the given severities.
    Returns the choice and every candidate's val number."""
    data = make_frames(task, "val", frames, size, seed + 1)
    sets = corrupted_sets(data.images, severities, seed, progress=False)
    sets.pop("clean")
    truth = truth_of(data, task)
    candidates = {}
    for lr in grid:
        per_set = evaluate(model, Method(search, LR_SEARCHES[search](lr)), task, sets, truth, device, seed, progress)
        candidates[f"{lr:g}"] = float(np.mean([mean_quality(per_set, task, s) for s in severities]))
    pick = (max if higher_is_better(task) else min)(candidates, key=candidates.get)
    return {"chosen_lr": float(pick), "criterion": f"mean val {quality_name(task)} over the 15 corruptions at "
            f"severities {list(severities)}, {frames} val frames per set", "val": candidates}


LR_SELECTION = {"classifier": {"frames": 200, "severities": (5,)}, "detector": {"frames": 60, "severities": (5,)}}


def _default_model_digest(task: str) -> str:
    """Identifies the default model a cached choice was made for (a retrained model needs a new one)."""
    from ..default_models import default_model_path

    path = default_model_path(task)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def chosen_lr(search: str, task: str, model, seed: int, device, user_model: bool = False) -> dict:
    """A baseline's learning rate for ``task`` (``LR_SEARCHES``), chosen on the val split and shared by
    every benchmark.

    For the default models the choice is kept in ``results/SEARCH_lr_TASK.json`` (made on first use),
    so accuracy, gradual and realtime all use the same one; a user's model gets its own search, not kept.
    """
    path = results_dir() / f"{search}_lr_{task}.json"
    settings = LR_SELECTION[task]
    if not user_model and path.is_file():
        try:
            cached = json.loads(path.read_text())
            if (cached.get("seed") == seed and cached.get("grid") == [float(v) for v in LR_GRID]
                    and cached.get("frames") == settings["frames"]
                    and cached.get("model_sha256") == _default_model_digest(task)):
                return {**cached, "source": str(path)}
        except (ValueError, OSError):
            pass
    choice = choose_lr(search, model, task, settings["frames"], model.config.input_size, settings["severities"], seed,
                       device)
    choice.update(seed=seed, grid=[float(v) for v in LR_GRID], frames=settings["frames"],
                  model_sha256=None if user_model else _default_model_digest(task))
    if not user_model:
        path.write_text(json.dumps(choice, indent=2))
    return {**choice, "source": "chosen on val for this run" if user_model else str(path)}
