"""``bench tune``: choose adaptation settings on the val split (never on test frames).

Each candidate is a set of ``AdaptationConfig`` values on top of the node's defaults (``--candidate
learning_rate=1e-3,min_ssl_loss_ratio=1.3``; by default a learning-rate grid). Every candidate runs over
one stream per set, clean and the corruptions at severity 5 (``--corruptions``, default all 15), the
same frames for every candidate, next to mode off. Printed and written: quality per set, the mean over
the corruptions, the largest loss against off, the clean difference, steps per frame and the adapter's
own overhead.

With several seeds (``--seeds 0 1 2``) each seed draws its own val frames and corruptions; the numbers
per set are averaged over the seeds before the summary, and each seed's own summary is kept, so a
choice can be made on the pooled mean while seeing how far a set swings from one stream to another.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..adaptation_config import AdaptationConfig
from ..corruptions import CORRUPTIONS
from ..default_models import load_default_model
from ..devices import resolve_device
from .accuracy import average_over_seeds, parse_corruptions
from .common import format_table, machine_description, write_json
from .evaluation import (
    Method,
    corrupted_sets,
    higher_is_better,
    make_frames,
    quality_name,
    run_jobs,
    set_key,
    truth_of,
)

DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3)


def parse_candidate(text: str) -> dict:
    """'learning_rate=1e-3,parameters=stem' -> AdaptationConfig values (typed like the fields); 'defaults':
    none, the node's defaults as a candidate of their own."""
    if text.strip() == "defaults":
        return {}
    fields = {f.name: f for f in dataclasses.fields(AdaptationConfig)}
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, raw = part.partition("=")
        if name not in fields or not raw:
            raise ValueError(f"candidate {text!r}: {part!r} is not NAME=VALUE of an AdaptationConfig field")
        kind = type(getattr(AdaptationConfig(), name))
        values[name] = raw.lower() in ("1", "true", "yes") if kind is bool else kind(raw)
    AdaptationConfig(**values).validated()
    return values


def add_parser(kinds) -> None:
    parser = kinds.add_parser("tune", help="choose adaptation settings on the val split", description=__doc__)
    parser.add_argument("--task", choices=("detector", "classifier"), default="detector")
    parser.add_argument("--candidate", action="append", type=parse_candidate, metavar="NAME=VALUE,...",
                        help="AdaptationConfig values over the defaults, or 'defaults' (repeat for several; default: a "
                             f"learning-rate grid {', '.join(f'{v:g}' for v in DEFAULT_LEARNING_RATES)})")
    parser.add_argument("--frames", type=int, default=150, help="frames per set (one stream each)")
    parser.add_argument("--corruptions", nargs="+", metavar="NAME",
                        help="only these corruptions, space or comma separated (default: all 15)")
    parser.add_argument("--name", help="output file stem under results/ (default: tune_TASK)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seeds", "--seed", dest="seeds", type=int, nargs="+", default=[1],
                        help="val streams to draw, one per seed; several are averaged per set (default: 1)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (CPU), one candidate and seed each")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    parser.set_defaults(run=main)


def _label(values: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()) or "defaults"


def summary_of(results: dict[str, dict[str, float]], task: str, corruptions) -> dict[str, dict]:
    """Per method: mean over the corruptions, its change against off, the worst corruption, clean change."""
    sign = 1.0 if higher_is_better(task) else -1.0
    off = results["off"]
    out = {}
    for name, per_set in results.items():
        gains = {c: sign * (per_set[set_key(c, 5)] - off[set_key(c, 5)]) for c in corruptions}
        worst = min(gains, key=gains.get)
        out[name] = {"mean": float(np.mean([per_set[set_key(c, 5)] for c in corruptions])),
                     "mean_gain": float(np.mean(list(gains.values()))), "worst": worst,
                     "worst_gain": gains[worst], "clean_gain": sign * (per_set["clean"] - off["clean"])}
    return out


def chosen_corruptions(args) -> tuple[str, ...]:
    """``--corruptions fog contrast`` or ``fog,contrast`` (as ``bench accuracy`` takes them), in the
    benchmark's order; all 15 without it. Unknown names are refused (SystemExit) before any frame is made."""
    return parse_corruptions(",".join(args.corruptions or ()))


def _command(args, candidates, corruptions) -> str:
    """The command that reproduces these frames and candidates (labels in the form --candidate takes)."""
    words = [f"--task {args.task}", f"--frames {args.frames}", "--seeds " + " ".join(map(str, args.seeds))]
    if corruptions != CORRUPTIONS:
        words.append("--corruptions " + " ".join(corruptions))
    words += [f"--candidate {_label(c).replace(', ', ',')}" for c in candidates]
    return "ttt-perception bench tune " + " ".join(words)


def pool_seeds(runs_by_seed: dict[str, dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """seed -> method -> set -> record, to method -> set -> record of each number's mean over the seeds."""
    first = next(iter(runs_by_seed.values()))
    return {name: average_over_seeds({seed: runs[name] for seed, runs in runs_by_seed.items()})[0] for name in first}


def main(args) -> int:
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"bench tune: --seeds {' '.join(map(str, args.seeds))} repeats a seed (the same frames twice)")
    corruptions = chosen_corruptions(args)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_default_model(args.task, device)
    candidates = args.candidate or [{"learning_rate": lr} for lr in DEFAULT_LEARNING_RATES]
    methods = [Method("off", AdaptationConfig(mode="off"))]
    methods += [Method(_label(values), dataclasses.replace(AdaptationConfig(), **values)) for values in candidates]
    key = quality_name(args.task)
    work = []
    for seed in args.seeds:
        data = make_frames(args.task, "val", args.frames, model.config.input_size, seed)
        sets = corrupted_sets(data.images, [5], seed, corruptions=corruptions)
        work += [(model, m, args.task, sets, truth_of(data, args.task), device, seed, args.threads) for m in methods]
    done = iter(run_jobs(work, args.jobs, device, desc=f"{args.task}: seeds x methods"))
    runs_by_seed = {str(seed): {m.name: next(done) for m in methods} for seed in args.seeds}
    results_by_seed = {seed: {name: {s: r[key] for s, r in per_set.items()} for name, per_set in runs.items()}
                       for seed, runs in runs_by_seed.items()}
    pooled = pool_seeds(runs_by_seed)
    results = {name: {s: r[key] for s, r in per_set.items()} for name, per_set in pooled.items()}
    steps = {name: {s: r["mean_steps"] for s, r in per_set.items()} for name, per_set in pooled.items()}
    summary = summary_of(results, args.task, corruptions)
    summary_by_seed = {seed: summary_of(r, args.task, corruptions) for seed, r in results_by_seed.items()}
    records = {m.name: [r for runs in runs_by_seed.values() for r in runs[m.name].values()] for m in methods}
    overhead = {name: sum(r["overhead_percent"] * r["ms_per_frame"] for r in rs) / sum(r["ms_per_frame"] for r in rs)
                for name, rs in records.items()}
    ms_per_frame = {name: float(np.mean([r["ms_per_frame"] for r in rs])) for name, rs in records.items()}
    names = list(results["off"])
    print(format_table(["method", *names], [[m, *[results[m][s] for s in names]] for m in results]))
    seed_columns = [f"worst seed {seed}" for seed in summary_by_seed] if len(args.seeds) > 1 else []
    print(format_table(["method", f"mean {key} ({len(corruptions)})", "gain vs off", "worst corruption", "its gain",
                        "clean gain", *seed_columns, "steps/frame", "ms/frame", "overhead %"],
                       [[m, s["mean"], s["mean_gain"], s["worst"], s["worst_gain"], s["clean_gain"],
                         *([f"{b[m]['worst']} {b[m]['worst_gain']:.2f}" for b in summary_by_seed.values()]
                           if seed_columns else []),
                         float(np.mean(list(steps[m].values()))), ms_per_frame[m], overhead[m]]
                        for m, s in summary.items()]))
    source_loss = {s: r["ssl_loss"] for s, r in pooled["off"].items()}  # the source weights' rotation loss
    print("mean source rotation loss per set: " + ", ".join(f"{s} {v:.2f}" for s, v in source_loss.items()))
    name = args.name or f"tune_{args.task}"
    path = write_json(name, {
        "command": _command(args, candidates, corruptions),
        "split": "val", "quality": key, "frames_per_set": args.frames, "seeds": list(args.seeds),
        "corruptions": list(corruptions),
        "machine": machine_description(device),
        "defaults": dataclasses.asdict(AdaptationConfig().resolved_for(args.task)),
        "candidates": {_label(c): c for c in candidates}, "results": results, "summary": summary,
        **({"results_by_seed": results_by_seed, "summary_by_seed": summary_by_seed} if len(args.seeds) > 1 else {}),
        "mean_steps": steps, "source_rotation_loss": source_loss,
        "reference_ssl_loss": (getattr(model, "reference_stats", None) or {}).get("ssl_loss"),
        "adapter_overhead_percent": overhead})
    seeds = "seed " + " ".join(map(str, args.seeds)) if len(args.seeds) == 1 else f"mean of seeds {args.seeds}"
    print(f"{key} per set (val split, severity 5, {seeds}); wrote {path}")
    return 0
