"""``bench realtime``: the stream does not wait (Alfarra et al., ICML 2024).

Frames arrive at a fixed rate (10 and 30 Hz). The adapter works on one frame at a time; a frame that
arrives while it is busy waits in a one-frame slot and is replaced by the next arrival (latest frame
only, as in the ROS node), so frames are dropped when a method is slower than the stream. Each frame
has a deadline budget, a multiple of the measured plain-inference time, counted from its arrival; the
adapter's own policy (``truncate``) takes only the steps that it predicts will fit. Between frames each
method pre-warms as the node does (``prewarm_ms``); off and adapting after publishing also run without.

Scoring: a processed frame is scored with its own prediction; a dropped frame with the last output
published before it (what a consumer holds), or as wrong (no detections) when there was none yet. A
dropped frame misses its deadline. Classification: error per frame; detection (``--task detector``):
mAP@0.5 per stream over what was held, mean over the streams, as ``bench accuracy`` scores it. Every run
keeps which frames it got wrong (detection: frames whose detections at the node's score threshold were
not exactly their objects), so the 1.2x target also says on how many frames adapting after publishing
and off disagree, each way, with the exact sign test on them (two runs on the same 600 frames that
differ by a few frames are not told apart from chance). Time:
the processing is real (the adapter's measured durations decide), the idle time between arrivals is
skipped (``SkipIdleClock``), so a run takes only as long as its work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..adaptation_config import PAPER_ONLINE, PAPER_RESET, AdaptationConfig
from ..adapter import TestTimeAdapter
from ..choices import GATE_OFF, OBJECTIVES, STOP_REASONS
from ..corruptions import CORRUPTIONS
from ..detection import Detections
from ..metrics import frame_exactly_right, mean_average_precision
from .common import (
    add_common_arguments,
    format_table,
    load_model,
    paired_errors,
    peak_memory_mb,
    print_targets,
    reset_peak_memory,
    results_dir,
    run_record,
    set_up,
    target,
    write_json,
)
from .evaluation import (
    JOINT,
    TASKS,
    TENT,
    TTT_ONLINE,
    TTT_RESET,
    chosen_lr,
    corrupted_sets,
    make_frames,
    private_adapter,
    quality_name,
    scoring_for,
    tent_config,
    truth_of,
)

PROFILES = {
    "quick": {"frames": 40, "corruptions": CORRUPTIONS, "rates": (10.0, 30.0),
              "budgets": (1.2, 3.0, 10.0, 30.0, 0.0)},
    "full": {"frames": 200, "corruptions": CORRUPTIONS, "rates": (10.0, 30.0),
             "budgets": (1.2, 1.5, 3.0, 5.0, 10.0, 30.0, 100.0, 0.0)},
}
STEP_COST_BATCHES = (4, 8, 16, 32)
WALL_CLOCK_REFERENCE = ("plain inference at the run's rate, after idle waits, timed from the frames' due times, "
                        "measured before each run")


# ---- the stream scheduler (pure: clock, sleep and work are injected) ------------------------------


class SkipIdleClock:
    """Real time while working; ``sleep`` jumps ahead instead of waiting.

    Both the stream and the adapter read this clock, so the adapter's deadline decisions see the real
    cost of its work while a run never waits for frames to arrive.
    """

    def __init__(self, base: Callable[[], float] = time.perf_counter):
        self._base = base
        self._skipped = 0.0

    def __call__(self) -> float:
        return self._base() + self._skipped

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._skipped += seconds


class WallClock:
    """The real thing: ``sleep`` waits (``--wall-clock``); a run then lasts frames / rate seconds."""

    def __call__(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


@dataclass
class Processed:
    index: int
    arrival: float
    started: float
    finished: float
    output: object
    published: float  # when its output went out: ``finished``, or earlier when the work went on after it


@dataclass
class Published:
    """What ``process`` returns when its output went out before its work ended (adapt after publish)."""

    output: object
    at: float


@dataclass
class StreamRun:
    processed: list[Processed]
    dropped: list[int]
    count: int
    t0: float
    period: float

    def held_outputs(self) -> list:
        """Per frame, what a consumer holds once the frame is due: its own output when it was processed,
        else the latest output published before it arrived (None when there was none)."""
        held, by_index = [], {p.index: p for p in self.processed}
        order = sorted(self.processed, key=lambda p: p.published)
        latest, k = None, 0
        for i in range(self.count):
            if i in by_index:
                held.append(by_index[i].output)
                continue
            arrival = self.arrival_of(i)
            while k < len(order) and order[k].published <= arrival:
                latest = order[k].output
                k += 1
            held.append(latest)
        return held

    def arrival_of(self, index: int) -> float:
        return self.t0 + index * self.period


def run_fixed_rate(count: int, fps: float, process: Callable[[int, float], object],
                   clock: Callable[[], float], sleep: Callable[[float], None],
                   before_arrival: Callable[[float], None] | None = None) -> StreamRun:
    """Frames 0..count-1 arrive at ``t0 + i / fps``; ``process(index, arrival)`` handles one at a time
    and returns its output (or ``Published`` when the output went out before the work ended).

    When the worker is free it takes the newest frame that has arrived; older waiting ones are dropped.
    When nothing new has arrived it calls ``before_arrival(due)`` once (work of the idle time, such as
    the node's pre-warm), then sleeps until the next arrival.
    """
    if count < 0 or fps <= 0:
        raise ValueError(f"need count >= 0 and fps > 0, got {count}, {fps}")
    period = 1.0 / fps
    t0 = clock()
    processed, dropped = [], []
    next_index, idle_done_for = 0, -1
    while next_index < count:
        now = clock()
        newest = min(int(math.floor((now - t0) / period + 1e-9)), count - 1)
        if newest < next_index:
            due = t0 + next_index * period
            if before_arrival is not None and idle_done_for != next_index:
                idle_done_for = next_index
                before_arrival(due)
                continue
            sleep(due - now)
            continue
        dropped.extend(range(next_index, newest))
        arrival = t0 + newest * period
        started = clock()
        result = process(newest, arrival)
        finished = clock()
        output, published = (result.output, result.at) if isinstance(result, Published) else (result, finished)
        processed.append(Processed(newest, arrival, started, finished, output, published))
        next_index = newest + 1
    return StreamRun(processed, dropped, count, t0, period)


def percentiles(values) -> dict:
    if len(values) == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan}
    p50, p95, p99 = np.percentile(np.asarray(values, float), [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


# ---- measurement ---------------------------------------------------------------------------------


ADAPT_FIRST = "TTT online (node defaults), adapt then predict"
ADAPT_AFTER = "TTT online (node defaults), adapt after publish"
COLD = ", no pre-warm"  # the same method without the throwaway prediction before each frame


def realtime_methods(tent_lr: float, task: str = "classifier") -> dict[str, AdaptationConfig]:
    """No ssl-loss probe after the prediction: the prediction then costs exactly a plain inference.
    The node's defaults twice: steps before the prediction, and steps after it is published. Every
    method pre-warms as the node does; off and adapting after publishing also run without it, side by side.
    Detection keeps the low-score tail that mAP wants, as in ``bench accuracy``."""
    defaults = AdaptationConfig()
    methods = {JOINT: AdaptationConfig(mode="off"), TENT: tent_config(tent_lr), TTT_RESET: PAPER_RESET,
               TTT_ONLINE: PAPER_ONLINE, ADAPT_FIRST: dataclasses.replace(defaults, adapt_after_publish=False),
               ADAPT_AFTER: dataclasses.replace(defaults, adapt_after_publish=True)}
    methods.update({name + COLD: dataclasses.replace(methods[name], prewarm_ms=0.0) for name in (JOINT, ADAPT_AFTER)})
    scoring = scoring_for(task)
    return {name: dataclasses.replace(cfg, measure_ssl_loss=False, **scoring) for name, cfg in methods.items()}


# ``--methods``: short names of the methods a run may be limited to
METHOD_KEYS = {"off": JOINT, "tent": TENT, "reset": TTT_RESET, "online": TTT_ONLINE, "adapt-first": ADAPT_FIRST,
               "adapt-after": ADAPT_AFTER, "off-cold": JOINT + COLD, "adapt-after-cold": ADAPT_AFTER + COLD}


def parse_methods(text: str | None) -> list[str]:
    """``--methods off,adapt-after`` as the methods' full names, in the run's order; None: all of them.
    ValueError naming the unknown ones."""
    if text is None:
        return list(METHOD_KEYS.values())
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in METHOD_KEYS]
    if unknown or not keys:
        raise ValueError(f"--methods: unknown {', '.join(unknown) or repr(text)}; choose from {', '.join(METHOD_KEYS)}")
    return [name for key, name in METHOD_KEYS.items() if key in keys]


def autocast_context(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def measure_plain_inference(model, frames: np.ndarray, device, amp: bool, repeats: int = 200,
                            fps: float | None = None) -> dict:
    """Median time of one frame through the adapter in mode off (preprocess + forward + decode).

    Back to back by default, as frames come under the skip-idle clock. With ``fps`` frames are due at a
    fixed rate and each is timed from its due time, after an idle wait, as a wall-clock run times its
    frames from their arrival: on a CPU the first forward pass after a pause is far slower than one in a
    tight loop (2x on a 2-core VM at 10 Hz), and waking up takes time too, so a budget on the wall
    clock must be a multiple of this time, not of the back-to-back one. A detector decodes with the
    runs' low score threshold, as the methods do.
    """
    config = AdaptationConfig(mode="off", measure_ssl_loss=False, **scoring_for(model.config.task))
    adapter = private_adapter(model, config, device)
    times, forward = [], []
    start = time.perf_counter()
    with autocast_context(device, amp):
        for i in range(repeats + 5):
            began = time.perf_counter()
            if fps:  # the frame is due now; the wake-up from the wait counts, as in a run
                began = start + i / fps
                time.sleep(max(0.0, began - time.perf_counter()))
            report = adapter.process(frames[i % len(frames)]).report
            if i >= 5:
                times.append((time.perf_counter() - began) * 1e3)
                forward.append(report.predict_ms)
    return {"plain_inference_ms": float(np.median(times)), "forward_ms": float(np.median(forward))}


def budget_reference(model, frames: np.ndarray, device, amp: bool, fps: float, wall_clock: bool,
                     back_to_back_ms: float, repeats: int = 100) -> float:
    """The plain-inference time a run's budgets are multiples of: the back-to-back time under the
    skip-idle clock; on the wall clock, plain inference measured at the run's rate just before it (this
    time drifts by tens of percent over minutes on a shared VM, more than a 1.2x budget's slack)."""
    if not wall_clock:
        return back_to_back_ms
    return measure_plain_inference(model, frames, device, amp, repeats, fps=fps)["plain_inference_ms"]


def step_costs(model, frames: np.ndarray, device, amp: bool, forward_ms: float, repeats: int = 6) -> list[dict]:
    """One adaptation step (rotation and entropy) per batch size, as a multiple of one forward pass."""
    rows = []
    for objective in OBJECTIVES:
        for batch in STEP_COST_BATCHES:
            cfg = AdaptationConfig(mode="reset", objective=objective, batch_size=batch, max_steps=1,
                                   measure_ssl_loss=False, **GATE_OFF)  # a step on every frame
            adapter = private_adapter(model, cfg, device)
            samples = []
            with autocast_context(device, amp):
                for i in range(repeats + 2):
                    report = adapter.process(frames[i % len(frames)]).report
                    if i >= 2 and report.steps_taken:
                        samples.append(report.adapt_ms)
            step = float(np.median(samples))
            rows.append({"objective": objective, "batch_size": batch, "step_ms": step,
                         "step_over_forward": step / forward_ms, "per_copy": step / forward_ms / batch})
    return rows


# A detection frame is right when what the node would publish (its default score threshold) is exactly
# the frame's objects.
PUBLISHED_SCORE_THRESHOLD = AdaptationConfig().score_threshold


def score_held(held: list, truth, task: str, num_classes: int) -> dict:
    """What a consumer held for each frame, scored. ``wrong``: per frame, 1 when the label was wrong or
    missing (classification) or the detections were not exactly the frame's objects (detection);
    detection also gets the stream's mAP@0.5 (%), a frame with nothing held counting as no detections."""
    if task == "classifier":
        return {"wrong": [int(h is None or h != int(label)) for h, label in zip(held, truth)]}
    true_boxes, true_labels = truth
    held = [Detections.empty(num_classes) if h is None else h for h in held]
    wrong = [int(not frame_exactly_right(d.boxes, d.scores, d.class_ids, b, lab, PUBLISHED_SCORE_THRESHOLD))
             for d, b, lab in zip(held, true_boxes, true_labels)]
    return {"wrong": wrong, "mAP": stream_map(held, true_boxes, true_labels, num_classes)}


def stream_map(detections: list[Detections], true_boxes, true_labels, num_classes: int) -> float:
    """mAP@0.5 (%) of one stream's detections, frame by frame against its objects."""
    return 100.0 * mean_average_precision([d.boxes for d in detections], [d.scores for d in detections],
                                          [d.class_ids for d in detections], true_boxes, true_labels, num_classes)


def run_stream(adapter: TestTimeAdapter, clock, images: np.ndarray, truth, fps: float, stream: str,
               amp: bool) -> dict:
    """One stream at ``fps``. ``truth``: labels (classification) or (boxes, labels) per frame (detection)."""
    reports, period = {}, 1.0 / fps
    task, num_classes = adapter.model.config.task, adapter.model.config.num_classes

    def process(index: int, arrival: float):
        published = []  # adapting after publishing: the steps must end before the next frame is due
        result = adapter.process(images[index], stream=stream, arrival_time=arrival,
                                 publish=lambda _: published.append(adapter.clock()), adapt_until=arrival + period)
        reports[index] = result.report
        output = int(np.argmax(result.class_probs)) if task == "classifier" else result.detections
        return Published(output, published[0]) if published else output

    def prewarm(due: float):  # as the node does: a throwaway prediction that ends prewarm_ms before the frame
        clock.sleep(adapter.prewarm_at(due) - clock())
        adapter.prewarm(until=due)

    with autocast_context(adapter.device, amp):
        run = run_fixed_rate(len(images), fps, process, clock, clock.sleep,
                             prewarm if adapter.config.prewarm_ms > 0 else None)
    held = run.held_outputs()
    scored = score_held(held, truth, task, num_classes)
    processed = [p.index for p in run.processed]
    out = {"wrong": scored["wrong"], "processed_wrong": [scored["wrong"][i] for i in processed],
           "reports": [reports[i] for i in processed], "dropped": len(run.dropped)}
    if task == "detector":  # what was processed alone, scored as a stream of its own
        boxes, labels = truth
        out["mAP"] = scored["mAP"]
        out["mAP_processed"] = stream_map([held[i] for i in processed], [boxes[i] for i in processed],
                                          [labels[i] for i in processed], num_classes)
    return out


def run_setting(model, name: str, config: AdaptationConfig, budget_ms: float, fps: float, sets: dict, truth,
                device, seed: int, amp: bool, wall_clock: bool = False) -> dict:
    """One method at one rate and budget over every stream of ``sets`` (each from the source weights).
    ``truth``: the frames' labels, or (boxes, labels) for detection; every set holds the same frames."""
    clock = WallClock() if wall_clock else SkipIdleClock()
    adapter = private_adapter(model, dataclasses.replace(config, budget_ms=budget_ms, seed=seed), device, clock=clock)
    adapter.calibrate(repeats=3)
    reset_peak_memory(device)
    wrong, processed_wrong, reports, dropped, total, streams = [], [], [], 0, 0, []
    for stream, images in sets.items():
        adapter.reset()
        out = run_stream(adapter, clock, images, truth, fps, stream, amp)
        wrong += out["wrong"]
        processed_wrong += out["processed_wrong"]
        reports += out["reports"]
        dropped += out["dropped"]
        total += len(images)
        streams.append(out)
    memory = peak_memory_mb(device)
    met = sum(r.deadline_met for r in reports)
    frame_error = 100.0 * float(np.mean(wrong))
    frame_error_processed = 100.0 * float(np.mean(processed_wrong)) if processed_wrong else math.nan
    if model.config.task == "classifier":
        scores = {"error": frame_error, "error_processed": frame_error_processed}
    else:  # mean over the streams, as bench accuracy; the per-frame measure beside it
        scores = {key: float(np.mean([out[key] for out in streams])) for key in ("mAP", "mAP_processed")}
        scores.update(frame_error=frame_error, frame_error_processed=frame_error_processed)
    return {
        "method": name, "fps": fps, "budget_ms": budget_ms, "frames": total, "prewarm_ms": config.prewarm_ms,
        **scores,
        "wrong_frames": "".join(map(str, wrong)),  # per frame, in the sets' order: paired comparisons
        "drop_fraction": dropped / total,
        "deadline_met_fraction": met / total if budget_ms > 0 else None,
        "deadline_met_processed": met / len(reports) if budget_ms > 0 and reports else None,
        "mean_steps": float(np.mean([r.steps_taken for r in reports])) if reports else 0.0,
        "stop_reasons": {k: sum(r.stop_reason == k for r in reports) for k in STOP_REASONS},
        "latency_ms": {"predict": percentiles([r.predict_ms for r in reports]),
                       "adapt": percentiles([r.adapt_ms for r in reports]),
                       "arrival_to_output": percentiles([r.total_ms for r in reports])},
        "peak_memory": memory,
        "auto_resets": sum(bool(r.auto_reset) for r in reports),
    }


def targets_for(runs: list[dict], rates, task: str = "classifier") -> list[dict]:
    """Issue targets: at 1.2x plain inference, adapting after publishing keeps >= 99% of the deadlines
    and errs less than off (detection: a higher mAP); at 3x, every method keeps >= 99% of them."""
    out = []
    for fps in rates:
        at = {multiple: {r["method"]: r for r in runs if r["fps"] == fps and r["budget_multiple"] == multiple}
              for multiple in (1.2, 3.0)}
        after, off = at[1.2].get(ADAPT_AFTER), at[1.2].get(JOINT)
        if after and off:
            out.append(target(f"{fps:g} Hz, budget 1.2x plain inference: {ADAPT_AFTER} meets >= 99% of deadlines",
                              after["deadline_met_fraction"] >= 0.99,
                              f"{100 * after['deadline_met_fraction']:.1f}% (off: "
                              f"{100 * off['deadline_met_fraction']:.1f}%{cold_note(at[1.2])}), "
                              f"{after['mean_steps']:.2f} steps per processed frame"))
            out.append(quality_target(after, off, fps, task))
        if at[3.0]:
            worst = min(at[3.0].values(), key=lambda r: r["deadline_met_fraction"])
            out.append(target(f"{fps:g} Hz, budget 3x plain inference: deadline met on >= 99% of frames "
                              f"(every method)", worst["deadline_met_fraction"] >= 0.99,
                              f"lowest {100 * worst['deadline_met_fraction']:.1f}% ({worst['method']})"))
    return out


def quality_target(after: dict, off: dict, fps: float, task: str) -> dict:
    if task == "classifier":
        return target(f"{fps:g} Hz, budget 1.2x: {ADAPT_AFTER} error below off", after["error"] < off["error"],
                      f"{after['error']:.1f}% vs {off['error']:.1f}%{paired_note(after, off, task)}")
    return target(f"{fps:g} Hz, budget 1.2x: {ADAPT_AFTER} mAP above off", after["mAP"] > off["mAP"],
                  f"mAP@0.5 {after['mAP']:.1f} vs {off['mAP']:.1f}{paired_note(after, off, task)}")


def paired_note(run: dict, off: dict, task: str = "classifier") -> str:
    """Where the two runs disagree on the same frames (files from before the per-frame record: nothing)."""
    if "wrong_frames" not in run or "wrong_frames" not in off:
        return ""
    paired = paired_errors([int(c) for c in run["wrong_frames"]], [int(c) for c in off["wrong_frames"]])
    worse, better = paired["only_first_wrong"], paired["only_second_wrong"]
    test = f"(exact sign test p = {paired['p_value']:.2f})"
    if task == "classifier":
        return f"; wrong where off was right on {worse} frames, right where off was wrong on {better} {test}"
    return (f"; detections exactly right where off's were not on {better} frames, not where off's were on {worse} "
            f"{test}")


def cold_note(runs: dict) -> str:
    """Both methods' deadlines without the pre-warm, when the file has those runs (older files do not)."""
    cold = [runs.get(name + COLD) for name in (ADAPT_AFTER, JOINT)]
    if not all(cold):
        return ""
    return "; without the pre-warm {:.1f}%, off {:.1f}%".format(*(100 * r["deadline_met_fraction"] for r in cold))


def budget_reference_ms(payload: dict, fps: float) -> float:
    """The plain-inference time that budgets at ``fps`` are multiples of: on the wall clock each run
    measured its own (the median is shown); files from before that have only the back-to-back one."""
    own = [r["plain_inference_ms"] for r in payload["runs"]
           if r["fps"] == fps and r["budget_multiple"] > 0 and "plain_inference_ms" in r]
    return float(np.median(own)) if own else payload["plain_inference_ms"]


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, rates = payload["runs"], payload["rates"]
    quality = quality_name(payload["task"])
    fig, axes = plt.subplots(2, len(rates), figsize=(6.5 * len(rates), 8), squeeze=False)
    budgets = sorted({r["budget_multiple"] for r in runs if r["budget_multiple"] > 0})
    positions = {b: i for i, b in enumerate(budgets)}
    positions[0.0] = len(budgets)
    labels = [f"{b:g}x" for b in budgets] + ["no deadline"]
    for col, fps in enumerate(rates):
        for method in payload["methods"]:
            mine = sorted((r for r in runs if r["fps"] == fps and r["method"] == method),
                          key=lambda r: positions[r["budget_multiple"]])
            x = [positions[r["budget_multiple"]] for r in mine]
            axes[0, col].plot(x, [r[quality] for r in mine], marker="o", label=method)
            met = [(positions[r["budget_multiple"]], 100 * r["deadline_met_fraction"]) for r in mine
                   if r["deadline_met_fraction"] is not None]
            if met:
                axes[1, col].plot(*zip(*met), marker="o", label=method)
        first = "error (%)" if quality == "error" else "mAP@0.5 (%)"
        for row, ylabel in ((0, f"{first}, dropped frames hold the last output"), (1, "deadline met (% of frames)")):
            ax = axes[row, col]
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlabel(f"budget (multiple of plain inference, {budget_reference_ms(payload, fps):.1f} ms)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{fps:g} Hz, {payload['task']}, severity 5 ({payload['machine']})", fontsize=8)
            ax.grid(alpha=0.3)
        axes[1, col].axhline(99, color="grey", ls="--", lw=0.8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_parser(kinds) -> None:
    parser = kinds.add_parser("realtime", help="fixed frame rate, deadline budgets, dropped frames, latency, memory",
                              description=__doc__)
    add_common_arguments(parser, "the CPU profile: 40 frames per corruption stream, budgets 1.2x/3x/10x/30x/none "
                                 "(full: 200 frames, budgets 1.2x..100x)")
    parser.add_argument("--frames", type=int, help="frames per corruption stream (overrides the profile)")
    parser.add_argument("--rates", help="frame rates in Hz, comma separated (default 10,30)")
    parser.add_argument("--budgets", help="budget multiples of plain inference, comma separated; 0 = no deadline")
    parser.add_argument("--task", default="classifier", choices=TASKS,
                        help="classification frames (error per frame) or detection frames (mAP@0.5 per stream)")
    parser.add_argument("--model", help="your own checkpoint of --task's kind instead of the default")
    parser.add_argument("--amp", action="store_true", help="mixed precision (bfloat16 autocast) for every method")
    parser.add_argument("--wall-clock", action="store_true",
                        help="really wait for each frame's arrival (default: skip idle time, same decisions, faster)")
    parser.add_argument("--methods", help=f"only these methods, comma separated: {', '.join(METHOD_KEYS)} "
                                          "(default: all; the 1.2x target needs off and adapt-after)")
    parser.add_argument("--name", help="output file stem under results/ (default: realtime_PROFILE)")
    parser.set_defaults(run=main)


def parse_numbers(text: str, option: str) -> tuple[float, ...]:
    """'10,30' -> (10.0, 30.0); ValueError naming ``option`` for anything else."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"{option} {text!r}: give numbers separated by commas") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{option} {text!r}: give finite numbers")
    return values


def checked_rates_and_budgets(args, settings: dict) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``--rates`` (Hz, > 0) and ``--budgets`` (multiples, >= 0), or the profile's; checked before the
    learning-rate search and the timing take their minutes."""
    rates = parse_numbers(args.rates, "--rates") if args.rates else settings["rates"]
    budgets = parse_numbers(args.budgets, "--budgets") if args.budgets else settings["budgets"]
    if min(rates) <= 0:
        raise ValueError(f"--rates must be > 0 Hz, got {args.rates}")
    if min(budgets) < 0:
        raise ValueError(f"--budgets must be >= 0 (multiples of plain inference; 0: no deadline), got {args.budgets}")
    return rates, budgets


def main(args) -> int:
    profile = "quick" if args.quick else "full"
    settings = PROFILES[profile]
    rates, budgets = checked_rates_and_budgets(args, settings)
    chosen = parse_methods(args.methods)
    if args.frames is not None and args.frames < 1:
        raise ValueError(f"--frames must be >= 1, got {args.frames}")
    device = set_up(args)
    frames = args.frames or settings["frames"]
    model, description = load_model(args.task, args.model, device)
    size = model.config.input_size
    data = make_frames(args.task, "test", frames, size, args.seed + 1)
    truth = truth_of(data, args.task)
    sets = {c: s for c, s in corrupted_sets(data.images, (5,), args.seed, settings["corruptions"]).items()
            if c != "clean"}
    tent = chosen_lr("tent", args.task, model, args.seed, device, user_model=args.model is not None) \
        if TENT in chosen else None
    every = realtime_methods(tent["chosen_lr"] if tent else 0.0, args.task)
    methods = {name: every[name] for name in chosen}
    timing = measure_plain_inference(model, data.images, device, args.amp)
    costs = step_costs(model, data.images, device, args.amp, timing["forward_ms"])
    tent_note = f"; Tent lr {tent['chosen_lr']:g} ({tent['source']})" if tent else ""
    print(f"plain inference {timing['plain_inference_ms']:.2f} ms per frame back to back (forward + decode "
          f"{timing['forward_ms']:.2f} ms){tent_note}")
    if args.wall_clock:
        print(f"budgets: multiples of {WALL_CLOCK_REFERENCE}")
    print(format_table(["objective", "copies", "step ms", "step / forward", "per copy"],
                       [[c["objective"], c["batch_size"], c["step_ms"], c["step_over_forward"], c["per_copy"]]
                        for c in costs]))
    runs = []
    jobs = [(fps, b, n) for fps in rates for b in budgets for n in methods]
    for fps, multiple, name in tqdm(jobs, desc="realtime", unit="run"):
        reference = budget_reference(model, data.images, device, args.amp, fps, args.wall_clock and multiple > 0,
                                     timing["plain_inference_ms"])
        record = run_setting(model, name, methods[name], multiple * reference, fps, sets, truth, device,
                             args.seed, args.amp, args.wall_clock)
        record["budget_multiple"] = multiple
        record["plain_inference_ms"] = reference
        runs.append(record)
    payload = {**run_record(args, device, profile), "task": args.task, "model": description, "amp": args.amp,
               "frames_per_stream": frames, "corruptions": list(settings["corruptions"]), "severity": 5,
               "rates": list(rates), "budgets": list(budgets), **timing, "step_costs": costs, "tent_lr": tent,
               "budget_reference": WALL_CLOCK_REFERENCE if args.wall_clock else "plain inference back to back",
               "methods": {n: dataclasses.asdict(c.resolved_for(args.task)) for n, c in methods.items()},
               "clock": "wall clock (waits for arrivals)" if args.wall_clock else
                        "skip-idle clock (real work time, idle time between arrivals skipped)",
               "timing": "CUDA-synchronised (the adapter synchronises after each step and prediction)"
                         if device.type == "cuda" else "host clock (CPU)",
               "runs": runs}
    payload["targets"] = targets_for(runs, rates, args.task)
    name = args.name or f"realtime_{profile}"
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)

    rows, quality = [], quality_name(args.task)
    for r in runs:
        met = "-" if r["deadline_met_fraction"] is None else f"{100 * r['deadline_met_fraction']:.1f}"
        budget = "none" if r["budget_multiple"] == 0 else f"{r['budget_multiple']:g}x={r['budget_ms']:.2f}ms"
        lat = r["latency_ms"]
        percentiles = {kind: "/".join(f"{lat[kind][p]:.1f}" for p in ("p50", "p95", "p99"))
                       for kind in ("predict", "adapt")}
        rows.append([f"{r['fps']:g}", budget, r["method"], r[quality], met, f"{100 * r['drop_fraction']:.1f}",
                     r["mean_steps"], percentiles["predict"], percentiles["adapt"],
                     f"{r['peak_memory']['mb']:.0f}"])
    first = "error %" if quality == "error" else "mAP@0.5"
    print(format_table(["Hz", "budget", "method", first, "met %", "dropped %", "steps", "predict p50/95/99 ms",
                        "adapt p50/95/99 ms", "peak MB"], rows))
    print()
    print_targets(payload["targets"])
    json_path = write_json(name, payload)
    print(f"wrote {json_path} and {png_path}")
    return 0
