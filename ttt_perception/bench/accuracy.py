"""``bench accuracy``: quality under the 15 corruptions for each adaptation method, side by side.

The protocol of Sun et al. (2020) on our frames: classification (error %) and detection (mAP@0.5 %);
the clean frames and each corruption at each chosen severity are one test stream each; every method
sees the same frames in the same order and starts every stream from its source weights (online state
does not carry over between streams). Methods: source-only (trained without the rotation loss),
joint training (mode off), Tent-style entropy (lr chosen on the val split), TTT reset and TTT online
with the paper's settings, TTT online with the adapter's real-time defaults.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from ..corruptions import CORRUPTIONS
from .common import (add_common_arguments, format_table, load_model, print_targets, results_dir, run_record, set_up,
                     source_only_model, target, write_json)
from .evaluation import (JOINT, TASKS, TTT_DEFAULTS, TTT_ONLINE, TTT_RESET, corrupted_sets,
                         evaluate, make_frames, mean_quality, quality_name, set_key, standard_methods, tent_lr_for,
                         truth_of)

_LOG = logging.getLogger(__name__)
PROFILES = {
    # frames per set for (classifier, detector); severities
    "quick": {"frames": {"classifier": 32, "detector": 8}, "severities": (5,)},
    "full": {"frames": {"classifier": 500, "detector": 100}, "severities": (1, 2, 3, 4, 5)},
}


def parse_severities(text: str | None, default) -> tuple[int, ...]:
    """'5', '1-5' or '1,3,5' -> sorted unique severities in 1..5."""
    if not text:
        return tuple(default)
    chosen = set()
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = (int(v) for v in part.split("-", 1))
            chosen.update(range(low, high + 1))
        elif part:
            chosen.add(int(part))
    if not chosen or not all(1 <= s <= 5 for s in chosen):
        raise ValueError(f"severities must be in 1..5, got {text!r}")
    return tuple(sorted(chosen))


def run_task(task: str, args, device, frames: int, severities, model_path: str | None) -> dict:
    model, description = load_model(task, model_path, device)
    size = model.config.input_size
    if args.tent_lr:
        tent = {"chosen_lr": args.tent_lr, "criterion": "given on the command line (--tent-lr)", "val": {}}
    else:
        tent = tent_lr_for(task, model, args.seed, device, user_model=model_path is not None)
    print(f"{task}: Tent learning rate {tent['chosen_lr']:g} ({tent['criterion']}): {tent['val']}")
    methods = standard_methods(tent["chosen_lr"], with_source_only=model_path is None)
    source = source_only_model(task, device) if model_path is None else None
    data = make_frames(task, args.split, frames, size, args.seed + 1)
    sets = corrupted_sets(data.images, severities, args.seed)
    truth = truth_of(data, task)
    results = {}
    for method in methods:
        per_set = evaluate(source if method.model == "source" else model, method, task, sets, truth, device,
                           args.seed)
        for record in per_set.values():
            record.pop("wrong", None)
        results[method.name] = per_set
    return {"model": description, "frames_per_set": frames, "input_size": size, "tent_lr": tent,
            "methods": {m.name: {"config": dataclasses.asdict(m.config), "model": m.model, "note": m.note}
                        for m in methods},
            "results": results}


def summarise(task_payload: dict, task: str, severities) -> dict:
    key = quality_name(task)
    summary = {}
    for name, per_set in task_payload["results"].items():
        summary[name] = {
            "clean": per_set["clean"][key],
            "mean_by_severity": {str(s): mean_quality(per_set, task, s) for s in severities},
            "ms_per_frame": float(np.mean([r["ms_per_frame"] for r in per_set.values()])),
            "mean_steps": float(np.mean([r["mean_steps"] for r in per_set.values()])),
        }
    return summary


def targets_for(summary: dict, severity: int) -> list[dict]:
    """The issue's targets on classification error at ``severity``."""
    s = str(severity)
    joint = summary[JOINT]["mean_by_severity"][s]
    out = []
    for name in (TTT_ONLINE, TTT_DEFAULTS):
        if name in summary:
            mean = summary[name]["mean_by_severity"][s]
            drop = 100.0 * (1 - mean / joint) if joint > 0 else 0.0
            out.append(target(f"{name}: mean error >= 35% lower than joint training (severity {s})", drop >= 35.0,
                              f"{mean:.1f}% vs {joint:.1f}% = {drop:.1f}% lower"))
    if TTT_RESET in summary:
        mean = summary[TTT_RESET]["mean_by_severity"][s]
        out.append(target(f"{TTT_RESET}: mean error lower than joint training (severity {s})", mean < joint,
                          f"{mean:.1f}% vs {joint:.1f}%"))
    clean_joint = summary[JOINT]["clean"]
    for name in (TTT_RESET, TTT_ONLINE, TTT_DEFAULTS):
        if name in summary:
            clean = summary[name]["clean"]
            out.append(target(f"{name}: clean error at most 0.5 points above joint training", clean <= clean_joint + 0.5,
                              f"{clean:.1f}% vs {clean_joint:.1f}%"))
    return out


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(payload["tasks"])
    severity = max(payload["severities"])
    fig, axes = plt.subplots(len(tasks), 1, figsize=(14, 4.6 * len(tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        block = payload["tasks"][task]
        key = quality_name(task)
        names = list(block["results"])
        labels = ["clean"] + list(CORRUPTIONS) + ["mean (corrupted)"]
        x = np.arange(len(labels))
        width = 0.85 / len(names)
        for i, name in enumerate(names):
            per_set = block["results"][name]
            values = [per_set["clean"][key]] + [per_set[set_key(c, severity)][key] for c in CORRUPTIONS]
            values.append(float(np.mean(values[1:])))
            ax.bar(x + i * width, values, width, label=name)
        ax.set_xticks(x + 0.425 - width / 2, labels, rotation=40, ha="right")
        ax.set_ylabel(f"{'error' if key == 'error' else 'mAP@0.5'} (%)")
        ax.set_title(f"{task}: {key} per corruption at severity {severity}, {block['frames_per_set']} "
                     f"{payload['split']} frames per set ({payload['machine']})", fontsize=9)
        ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def add_parser(kinds) -> None:
    parser = kinds.add_parser("accuracy", help="error / mAP under the 15 corruptions per adaptation method",
                              description=__doc__)
    add_common_arguments(parser, "the CPU profile: severity 5 only, 32 classification and 8 detection frames "
                                 "per set (full: severities 1-5, 500 and 100)")
    parser.add_argument("--task", default="both", choices=TASKS + ("both",))
    parser.add_argument("--frames", type=int, help="classification frames per set (overrides the profile)")
    parser.add_argument("--det-frames", type=int, help="detection frames per set (overrides the profile)")
    parser.add_argument("--severities", help="e.g. 5, 1-5 or 1,3,5 (default: the profile's)")
    parser.add_argument("--split", default="test", choices=("val", "test"),
                        help="val for choosing hyper-parameters, test for reporting")
    parser.add_argument("--tent-lr", type=float, help="skip Tent's learning-rate search on val and use this one")
    parser.add_argument("--model", help="your own checkpoint instead of the default model (its task is used; "
                                        "no source-only baseline then)")
    parser.add_argument("--name", help="output file stem under results/ (default: accuracy_PROFILE_SPLIT)")
    parser.set_defaults(run=main)


def main(args) -> int:
    device = set_up(args)
    profile = "quick" if args.quick else "full"
    settings = PROFILES[profile]
    severities = parse_severities(args.severities, settings["severities"])
    if args.model:
        from ..checkpoint import load_checkpoint

        tasks = (load_checkpoint(args.model)[0].config.task,)
    else:
        tasks = TASKS if args.task == "both" else (args.task,)
    frames = {"classifier": args.frames or settings["frames"]["classifier"],
              "detector": args.det_frames or settings["frames"]["detector"]}
    payload = {**run_record(args, device, profile), "split": args.split, "severities": list(severities),
               "corruptions": list(CORRUPTIONS), "tasks": {}, "summary": {}, "targets": []}
    for task in tasks:
        block = run_task(task, args, device, frames[task], severities, args.model)
        payload["tasks"][task] = block
        payload["summary"][task] = summarise(block, task, severities)
    name = args.name or f"accuracy_{profile}_{args.split}"
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)

    for task, summary in payload["summary"].items():
        key = quality_name(task)
        header = ["method", f"clean {key} %"] + [f"mean {key} % sev {s}" for s in severities] + ["steps", "ms/frame"]
        rows = [[n, s["clean"], *[s["mean_by_severity"][str(v)] for v in severities], s["mean_steps"], s["ms_per_frame"]]
                for n, s in summary.items()]
        print(f"\n{task} ({payload['tasks'][task]['frames_per_set']} {args.split} frames per set, {payload['machine']})")
        print(format_table(header, rows))
        per_corruption = [[c] + [payload["tasks"][task]["results"][n][set_key(c, max(severities))][key]
                                 for n in summary] for c in CORRUPTIONS]
        print(f"\n{task}: {key} % per corruption at severity {max(severities)}")
        print(format_table(["corruption"] + list(summary), per_corruption))
    if "classifier" in payload["summary"] and JOINT in payload["summary"]["classifier"]:
        payload["targets"] = targets_for(payload["summary"]["classifier"], 5 if 5 in severities else max(severities))
        if args.split != "test":
            for t in payload["targets"]:
                t["detail"] += " (val split: for choosing, not for reporting)"
        print()
        print_targets(payload["targets"])
    json_path = write_json(name, payload)
    print(f"wrote {json_path} and {png_path}")
    return 0
