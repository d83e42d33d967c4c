"""``bench accuracy``: error under the 15 corruptions for each adaptation method, side by side.

The protocol of Sun et al. (2020), on our classification frames: each corruption at severity 5 is its
own test stream; every method sees the same frames in the same order and starts from the same
jointly trained weights (online state does not carry over between corruptions).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..adapter import PAPER_ONLINE, PAPER_RESET, AdaptationConfig, TestTimeAdapter
from ..corruptions import CORRUPTIONS, corrupt_batch
from ..data import make_classification_frames
from ..default_models import load_default_model
from ..devices import resolve_device
from .common import format_table, machine_description, results_dir, write_json


@dataclass(frozen=True)
class Method:
    name: str
    config: AdaptationConfig


def methods() -> list[Method]:
    return [
        Method("off (joint training)", AdaptationConfig(mode="off")),
        Method("TTT reset (paper: 10 steps, 32 copies)", PAPER_RESET),
        Method("TTT online (paper: 1 step, 32 copies)", PAPER_ONLINE),
        Method("TTT online (real-time defaults)", AdaptationConfig(mode="online")),
    ]


def stream_error(adapter: TestTimeAdapter, images: np.ndarray, labels: np.ndarray, stream: str) -> dict:
    """Error (%) of one stream, and where the time went."""
    wrong, overhead, wall = 0, 0.0, 0.0
    for image, label in zip(images, labels):
        began = time.perf_counter()
        result = adapter.process(image, stream=stream)
        elapsed = (time.perf_counter() - began) * 1e3
        report = result.report
        wall += elapsed
        overhead += elapsed - report.adapt_ms - report.predict_ms - report.preprocess_ms
        wrong += int(np.argmax(result.class_probs) != label)
    return {"error": 100.0 * wrong / len(labels), "ms_per_frame": wall / len(labels), "overhead_ms": overhead,
            "wall_ms": wall}


def run(frames: int, severity: int, split: str, device: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    dev = resolve_device(device)
    model = load_default_model("classifier", dev)
    data = make_classification_frames(split, frames, size=model.config.input_size, seed=seed + 1)
    sets = {"clean": data.images}
    for name in tqdm(CORRUPTIONS, desc="corrupting", unit="corruption"):
        sets[name] = corrupt_batch(data.images, name, severity, seed=seed)
    results: dict[str, dict] = {}
    for method in methods():
        adapter = TestTimeAdapter(model, dataclasses.replace(method.config, seed=seed), device=dev)
        per_set = {}
        for set_name, images in tqdm(sets.items(), desc=method.name, unit="set"):
            adapter.reset()
            per_set[set_name] = stream_error(adapter, images, data.labels, stream=set_name)
        results[method.name] = per_set
    return {"results": results, "frames_per_set": frames, "severity": severity, "split": split,
            "machine": machine_description(dev), "methods": {m.name: dataclasses.asdict(m.config) for m in methods()}}


def summarise(payload: dict) -> dict:
    summary = {}
    for name, per_set in payload["results"].items():
        errors = [per_set[c]["error"] for c in CORRUPTIONS]
        overhead = sum(s["overhead_ms"] for s in per_set.values()) / sum(s["wall_ms"] for s in per_set.values())
        summary[name] = {"mean_corrupted_error": float(np.mean(errors)), "clean_error": per_set["clean"]["error"],
                         "ms_per_frame": float(np.mean([s["ms_per_frame"] for s in per_set.values()])),
                         "adapter_overhead_percent": 100.0 * overhead}
    return summary


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(payload["results"])
    x = np.arange(len(CORRUPTIONS))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(13, 4.5))
    for i, name in enumerate(names):
        errors = [payload["results"][name][c]["error"] for c in CORRUPTIONS]
        ax.bar(x + i * width, errors, width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, CORRUPTIONS, rotation=40, ha="right")
    ax.set_ylabel("error (%)")
    ax.set_title(f"Classification error, severity {payload['severity']}, {payload['frames_per_set']} frames per "
                 f"corruption ({payload['machine']})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parser(kinds) -> None:
    parser = kinds.add_parser("accuracy", help="error under the 15 corruptions per adaptation method",
                              description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the 10-minute CPU profile (fewer frames)")
    parser.add_argument("--frames", type=int, help="frames per corruption (default: 100 quick, 500 full)")
    parser.add_argument("--severity", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--split", default="test", choices=("val", "test"),
                        help="val for choosing hyper-parameters, test for reporting")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=main)


def main(args) -> int:
    frames = args.frames or (100 if args.quick else 500)
    payload = run(frames, args.severity, args.split, args.device, args.seed)
    payload["summary"] = summarise(payload)
    name = f"accuracy_{'quick' if args.quick else 'full'}_{args.split}"
    json_path = write_json(name, payload)
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)
    rows = [[n, s["clean_error"], s["mean_corrupted_error"], s["ms_per_frame"], s["adapter_overhead_percent"]]
            for n, s in payload["summary"].items()]
    print(format_table(["method", "clean err %", f"mean err % (sev {args.severity})", "ms/frame", "overhead %"],
                       rows))
    base = payload["summary"]["off (joint training)"]["mean_corrupted_error"]
    for n, s in payload["summary"].items():
        print(f"{n}: {100 * (1 - s['mean_corrupted_error'] / max(base, 1e-9)):+.1f}% lower error than off")
    print(f"wrote {json_path} and {png_path}")
    return 0
