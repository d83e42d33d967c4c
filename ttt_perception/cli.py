"""The ``ttt-perception`` command: one tool, a subcommand per job (``--help`` on each)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from functools import partial
from pathlib import Path

DEBUG_ENV = "TTT_PERCEPTION_DEBUG"  # set to 1: errors end in their traceback instead of one line


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser("train", help="joint training (main loss + rotation loss); writes a checkpoint",
                                   description="Train a Y-shaped model and write one checkpoint file.")
    parser.add_argument("--task", choices=("detector", "classifier"), default="detector")
    parser.add_argument("--out", help="checkpoint path (default: the cache, or the package with --default)")
    parser.add_argument("--default", action="store_true",
                        help="retrain the packaged default model (ttt_perception/models/TASK.pt) with its exact recipe")
    parser.add_argument("--rotation-weight", type=float, help="weight of the rotation loss (0: source-only baseline)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs")
    parser.add_argument("--coco", help="train on your own COCO JSON (detector)")
    parser.add_argument("--images", help="image folder of the COCO JSON (default: next to it)")
    parser.add_argument("--image-folder", help="train on your own images, one sub-folder per class (classifier)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, help="processes rendering the training frames (default: all cores)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's own choice)")
    parser.set_defaults(run=partial(_run_train, parser))


def _recipe_changes(args) -> list[str]:
    """The options given that change what is trained (data, rotation weight, epochs)."""
    options = {"--coco": args.coco, "--image-folder": args.image_folder, "--rotation-weight": args.rotation_weight,
               "--epochs": args.epochs}
    return [option for option, value in options.items() if value is not None]


def _check_out(parser, out: Path) -> None:
    if out.is_dir():
        parser.error(f"--out {out} is a directory; give the checkpoint's file name")
    if not out.parent.is_dir():
        parser.error(f"--out {out}: the folder {out.parent} does not exist")


def _check_train(parser, args) -> None:
    """Refuse what would train something other than asked, or fail only at the end, before the training
    (an hour or more on a CPU) starts."""
    if args.default and _recipe_changes(args):
        parser.error(f"--default retrains the packaged model with its exact recipe (docs/training.md); it "
                     f"takes no {', '.join(_recipe_changes(args))}: write that model elsewhere with --out instead")
    if args.coco and args.image_folder:
        parser.error("--coco (detector data) and --image-folder (classifier data) exclude each other")
    if args.coco and args.task != "detector":
        parser.error("--coco trains a detector: use --task detector")
    if args.image_folder and args.task != "classifier":
        parser.error("--image-folder trains a classifier: add --task classifier")
    if args.images and not args.coco:
        parser.error("--images is the image folder of --coco and needs it")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.rotation_weight is not None and not (math.isfinite(args.rotation_weight) and args.rotation_weight >= 0):
        parser.error(f"--rotation-weight must be >= 0, got {args.rotation_weight:g}")
    if args.out:
        _check_out(parser, Path(args.out))


def _run_train(parser, args) -> int:
    from dataclasses import replace

    import torch

    from .checkpoint import save_checkpoint
    from .default_models import PACKAGED_DIR, RECIPES, cache_dir, train_default_model
    from .devices import resolve_device

    _check_train(parser, args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    recipe = RECIPES[args.task]
    train_config = recipe.train
    if args.rotation_weight is not None:
        train_config = replace(train_config, rotation_weight=args.rotation_weight)
    if args.epochs is not None:
        train_config = replace(train_config, epochs=args.epochs)
    device = resolve_device(args.device)
    if args.coco or args.image_folder:
        from .training import train_and_describe
        from .user_data import hold_out, load_coco, load_image_folder

        if args.coco:
            data, names = load_coco(args.coco, args.images, size=recipe.model.input_size)
        else:
            data, names = load_image_folder(args.image_folder, size=recipe.model.input_size)
        model_config = replace(recipe.model, num_classes=len(names), class_names=tuple(names))
        data, reference = hold_out(data, fraction=0.05)
        model, meta = train_and_describe(model_config, train_config, data, reference, device, True,
                                         f"user data {args.coco or args.image_folder}")
    else:
        model, meta = train_default_model(args.task, progress=True, device=device, train_config=train_config,
                                          workers=args.workers)
    out = args.out or (PACKAGED_DIR if args.default else cache_dir()) / f"{args.task}.pt"
    path = save_checkpoint(model, out, meta)
    last, stats = meta["history"][-1], meta["source_stats"]
    print(f"wrote {path}: main loss {last['main_loss']:.4f}, rotation loss {last['rotation_loss']:.4f}; "
          f"held-out clean frames: rotation accuracy {100 * stats['rotation_accuracy']:.1f}%, "
          f"rotation loss {stats['ssl_loss']:.3f}; {meta['train_seconds'] / 60:.1f} min on {meta['device']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .bag.cli import add_bag_parser
    from .bag.demo import add_demo_parser
    from .bench.cli import add_bench_parser

    parser = argparse.ArgumentParser(prog="ttt-perception", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an error instead of its one-line message (or {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train(subparsers)
    add_bench_parser(subparsers)
    add_bag_parser(subparsers)
    add_demo_parser(subparsers)
    return parser


def _debugging(args) -> bool:
    return args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def main(argv: list[str] | None = None) -> int:
    """Run one command; a ValueError or OSError (bad input, a missing or unreadable file, a refused
    checkpoint) becomes one line on stderr and exit status 2, like argparse's own errors."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.run(args) or 0)
    except (ValueError, OSError) as exc:
        if _debugging(args):
            raise
        print(f"ttt-perception {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
