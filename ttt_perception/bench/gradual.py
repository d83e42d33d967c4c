"""``bench gradual``: a stream whose corruption severity rises 1 -> 5 and falls back to 1.

As in the gradually changing distribution experiment of Sun et al. (2020): one stream per corruption
(each of the 15), severity schedule 1 2 3 4 5 4 3 2 1 with a segment of new frames at each step.
Every method sees the same frames in the same order and starts each stream from its source weights;
online methods carry their weights through the whole stream. Reported: error per segment, averaged
over the corruptions and per corruption, and how fast each method's error grows with severity.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from tqdm import tqdm

from ..corruptions import CORRUPTIONS, corrupt_batch
from .common import (
    add_common_arguments,
    format_table,
    load_model,
    print_targets,
    results_dir,
    run_record,
    set_up,
    target,
    write_json,
)
from .evaluation import (
    JOINT,
    TENT,
    TTT_DEFAULTS,
    TTT_ONLINE,
    TTT_RESET,
    chosen_lr,
    for_task,
    make_frames,
    private_adapter,
    score_stream,
    standard_methods,
)

SCHEDULE = (1, 2, 3, 4, 5, 4, 3, 2, 1)
PROFILES = {
    "quick": {"segment": 20, "methods": (JOINT, TENT, TTT_ONLINE, TTT_DEFAULTS)},
    "full": {"segment": 200, "methods": (JOINT, TENT, TTT_RESET, TTT_ONLINE, TTT_DEFAULTS)},
}


def gradual_stream(images: np.ndarray, corruption: str, schedule, segment: int, seed: int) -> np.ndarray:
    """Frames ``k*segment .. (k+1)*segment-1`` corrupted at ``schedule[k]``."""
    out = np.empty_like(images[:segment * len(schedule)])
    for k, severity in enumerate(schedule):
        part = slice(k * segment, (k + 1) * segment)
        out[part] = corrupt_batch(images[part], corruption, severity, seed=seed + 100 * k)
    return out


def severity_slope(segment_errors, schedule) -> float:
    """Least-squares slope of error against severity over the rising half of the schedule (points/level)."""
    peak = int(np.argmax(schedule))
    x = np.asarray(schedule[:peak + 1], float)
    y = np.asarray(segment_errors[:peak + 1], float)
    return float(np.polyfit(x, y, 1)[0])


def add_parser(kinds) -> None:
    parser = kinds.add_parser("gradual", help="severity rising 1 -> 5 and back, error over time per method",
                              description=__doc__)
    add_common_arguments(parser, f"the CPU profile: {PROFILES['quick']['segment']} frames per segment, no TTT "
                                 f"reset (full: {PROFILES['full']['segment']} frames, all methods)")
    parser.add_argument("--segment", type=int, help="frames per severity segment (overrides the profile)")
    parser.add_argument("--model", help="your own classifier checkpoint instead of the default")
    parser.add_argument("--name", help="output file stem under results/ (default: gradual_PROFILE)")
    parser.set_defaults(run=main)


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule, segment = payload["schedule"], payload["segment"]
    panels = ["mean over corruptions"] + payload["corruptions"]
    cols = 4
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 3.1 * rows), squeeze=False)
    x = np.arange(len(schedule))
    for ax, panel in zip(axes.flat, panels):
        for method, block in payload["results"].items():
            values = block["mean_segments"] if panel == panels[0] else block["segments"][panel]
            ax.plot(x, values, marker=".", label=method, lw=2 if panel == panels[0] else 1)
        ax.set_xticks(x, [str(s) for s in schedule], fontsize=7)
        ax.set_title(panel, fontsize=9)
        ax.set_ylabel("error (%)", fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"Gradually changing severity (x: severity of each {segment}-frame segment), "
                 f"{payload['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(args) -> int:
    device = set_up(args)
    profile = "quick" if args.quick else "full"
    settings = PROFILES[profile]
    segment = args.segment or settings["segment"]
    task = "classifier"
    model, description = load_model(task, args.model, device)
    size = model.config.input_size
    tent = chosen_lr("tent", task, model, args.seed, device, user_model=args.model is not None)
    methods = [m for m in standard_methods(tent["chosen_lr"]) if m.name in settings["methods"]]
    data = make_frames(task, "test", segment * len(SCHEDULE), size, args.seed + 1)
    streams = {c: gradual_stream(data.images, c, SCHEDULE, segment, args.seed)
               for c in tqdm(CORRUPTIONS, desc="corrupting", unit="stream")}
    results = {}
    for method in methods:
        adapter = private_adapter(model, for_task(method.config, task, args.seed), device)
        segments = {}
        for corruption, images in tqdm(streams.items(), desc=method.name, unit="stream"):
            adapter.reset()
            wrong = score_stream(adapter, images, data.labels, task, corruption)["wrong"]
            segments[corruption] = [100.0 * float(np.mean(wrong[k * segment:(k + 1) * segment]))
                                    for k in range(len(SCHEDULE))]
        mean_segments = [float(np.mean([segments[c][k] for c in CORRUPTIONS])) for k in range(len(SCHEDULE))]
        half = len(SCHEDULE) // 2
        results[method.name] = {
            "segments": segments, "mean_segments": mean_segments,
            "mean_error": float(np.mean(mean_segments)),
            "rising_mean": float(np.mean(mean_segments[:half + 1])),
            "falling_mean": float(np.mean(mean_segments[half:])),
            "slope_per_severity": severity_slope(mean_segments, SCHEDULE),
            "increase_1_to_5": mean_segments[half] - mean_segments[0],
        }
    payload = {**run_record(args, device, profile), "task": task, "model": description, "schedule": list(SCHEDULE),
               "segment": segment, "corruptions": list(CORRUPTIONS), "tent_lr": tent,
               "methods": {m.name: {"config": dataclasses.asdict(m.config.resolved_for(task)), "model": m.model,
                                    "note": m.note}
                           for m in methods},
               "results": results}
    targets = []
    off = results.get(JOINT)
    for name in (TTT_ONLINE, TTT_DEFAULTS):
        if off and name in results:
            mine = results[name]
            targets.append(target(f"{name} degrades more slowly than off (error slope over severity 1 -> 5)",
                                  mine["slope_per_severity"] < off["slope_per_severity"],
                                  f"{mine['slope_per_severity']:.2f} vs {off['slope_per_severity']:.2f} points per "
                                  f"severity level; mean error {mine['mean_error']:.1f}% vs {off['mean_error']:.1f}%"))
    payload["targets"] = targets
    name = args.name or f"gradual_{profile}"
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)
    header = ["method"] + [f"sev{s}" for s in SCHEDULE] + ["mean", "slope/level", "1->5 rise"]
    rows = [[n, *r["mean_segments"], r["mean_error"], r["slope_per_severity"], r["increase_1_to_5"]]
            for n, r in results.items()]
    print(f"\nerror % per segment ({segment} frames each), mean over the 15 corruptions ({payload['machine']})")
    print(format_table(header, rows))
    print()
    print_targets(targets)
    json_path = write_json(name, payload)
    print(f"wrote {json_path} and {png_path}")
    return 0
