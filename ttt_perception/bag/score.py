"""``bag score``: recorded node outputs against a flight's ground truth, per segment and per mode.

Each run is an output bag of ``bag replay`` (or of ``ros2 bag record`` with the node's topics). Frames
are matched by (frame_id, header stamp), so namespaces and remapping do not matter. The frames a run
is scored on are those it was offered: the ``/replay/sent`` log of the bag when present, else every
ground-truth frame. Per segment, for the clear (severity 0) and shifted (severity > 0) frames together,
and over all frames, for each run:

* ``map50``: mAP@0.5 over the answered frames; ``map50_stream``: the same with unanswered frames
  counted as frames with no detections (what a consumer of the stream sees);
* ``accuracy``: class accuracy of predicted boxes matched to a true box at IoU >= 0.5;
* ``frames``, ``answered``, ``dropped`` (offered but not answered);
* ``deadline_met`` (fraction; ``deadline_met_frames`` of ``deadline_reports`` as counts),
  ``mean_steps``, ``latency_ms`` (the node's own time from arrival to result, mean and p95) and
  ``e2e_ms`` (from publishing the image to recording the detections).

The JSON holds all of it, the node's own counters from ``/diagnostics`` and the series of the plot:
windowed mAP@0.5 over time, one line per run, the severity on a second axis.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..metrics import matched_accuracy, mean_average_precision
from . import ground_truth
from .rosbag_io import (
    FLIGHT_CUSTOM_DATA_KEY,
    REPLAY_CUSTOM_DATA_KEY,
    jazzy_typestore,
    read_custom_data,
    register_connection_types,
    stamp_to_ns,
)

Key = tuple[str, int]  # (frame_id, stamp in ns)

DETECTIONS_JSON_SCHEMA = "ttt_perception/Detection2DArray"
UNCERTAINTY_SCHEMA = "ttt_perception/uncertainty"
SENT_SCHEMA = "ttt_perception/ReplaySent"


@dataclass
class Answer:
    boxes: np.ndarray  # (k, 4) xyxy image pixels
    scores: np.ndarray
    class_ids: tuple[str, ...]
    log_ns: int


@dataclass
class Run:
    label: str
    path: Path
    detections: dict[Key, Answer] = field(default_factory=dict)
    uncertainty: dict[Key, dict] = field(default_factory=dict)
    sent: dict[Key, int] = field(default_factory=dict)  # key -> wall ns it was published
    node_counters: dict[str, dict] = field(default_factory=dict)  # camera status name -> last values
    input_bag: str | None = None
    input_flight: dict | None = None  # what ``bag make`` stored of the flight replayed (None: unknown)
    duplicates: int = 0

    @property
    def mode(self) -> str | None:
        modes = Counter(str(u.get("mode")) for u in self.uncertainty.values() if u.get("mode") is not None)
        return modes.most_common(1)[0][0] if modes else None


# ---- reading ------------------------------------------------------------------------------------


def read_ground_truth(bag) -> list[ground_truth.GroundTruthFrame]:
    """Every ground-truth document of a flight bag, in time order."""
    from rosbags.rosbag2 import Reader

    typestore = jazzy_typestore()
    frames = []
    with Reader(Path(bag)) as reader:
        strings = [c for c in reader.connections if c.msgtype == "std_msgs/msg/String"]
        for _, _, raw in reader.messages(strings):
            text = typestore.deserialize_cdr(raw, "std_msgs/msg/String").data
            if ground_truth.is_ground_truth(text):
                frames.append(ground_truth.decode(text))
    if not frames:
        raise ValueError(f"{bag} holds no ground truth ({ground_truth.SCHEMA} on std_msgs/String)")
    frames.sort(key=lambda f: (f.stamp_ns, f.frame_id))
    return frames


def read_run(bag, label: str | None = None) -> Run:
    """The node outputs recorded in ``bag``: detections, uncertainty, node counters, the sent log."""
    from rosbags.rosbag2 import Reader

    run = Run(label or "", Path(bag))
    replay_info = read_custom_data(bag, REPLAY_CUSTOM_DATA_KEY)
    if replay_info:
        replay = json.loads(replay_info)
        run.input_bag, run.input_flight = replay.get("input_bag"), replay.get("input_flight")
    typestore = jazzy_typestore()
    with Reader(Path(bag)) as reader:
        register_connection_types(typestore, reader.connections)
        for connection, log_ns, raw in reader.messages():
            msgtype = connection.msgtype
            if msgtype not in typestore.fielddefs:
                continue
            msg = typestore.deserialize_cdr(raw, msgtype)
            if msgtype == "std_msgs/msg/String":
                _read_string(run, msg.data, log_ns)
            elif msgtype.endswith("/Detection2DArray"):
                _store(run, run.detections, _key(msg.header), _vision_answer(msg, log_ns))
            elif msgtype == "diagnostic_msgs/msg/DiagnosticArray":
                _read_diagnostics(run, msg)
    if not run.label:
        run.label = run.mode or run.path.name
    return run


def _key(header) -> Key:
    return (str(header.frame_id), stamp_to_ns(header.stamp.sec, header.stamp.nanosec))


def _store(run: Run, table: dict, key: Key, value) -> None:
    if key in table:  # a looped replay answers a stamp more than once: the first answer counts
        run.duplicates += 1
        return
    table[key] = value


def _read_string(run: Run, text: str, log_ns: int) -> None:
    head = text[:80]
    if SENT_SCHEMA in head:
        document = json.loads(text)
        if "stamp" in document:
            key = (document["frame_id"], stamp_to_ns(document["stamp"]["sec"], document["stamp"]["nanosec"]))
            run.sent.setdefault(key, int(document["sent_wall_ns"]))
    elif DETECTIONS_JSON_SCHEMA in head:
        document = json.loads(text)
        stamp = document["header"]["stamp"]
        key = (document["header"]["frame_id"], stamp_to_ns(stamp["sec"], stamp["nanosec"]))
        rows = [(d["bbox"]["center"]["x"], d["bbox"]["center"]["y"], d["bbox"]["size_x"], d["bbox"]["size_y"],
                 str(d["results"][0]["class_id"]) if d["results"] else "", float(d["results"][0]["score"])
                 if d["results"] else 0.0) for d in document["detections"]]
        _store(run, run.detections, key, _answer(rows, log_ns))
    elif UNCERTAINTY_SCHEMA in head:  # a JSON form of the uncertainty report
        document = json.loads(text)
        stamp = document["header"]["stamp"]
        key = (document["header"]["frame_id"], stamp_to_ns(stamp["sec"], stamp["nanosec"]))
        _store(run, run.uncertainty, key, dict(document.get("values", document)))


def _answer(rows, log_ns: int) -> Answer:
    boxes = np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2] for cx, cy, w, h, _, _ in rows],
                     np.float32).reshape(-1, 4)
    return Answer(boxes, np.array([r[5] for r in rows], np.float32), tuple(r[4] for r in rows), log_ns)


def _vision_answer(msg, log_ns: int) -> Answer:
    rows = []
    for detection in msg.detections:
        center = detection.bbox.center
        point = getattr(center, "position", center)
        result = detection.results[0] if len(detection.results) else None
        hypothesis = getattr(result, "hypothesis", result)
        class_id = str(getattr(hypothesis, "class_id", getattr(hypothesis, "id", ""))) if result is not None else ""
        score = float(getattr(hypothesis, "score", 0.0)) if result is not None else 0.0
        rows.append((point.x, point.y, detection.bbox.size_x, detection.bbox.size_y, class_id, score))
    return _answer(rows, log_ns)


def _typed(text: str):
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_diagnostics(run: Run, msg) -> None:
    for status in msg.status:
        values = {kv.key: _typed(kv.value) for kv in status.values}
        if values.get("schema") == UNCERTAINTY_SCHEMA:  # an uncertainty report stamped with the image
            _store(run, run.uncertainty, _key(msg.header), values)
            return
        if ": camera" in status.name:
            run.node_counters[status.name] = values


# ---- scoring ------------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(values, q)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(values)) if values else None


def _quality(frames: Sequence[ground_truth.GroundTruthFrame], answers: Sequence[Answer | None],
             vocabulary: dict[str, int]) -> float:
    """mAP@0.5 of frames and their answers (None: no detections)."""
    pred_boxes, pred_scores, pred_labels, true_boxes, true_labels = [], [], [], [], []
    for frame, answer in zip(frames, answers):
        true_boxes.append(frame.boxes)
        true_labels.append(ground_truth.labels_as_indices(frame.class_ids, vocabulary))
        if answer is None:
            pred_boxes.append(np.zeros((0, 4), np.float32))
            pred_scores.append(np.zeros(0, np.float32))
            pred_labels.append(np.zeros(0, np.int64))
        else:
            pred_boxes.append(answer.boxes)
            pred_scores.append(answer.scores)
            pred_labels.append(ground_truth.labels_as_indices(answer.class_ids, vocabulary))
    return mean_average_precision(pred_boxes, pred_scores, pred_labels, true_boxes, true_labels,
                                  num_classes=len(vocabulary))


def group_metrics(frames: Sequence[ground_truth.GroundTruthFrame], run: Run, vocabulary: dict[str, int]) -> dict:
    answers = [run.detections.get(f.key) for f in frames]
    answered = [(f, a) for f, a in zip(frames, answers) if a is not None]
    correct = matched = 0
    for frame, answer in answered:
        c, m = matched_accuracy(answer.boxes, ground_truth.labels_as_indices(answer.class_ids, vocabulary),
                                frame.boxes, ground_truth.labels_as_indices(frame.class_ids, vocabulary))
        correct, matched = correct + c, matched + m
    reports = [run.uncertainty[f.key] for f in frames if f.key in run.uncertainty]
    node_ms = [float(r["total_ms"]) for r in reports if isinstance(r.get("total_ms"), (int, float))]
    e2e = [(a.log_ns - run.sent[f.key]) / 1e6 for f, a in answered if f.key in run.sent]
    deadline = [bool(r["deadline_met"]) for r in reports if "deadline_met" in r]
    steps = [float(r["steps_taken"]) for r in reports if isinstance(r.get("steps_taken"), (int, float))]
    return {
        "frames": len(frames), "answered": len(answered), "dropped": len(frames) - len(answered),
        "map50": _quality([f for f, _ in answered], [a for _, a in answered], vocabulary) if answered else None,
        "map50_stream": _quality(frames, answers, vocabulary) if frames else None,
        "accuracy": correct / matched if matched else None, "matched_boxes": matched,
        "deadline_met": float(np.mean(deadline)) if deadline else None,
        "deadline_met_frames": sum(deadline), "deadline_reports": len(deadline),
        "mean_steps": _mean(steps),
        "latency_ms": {"mean": _mean(node_ms), "p95": _percentile(node_ms, 95)},
        "e2e_ms": {"mean": _mean(e2e), "p95": _percentile(e2e, 95)},
        "reports": len(reports),
    }


def _node_totals(run: Run) -> dict:
    totals: dict[str, float] = {}
    for values in run.node_counters.values():
        for name in ("received", "published", "dropped", "rejected", "failed", "auto_resets"):
            if isinstance(values.get(name), (int, float)):
                totals[name] = totals.get(name, 0) + values[name]
    return totals


def segment_label(frame: ground_truth.GroundTruthFrame) -> str:
    return f"{frame.segment_index}: {frame.segment}"


def score_runs(truth: Sequence[ground_truth.GroundTruthFrame], runs: Sequence[Run],
               window_frames: int | None = None) -> dict:
    """The whole report as a JSON-able dict (see the module docstring)."""
    vocabulary: dict[str, int] = {}
    segments: dict[str, dict] = {}
    for frame in truth:
        entry = segments.setdefault(segment_label(frame), {"condition": frame.condition, "start_s": frame.time_s,
                                                           "end_s": frame.time_s, "severities": set()})
        entry["end_s"] = max(entry["end_s"], frame.time_s)
        entry["severities"].add(frame.severity)
    report = {"segments": {name: {**s, "severities": sorted(s["severities"])} for name, s in segments.items()},
              "runs": {}}
    for run in runs:
        offered = [f for f in truth if f.key in run.sent] if run.sent else list(truth)
        groups = {"all": offered, "clear": [f for f in offered if f.severity == 0],
                  "shifted": [f for f in offered if f.severity > 0]}
        per_segment = {}
        for name in segments:
            chosen = [f for f in offered if segment_label(f) == name]
            if chosen:
                per_segment[name] = group_metrics(chosen, run, vocabulary)
        unmatched = len(set(run.detections) - {f.key for f in truth})
        report["runs"][run.label] = {
            "path": str(run.path), "mode": run.mode, "offered": len(offered),
            "groups": {name: group_metrics(frames, run, vocabulary) for name, frames in groups.items()},
            "segments": per_segment, "node": _node_totals(run),
            "answers_without_ground_truth": unmatched, "duplicate_answers": run.duplicates,
        }
    report["series"] = quality_series(truth, runs, vocabulary, window_frames)
    return report


def quality_series(truth, runs, vocabulary, window_frames: int | None = None) -> dict:
    """Windowed mAP@0.5 per run over the flight time (frames of all cameras at one time step together)."""
    by_index: dict[int, list[ground_truth.GroundTruthFrame]] = {}
    for frame in truth:
        by_index.setdefault(frame.frame_index, []).append(frame)
    indices = sorted(by_index)
    window = window_frames or max(5, len(indices) // 25)
    half = window // 2
    series = {"time_s": [by_index[i][0].time_s for i in indices],
              "severity": [max(f.severity for f in by_index[i]) for i in indices],
              "window_frames": window, "map50": {}}
    for run in runs:
        values = []
        for position in range(len(indices)):
            chosen = [f for i in indices[max(0, position - half):position + half + 1] for f in by_index[i]
                      if f.key in run.detections and (not run.sent or f.key in run.sent)]
            values.append(_quality(chosen, [run.detections[f.key] for f in chosen], vocabulary) if chosen else None)
        series["map50"][run.label] = values
    return series


# ---- presenting ---------------------------------------------------------------------------------


def _cell(value, kind: str = "f") -> str:
    if value is None:
        return "-"
    if kind == "ms":
        return f"{value:.0f}"
    return f"{value:.3f}"


def _deadline_cell(group: dict) -> str:
    """Frames that met their deadline out of those reported, as counts: a percentage rounds 599/600 up to 100%."""
    if not group.get("deadline_reports"):
        return "-"
    return f"{group['deadline_met_frames']}/{group['deadline_reports']}"


def format_tables(report: dict) -> str:
    """A summary table (one row per run) and a per-segment mAP table, as text."""
    header = ["run", "mode", "mAP clear", "mAP shifted", "acc shifted", "answered", "deadline met",
              "steps", "latency ms mean/p95", "e2e ms mean/p95"]
    rows = []
    for label, run in report["runs"].items():
        g = run["groups"]
        latency = g["all"]["latency_ms"]
        e2e = g["all"]["e2e_ms"]
        rows.append([label, run["mode"] or "-", _cell(g["clear"]["map50"]), _cell(g["shifted"]["map50"]),
                     _cell(g["shifted"]["accuracy"]), f"{g['all']['answered']}/{g['all']['frames']}",
                     _deadline_cell(g["all"]), _cell(g["all"]["mean_steps"]),
                     f"{_cell(latency['mean'], 'ms')}/{_cell(latency['p95'], 'ms')}",
                     f"{_cell(e2e['mean'], 'ms')}/{_cell(e2e['p95'], 'ms')}"])
    text = [_table(header, rows), "", "mAP@0.5 per segment (answered frames)"]
    labels = list(report["runs"])
    seg_rows = []
    for name in report["segments"]:
        seg_rows.append([name] + [_cell(report["runs"][label]["segments"].get(name, {}).get("map50"))
                                  for label in labels])
    text.append(_table(["segment"] + labels, seg_rows))
    return "\n".join(text)


def _table(header, rows) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def plot(report: dict, path, title: str = "") -> Path:
    """Quality over time, one line per run, severity on the right axis (TTT's gradually-shifting plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = report["series"]
    times = np.asarray(series["time_s"], float)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    severity_ax = ax.twinx()
    severity_ax.fill_between(times, series["severity"], step="mid", color="0.85", zorder=0, label="severity")
    severity_ax.set_ylim(0, 5.5)
    severity_ax.set_ylabel("corruption severity")
    ax.set_zorder(severity_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    for label, values in series["map50"].items():
        ys = np.array([np.nan if v is None else v for v in values], float)
        ax.plot(times, ys, label=label, linewidth=1.8)
    for name, segment in report["segments"].items():
        ax.axvline(segment["start_s"], color="0.6", linestyle=":", linewidth=0.8)
        ax.text(segment["start_s"], 1.02, name.split(": ", 1)[-1], fontsize=8, transform=ax.get_xaxis_transform())
    ax.set_xlabel("flight time (s)")
    ax.set_ylabel(f"mAP@0.5 (window of {series['window_frames']} frames)")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _check_same_flight(runs: Sequence[Run], flight_bag) -> None:
    """Frames are matched by (frame_id, stamp), and ``bag make``'s flights share both (fixed start time
    and frame id): a run replayed from another flight would be scored against the wrong truth without
    a word. Refuse runs whose replay record names a flight other than ``flight_bag``."""
    text = read_custom_data(flight_bag, FLIGHT_CUSTOM_DATA_KEY)
    truth = json.loads(text) if text else None
    others = [r.label for r in runs if truth is not None and r.input_flight is not None and r.input_flight != truth]
    if others:
        raise ValueError(f"{', '.join(others)}: replayed from another flight than {flight_bag} (its schedule, seed, "
                         f"rate or cameras differ); score each run against the flight bag it replayed")


def score_bags(run_bags: Sequence[tuple[str | None, str]], ground_truth_bag: str | None = None,
               json_path=None, png_path=None, window_frames: int | None = None, title: str = "",
               context: dict | None = None) -> dict:
    """Read, score, write JSON and PNG; ``run_bags`` is a list of (label or None, output bag);
    ``context``: what the JSON should say about how the runs were made (the demo: machine, budget)."""
    runs = [read_run(path, label) for label, path in run_bags]
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"runs need distinct labels, got {labels}; name them LABEL=BAG")
    source = ground_truth_bag or next((r.input_bag for r in runs if r.input_bag), None)
    if source is None:
        raise ValueError("no ground truth: pass --ground-truth (the flight bag)")
    _check_same_flight(runs, source)
    report = score_runs(read_ground_truth(source), runs, window_frames)
    report["ground_truth"] = str(source)
    report.update(context or {})
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=1))
        report["json"] = str(json_path)
    if png_path:
        report["png"] = str(plot(report, png_path, title))
    return report
