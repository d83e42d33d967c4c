"""``bench tune``: choose the online learning rate on the val split (never on test frames).

Each candidate runs TTT-Online (1 step, 8 copies) over a stream per set: clean and a few corruptions
at severity 5, the same frames for every candidate, next to mode off.
"""

from __future__ import annotations

import torch

from ..adapter import AdaptationConfig
from ..choices import ADAPTATION_DEFAULTS, PARAMETER_SETS
from ..default_models import load_default_model
from ..devices import resolve_device
from .common import format_table, machine_description, write_json
from .evaluation import Method, corrupted_sets, evaluate, make_frames, quality_name, truth_of

DEFAULT_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast")


def add_parser(kinds) -> None:
    parser = kinds.add_parser("tune", help="online learning rate on the val split", description=__doc__)
    parser.add_argument("--task", choices=("detector", "classifier"), default="detector")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 5e-3])
    parser.add_argument("--frames", type=int, default=150, help="frames per set (one stream each)")
    parser.add_argument("--corruptions", nargs="+", default=list(DEFAULT_CORRUPTIONS))
    parser.add_argument("--parameters", choices=PARAMETER_SETS, default=ADAPTATION_DEFAULTS["parameters"],
                        help="weights the steps change")
    parser.add_argument("--min-ssl-loss", type=float, default=ADAPTATION_DEFAULTS["min_ssl_loss"],
                        help="adapt only while the running source rotation loss is at least this (0: always)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.set_defaults(run=main)


def main(args) -> int:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = load_default_model(args.task, device)
    data = make_frames(args.task, "val", args.frames, model.config.input_size, args.seed)
    sets = corrupted_sets(data.images, [5], args.seed, corruptions=args.corruptions)
    methods = [Method("off", AdaptationConfig(mode="off"))]
    methods += [Method(f"online lr {lr:g}", AdaptationConfig(mode="online", learning_rate=lr,
                                                             parameters=args.parameters,
                                                             min_ssl_loss=args.min_ssl_loss))
                for lr in args.learning_rates]
    key = quality_name(args.task)
    runs = {m.name: evaluate(model, m, args.task, sets, truth_of(data, args.task), device, args.seed) for m in methods}
    results = {name: {s: r[key] for s, r in per_set.items()} for name, per_set in runs.items()}
    overhead = {name: sum(r["overhead_percent"] * r["ms_per_frame"] for r in per_set.values())
                / sum(r["ms_per_frame"] for r in per_set.values()) for name, per_set in runs.items()}
    names = list(sets)
    print(format_table(["method", *names, "ms/frame", "adapter overhead %"],
                       [[m, *[results[m][s] for s in names],
                         sum(r["ms_per_frame"] for r in runs[m].values()) / len(names), overhead[m]] for m in results]))
    steps = {name: {s: r["mean_steps"] for s, r in per_set.items()} for name, per_set in runs.items()}
    source_loss = {s: r["ssl_loss"] for s, r in runs["off"].items()}  # what min_ssl_loss is compared with
    print("mean source rotation loss per set: " + ", ".join(f"{s} {v:.2f}" for s, v in source_loss.items()))
    suffix = ("" if args.parameters == "auto" else f"_{args.parameters}") + \
        (f"_gate{args.min_ssl_loss:g}" if args.min_ssl_loss else "")
    path = write_json(f"tune_{args.task}{suffix}", {
        "command": f"ttt-perception bench tune --task {args.task} --parameters {args.parameters} "
                   f"--min-ssl-loss {args.min_ssl_loss:g}",
        "parameters": args.parameters, "min_ssl_loss": args.min_ssl_loss, "split": "val", "quality": key,
        "frames_per_set": args.frames, "seed": args.seed, "machine": machine_description(device),
        "results": results, "mean_steps": steps, "source_rotation_loss": source_loss,
        "adapter_overhead_percent": overhead})
    print(f"{key} per set (val split, severity 5); wrote {path}")
    return 0
