"""``bench accuracy``: quality under the 15 corruptions for each adaptation method, side by side.

The protocol of Sun et al. (2020) on our frames: classification (error %) and detection (mAP@0.5 %);
the clean frames and each corruption at each chosen severity are one test stream each; every method
sees the same frames in the same order and starts every stream from its source weights (online state
does not carry over between streams). Each seed draws other frames and other corruption noise; the
tables give the mean over seeds and, in the JSON, the spread. Methods: joint training (mode off),
Tent (entropy) and feature alignment with learning rates chosen on the val split, TTT reset and TTT
online with the paper's settings, and the node's adaptation defaults. Also measured: how well the
rotation head solves its task on the clean frames (all four quarter turns).
"""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from ..corruptions import CORRUPTIONS
from ..training import source_statistics
from .common import (
    add_common_arguments,
    format_table,
    load_model,
    parse_severities,
    print_targets,
    results_dir,
    run_record,
    set_up,
    source_only_model,
    target,
    write_json,
)
from .evaluation import (
    FEATURES,
    JOINT,
    SOURCE_ONLY,
    TASKS,
    TENT,
    TTT_DEFAULTS,
    TTT_ONLINE,
    TTT_RESET,
    chosen_lr,
    corrupted_sets,
    evaluate_methods,
    make_frames,
    mean_quality,
    quality_name,
    set_key,
    standard_methods,
    truth_of,
)
from .report import STREAM_PART_HEADER, STREAM_PARTS, stream_part_rows

_LOG = logging.getLogger(__name__)
PROFILES = {
    # frames per set for (classifier, detector); severities; seeds; frames per set TTT reset is scored on
    "quick": {"frames": {"classifier": 32, "detector": 8}, "severities": (5,), "seeds": (0,),
              "reset_frames": None},
    "full": {"frames": {"classifier": 1000, "detector": 300}, "severities": (5,), "seeds": (0, 1, 2),
             "reset_frames": {"classifier": 100, "detector": 50}},
}
ROTATION_ACCURACY_TARGET = 0.85
# ``--methods``: short names of the methods a run may be limited to (mode off includes its reset frames)
METHOD_KEYS = {"off": JOINT, "tent": TENT, "features": FEATURES, "reset": TTT_RESET, "online": TTT_ONLINE,
               "defaults": TTT_DEFAULTS, "source-only": SOURCE_ONLY}
# what must match for ``--update`` to put new methods' numbers beside a file's others
PROTOCOL_KEYS = ("frames_per_set", "seeds", "reset_frames")
# what ``--update`` requires of a task block to put a rerun beside it: the same frames and the same model
SAME_FRAMES_KEYS = (*PROTOCOL_KEYS, "model", "input_size")


def parse_methods(text: str | None) -> set[str] | None:
    """``--methods off,defaults`` as the methods' full names; None: all of them."""
    if not text:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in METHOD_KEYS]
    if unknown or not keys:
        raise SystemExit(f"--methods: unknown {unknown or text!r}; choose from {', '.join(METHOD_KEYS)}")
    return {METHOD_KEYS[k] for k in keys}


def parse_corruptions(text: str | None) -> tuple[str, ...]:
    """``--corruptions fog,contrast`` in the benchmark's order; None: all 15."""
    if not text:
        return CORRUPTIONS
    names = {k.strip() for k in text.split(",") if k.strip()}
    unknown = sorted(names - set(CORRUPTIONS))
    if unknown or not names:
        raise SystemExit(f"--corruptions: unknown {unknown or text!r}; choose from {', '.join(CORRUPTIONS)}")
    return tuple(c for c in CORRUPTIONS if c in names)


def corruptions_of(payload: dict) -> tuple[str, ...]:
    """The corruptions a result file measured (files from before ``--corruptions``: all 15)."""
    return tuple(payload.get("corruptions") or CORRUPTIONS)


def _selected(name: str, chosen: set[str] | None) -> bool:
    return chosen is None or name in chosen or (JOINT in chosen and name.startswith(f"{JOINT}, first"))


def merge_into(old: dict, new: dict) -> dict:
    """``old`` with ``new``'s methods replacing or joining its own, task by task; refuses (SystemExit) when
    the two were not run on the same frames (split, severities, corruptions, frames per set, seeds, reset
    frames)."""
    for key in ("split", "severities", "corruptions"):
        if old.get(key) != new.get(key):
            raise SystemExit(f"--update: {key} differs ({old.get(key)} in the file, {new.get(key)} now)")
    merged = {**old, "tasks": dict(old["tasks"])}
    for task, block in new["tasks"].items():
        before = old["tasks"].get(task)
        if before is None:
            raise SystemExit(f"--update: the file has no {task} results")
        for key in SAME_FRAMES_KEYS:
            if before.get(key) != block.get(key):
                raise SystemExit(f"--update: {task} {key} differs ({before.get(key)} in the file, "
                                 f"{block.get(key)} now)")
        per_method = ("methods", "results", "spread", "by_seed")
        # a baseline's val learning rate is None when this run did not measure the baseline: keep the file's
        kept = {k for k in ("tent_lr", "features_lr") if block.get(k) is None}
        merged["tasks"][task] = {**before, **{k: v for k, v in block.items() if k not in per_method and k not in kept},
                                 **{k: {**before.get(k, {}), **block.get(k, {})} for k in per_method}}
    rerun = sorted({m for b in new["tasks"].values() for m in b["results"]})
    earlier = [{**u, "methods": [m for m in u["methods"] if m not in rerun]} for u in old.get("updates", [])]
    merged["updates"] = [*(u for u in earlier if u["methods"]),  # what this run replaces is no longer theirs
                         {k: new[k] for k in ("command", "machine", "created")} | {"methods": rerun}]
    return merged


def average_over_seeds(by_seed: dict[int, dict]) -> tuple[dict, dict]:
    """Per set, each number's mean over the seeds, and the spread (standard deviation) of each."""
    seeds = list(by_seed)
    mean, spread = {}, {}
    for name in by_seed[seeds[0]]:
        records = [by_seed[s][name] for s in seeds]
        keys = [k for k, v in records[0].items() if isinstance(v, (int, float))]
        mean[name] = {k: float(np.mean([r[k] for r in records])) for k in keys}
        spread[name] = {k: float(np.std([r[k] for r in records])) for k in keys}
    return mean, spread


def run_task(task: str, args, device, frames: int, severities, model_path: str | None, seeds, reset_frames,
             jobs: int, chosen: set[str] | None = None, corruptions=CORRUPTIONS) -> dict:
    model, description = load_model(task, model_path, device)
    size = model.config.input_size
    user = model_path is not None
    tent = features = None  # learning rates chosen on val only for the baselines this run measures
    if _selected(TENT, chosen):
        if args.tent_lr:
            tent = {"chosen_lr": args.tent_lr, "criterion": "given on the command line (--tent-lr)", "val": {}}
        else:
            tent = chosen_lr("tent", task, model, args.seed, device, user_model=user)
        print(f"{task}: Tent learning rate {tent['chosen_lr']:g} ({tent['criterion']}): {tent['val']}")
    if _selected(FEATURES, chosen) and (getattr(model, "reference_stats", None) or {}).get("feature_mean") is not None:
        features = chosen_lr("features", task, model, args.seed, device, user_model=user)
        print(f"{task}: feature alignment learning rate {features['chosen_lr']:g}: {features['val']}")
    methods = standard_methods(tent["chosen_lr"] if tent else None, features["chosen_lr"] if features else None,
                               with_source_only=args.source_only and not user,
                               # TTT reset on every frame: mode off's row is its own comparison, not a second one
                               reset_frames=reset_frames if reset_frames and reset_frames < frames else None)
    methods = [m for m in methods if _selected(m.name, chosen)]
    others = {"source": source_only_model(task, device)} if args.source_only and not user else None
    by_method: dict[str, dict[int, dict]] = {}
    rotation = []
    for seed in seeds:
        data = make_frames(task, args.split, frames, size, seed + 1)
        sets = corrupted_sets(data.images, severities, seed, corruptions)
        done = evaluate_methods(model, methods, task, sets, truth_of(data, task), device, seed, jobs, args.threads,
                                others)
        for name, per_set in done.items():
            for record in per_set.values():
                record.pop("wrong", None)
            by_method.setdefault(name, {})[seed] = per_set
        rotation.append(source_statistics(model, data, device)["rotation_accuracy"])
    results, spread = {}, {}
    for name, by_seed in by_method.items():
        results[name], spread[name] = average_over_seeds(by_seed)
    return {"model": description, "frames_per_set": frames, "input_size": size, "seeds": list(seeds),
            "tent_lr": tent, "features_lr": features, "reset_frames": reset_frames,
            "rotation_accuracy_clean": float(np.mean(rotation)),
            "rotation_accuracy_by_seed": {str(s): float(r) for s, r in zip(seeds, rotation)},
            # the settings in force: "auto" values as the model's task takes them
            "methods": {m.name: {"config": dataclasses.asdict(m.config.resolved_for(task)), "model": m.model,
                                 "note": m.note,
                                 "frames_per_set": m.max_frames or frames} for m in methods},
            "results": results, "spread": spread,
            # each seed's own numbers: what ``bench pool-seeds`` needs to pool this run with others
            "by_seed": {name: {str(s): per_set for s, per_set in by_seed.items()}
                        for name, by_seed in by_method.items()}}


def summarise(task_payload: dict, task: str, severities, corruptions=CORRUPTIONS) -> dict:
    key = quality_name(task)
    summary = {}
    by_seed = task_payload.get("by_seed") or {}
    for name, per_set in task_payload["results"].items():
        if name in by_seed:  # the spread over seeds of the mean over the corruptions
            spreads = {str(s): float(np.std([mean_quality(one, task, s, corruptions)
                                             for one in by_seed[name].values()])) for s in severities}
        else:  # files without each seed's numbers: the mean of the per-set spreads, an upper bound of it
            spread = task_payload["spread"][name]
            spreads = {str(s): float(np.mean([spread[set_key(c, s)][key] for c in corruptions])) for s in severities}
        summary[name] = {
            "clean": per_set["clean"][key],
            "mean_by_severity": {str(s): mean_quality(per_set, task, s, corruptions) for s in severities},
            "spread_by_severity": spreads,
            "ms_per_frame": float(np.mean([r["ms_per_frame"] for r in per_set.values()])),
            "mean_steps": float(np.mean([r["mean_steps"] for r in per_set.values()])),
        }
        for part in STREAM_PARTS:  # classification: the error in the first and the last tenth of each stream
            if all(part in r for r in per_set.values()):
                summary[name][f"{part}_by_severity"] = {str(s): mean_quality(per_set, task, s, corruptions, part)
                                                        for s in severities}
    return summary


def _relative_change(value: float, base: float, task: str) -> float:
    """How much better than ``base``, in % of it: error down, or mAP up."""
    if base == 0:
        return 0.0
    return 100.0 * ((base - value) if task == "classifier" else (value - base)) / base


def _worst_loss(task_payload: dict, name: str, task: str, severity: int,
                corruptions=CORRUPTIONS) -> tuple[float, str]:
    """The largest loss in points against mode off over the corruptions, and where."""
    key, sign = quality_name(task), (1.0 if task == "classifier" else -1.0)
    results = task_payload["results"]
    losses = {c: sign * (results[name][set_key(c, severity)][key] - results[JOINT][set_key(c, severity)][key])
              for c in corruptions}
    worst = max(losses, key=losses.get)
    return losses[worst], worst


def targets_for(payload: dict, severity: int) -> list[dict]:
    """The issue's targets on the summary at ``severity``."""
    s, out, rotation_targets = str(severity), [], []
    corruptions = corruptions_of(payload)
    for task, summary in payload["summary"].items():
        block = payload["tasks"][task]
        rotation = block["rotation_accuracy_clean"]
        rotation_targets.append(target(f"{task}: rotation head accuracy on clean frames >= "
                                       f"{100 * ROTATION_ACCURACY_TARGET:.0f}%",
                                       rotation >= ROTATION_ACCURACY_TARGET, f"{100 * rotation:.1f}%"))
        out.append(rotation_targets[-1])
        if JOINT not in summary:
            continue
        off = summary[JOINT]["mean_by_severity"][s]
        key = quality_name(task)
        wanted = {"classifier": ((TTT_ONLINE, 30.0), (TTT_DEFAULTS, 15.0)), "detector": ((TTT_DEFAULTS, 10.0),)}
        for name, share in wanted[task]:
            if name not in summary:
                continue
            mine = summary[name]["mean_by_severity"][s]
            gain = _relative_change(mine, off, task)
            better = "lower" if task == "classifier" else "higher"
            out.append(target(f"{task}: {name} mean {key} >= {share:g}% {better} than off (severity {s})",
                              gain >= share, f"{mine:.1f}% vs {off:.1f}% = {gain:.1f}% {better}"))
        if TTT_DEFAULTS in summary:
            loss, where = _worst_loss(block, TTT_DEFAULTS, task, severity, corruptions)
            out.append(target(f"{task}: {TTT_DEFAULTS} no corruption more than 1 point worse than off", loss <= 1.0,
                              f"worst: {where}, {loss:+.1f} points"))
            clean, clean_off = summary[TTT_DEFAULTS]["clean"], summary[JOINT]["clean"]
            if task == "classifier":
                out.append(target(f"{task}: {TTT_DEFAULTS} clean error within 0.5 point of off",
                                  clean <= clean_off + 0.5, f"{clean:.1f}% vs {clean_off:.1f}%"))
        reset_base = next((n for n in summary if n.startswith(f"{JOINT}, first")), JOINT)
        if task == "classifier" and TTT_RESET in summary:
            mine, base = summary[TTT_RESET]["mean_by_severity"][s], summary[reset_base]["mean_by_severity"][s]
            out.append(target(f"{task}: {TTT_RESET} mean error below off (severity {s}, the same frames)",
                              mine < base, f"{mine:.1f}% vs {base:.1f}%"))
    if corruptions != CORRUPTIONS:  # a part of the protocol measures no target
        for t in out:
            if not any(t is r for r in rotation_targets):  # measured on the clean frames, whatever the sets
                t["detail"] += f" (over {len(corruptions)} of the {len(CORRUPTIONS)} corruptions only)"
    return out


def plot(payload: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(payload["tasks"])
    severity = max(payload["severities"])
    corruptions = corruptions_of(payload)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(14, 4.6 * len(tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], tasks):
        block = payload["tasks"][task]
        key = quality_name(task)
        names = list(block["results"])
        labels = ["clean"] + list(corruptions) + ["mean (corrupted)"]
        x = np.arange(len(labels))
        width = 0.85 / len(names)
        for i, name in enumerate(names):
            per_set = block["results"][name]
            values = [per_set["clean"][key]] + [per_set[set_key(c, severity)][key] for c in corruptions]
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
    add_common_arguments(parser, "a smoke test: severity 5, 32 classification and 8 detection frames per set, one "
                                 "seed (full: 1000 and 300 frames, seeds 0-2; TTT reset on the first 100 / 50)")
    parser.add_argument("--task", default="both", choices=TASKS + ("both",))
    parser.add_argument("--frames", type=int, help="classification frames per set (overrides the profile)")
    parser.add_argument("--det-frames", type=int, help="detection frames per set (overrides the profile)")
    parser.add_argument("--severities", help="e.g. 5, 1-5 or 1,3,5 (default: the profile's)")
    parser.add_argument("--seeds", help="comma separated, e.g. 0,1,2 (default: the profile's)")
    parser.add_argument("--reset-frames", type=int,
                        help="TTT reset (10 steps of 32 copies a frame) scores the first N frames of each set "
                             "(default: the profile's)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (CPU), one (method, seed) each")
    parser.add_argument("--split", default="test", choices=("val", "test"),
                        help="val for choosing hyper-parameters, test for reporting")
    parser.add_argument("--tent-lr", type=float, help="skip Tent's learning-rate search on val and use this one")
    parser.add_argument("--source-only", action="store_true",
                        help="add the source-only baseline (trained on first use: hours on a CPU)")
    parser.add_argument("--model", help="your own checkpoint instead of the default model (its task is used)")
    parser.add_argument("--name", help="output file stem under results/ (default: accuracy_PROFILE_SPLIT)")
    parser.add_argument("--corruptions", help="only these corruptions, comma separated (default: all 15; the "
                                              "means and targets are then over these only)")
    parser.add_argument("--methods", help=f"only these methods, comma separated: {', '.join(METHOD_KEYS)} "
                                          "(default: all)")
    parser.add_argument("--update", action="store_true",
                        help="put this run's methods into the existing results/NAME.json, replacing their old "
                             "numbers and keeping the others (same split, frames, seeds and reset frames only)")
    parser.set_defaults(run=main)


def main(args) -> int:
    device = set_up(args)
    profile = "quick" if args.quick else "full"
    settings = PROFILES[profile]
    severities = parse_severities(args.severities, settings["severities"])
    chosen = parse_methods(args.methods)
    corruptions = parse_corruptions(args.corruptions)
    name = args.name or f"accuracy_{profile}_{args.split}"
    old_path = results_dir() / f"{name}.json"
    if args.update and not old_path.exists():
        raise SystemExit(f"--update: no {old_path} to update")
    seeds = tuple(int(v) for v in args.seeds.split(",")) if args.seeds else settings["seeds"]
    if args.model:
        from ..checkpoint import load_checkpoint

        tasks = (load_checkpoint(args.model)[0].config.task,)
    else:
        tasks = TASKS if args.task == "both" else (args.task,)
    frames = {"classifier": args.frames or settings["frames"]["classifier"],
              "detector": args.det_frames or settings["frames"]["detector"]}
    payload = {**run_record(args, device, profile), "split": args.split, "severities": list(severities),
               "seeds": list(seeds), "corruptions": list(corruptions), "tasks": {}, "summary": {}, "targets": []}
    for task in tasks:
        reset_frames = args.reset_frames or (settings["reset_frames"] or {}).get(task)
        reset_frames = min(reset_frames, frames[task]) if reset_frames else None
        payload["tasks"][task] = run_task(task, args, device, frames[task], severities, args.model, seeds,
                                          reset_frames, args.jobs, chosen, corruptions)
    if args.update:
        payload = merge_into(json.loads(old_path.read_text()), payload)
    finish(payload, name)
    return 0


def print_stream_parts(summary: dict, task: str, severity: int) -> None:
    """Classification: how far an online method's gain builds up along a stream."""
    rows = stream_part_rows(summary, severity)
    if rows:
        print(f"\n{task}: mean error % along the streams at severity {severity}")
        print(format_table(STREAM_PART_HEADER, rows))


def finish(payload: dict, name: str) -> None:
    """Summary, targets, plot and tables of an accuracy payload; writes results/NAME.json and .png."""
    severities, corruptions = payload["severities"], corruptions_of(payload)
    payload["summary"] = {task: summarise(block, task, severities, corruptions)
                          for task, block in payload["tasks"].items()}
    png_path = results_dir() / f"{name}.png"
    plot(payload, png_path)

    for task, summary in payload["summary"].items():
        key = quality_name(task)
        block = payload["tasks"][task]
        header = (["method", f"clean {key} %"] + [f"mean {key} % sev {s} (+-)" for s in severities]
                  + ["steps", "ms/frame"])
        rows = [[n, s["clean"], *[f"{s['mean_by_severity'][str(v)]:.2f} +-{s['spread_by_severity'][str(v)]:.2f}"
                                  for v in severities], s["mean_steps"], s["ms_per_frame"]]
                for n, s in summary.items()]
        print(f"\n{task} ({block['frames_per_set']} {payload['split']} frames per set, seeds {block['seeds']}, "
              f"{payload['machine']}); rotation accuracy on the clean frames "
              f"{100 * block['rotation_accuracy_clean']:.1f}%")
        print(format_table(header, rows))
        per_corruption = [[c] + [block["results"][n][set_key(c, max(severities))][key] for n in summary]
                          for c in corruptions]
        print(f"\n{task}: {key} % per corruption at severity {max(severities)}")
        print(format_table(["corruption"] + list(summary), per_corruption))
        print_stream_parts(summary, task, max(severities))
    payload["targets"] = targets_for(payload, 5 if 5 in severities else max(severities))
    if payload["split"] != "test":
        for t in payload["targets"]:
            t["detail"] += " (val split: for choosing, not for reporting)"
    print()
    print_targets(payload["targets"])
    json_path = write_json(name, payload)
    print(f"wrote {json_path} and {png_path}")
