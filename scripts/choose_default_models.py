"""Train candidate default models side by side and compare them on the val split.

How the packaged default models were chosen (docs/training.md): every candidate architecture is
trained with the same recipe on the same frames, jointly (main + rotation loss) and source-only
(rotation weight 0); the number of epochs is set from a measured training speed so that a run fits a
time budget (on a GPU), and is recorded in the checkpoint's metadata. Each joint candidate is then
measured on val frames: rotation accuracy on clean frames, clean quality, and off vs. TTT online
(paper settings) on six corruptions. The chosen candidate's recipe goes into
``ttt_perception.default_models.RECIPES``, so ``ttt-perception train --task T --default`` repeats it.

    python scripts/choose_default_models.py --out results/candidates            # both tasks, in parallel
    python scripts/choose_default_models.py --task classifier --budget-s 5 --pool 2000   # a quick try
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import torch

from ttt_perception.adapter import PAPER_ONLINE, AdaptationConfig
from ttt_perception.bench.evaluation import (Method, corrupted_sets, evaluate, make_frames, quality_name,
                                             truth_of)
from ttt_perception.checkpoint import save_checkpoint
from ttt_perception.default_models import recipe_frames
from ttt_perception.model import ModelConfig
from ttt_perception.training import TrainConfig, train_and_describe, train_joint

CANDIDATES = {
    "classifier": {
        "cls_w16_b222": dict(width=16, blocks_per_stage=(2, 2, 2), stem_stride=1, stage_strides=(1, 2, 2)),
        "cls_w16_b444": dict(width=16, blocks_per_stage=(4, 4, 4), stem_stride=1, stage_strides=(1, 2, 2)),
    },
    "detector": {
        "det_w16_b222_s8": dict(width=16, blocks_per_stage=(2, 2, 2), stem_stride=2, stage_strides=(2, 2, 1)),
        "det_w16_b333_s8": dict(width=16, blocks_per_stage=(3, 3, 3), stem_stride=2, stage_strides=(2, 2, 1)),
    },
}
INPUT_SIZE = {"classifier": 32, "detector": 96}
POOL = {"classifier": 100_000, "detector": 40_000}
VAL_FRAMES = {"classifier": 300, "detector": 100}
VAL_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "fog", "contrast", "elastic_transform", "jpeg_compression")
BATCH, LEARNING_RATE = 256, 4e-3


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def samples_per_second(model_config: ModelConfig, pool, config: TrainConfig, device) -> float:
    """Training speed with the rotation branch, on a slice of the pool (second of two runs: warm)."""
    from ttt_perception.model import build_model

    subset = type(pool)(**{f.name: getattr(pool, f.name)[:BATCH * 30] for f in dataclasses.fields(pool)})
    probe = dataclasses.replace(config, epochs=1)
    seconds = 0.0
    for _ in range(2):
        model = build_model(model_config)
        began = time.perf_counter()
        train_joint(model, subset, probe, device=device, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - began
    return len(subset) / seconds


def val_check(model, task: str, device) -> dict:
    """Clean quality and off vs. TTT online (paper) on the val split's corrupted frames."""
    data = make_frames(task, "val", VAL_FRAMES[task], model.config.input_size, 1)
    sets = corrupted_sets(data.images, (5,), 0, corruptions=VAL_CORRUPTIONS, progress=False)
    truth = truth_of(data, task)
    key = quality_name(task)
    out = {}
    for method in (Method("off", AdaptationConfig(mode="off")), Method("online_paper", PAPER_ONLINE)):
        per_set = evaluate(model, method, task, sets, truth, device, 0, progress=False)
        out[method.name] = {name: round(record[key], 2) for name, record in per_set.items()}
    return out


def run_lane(task: str, out: Path, work: Path, budget_s: float, pool_frames: int, workers: int, device) -> None:
    began = time.perf_counter()
    pool = recipe_frames(task, "train", pool_frames, 0, workers)
    reference = recipe_frames(task, "val", 1000, 0, workers)
    log(task, f"rendered {pool_frames} + 1000 frames in {time.perf_counter() - began:.0f} s")
    summary, archive = {}, out / f"{task}_models.tar"
    for name, architecture in CANDIDATES[task].items():
        model_config = ModelConfig(task=task, input_size=INPUT_SIZE[task], **architecture)
        config = TrainConfig(batch_size=BATCH, learning_rate=LEARNING_RATE, augment=True)
        rate = samples_per_second(model_config, pool, config, device)
        epochs = int(np.clip(round(budget_s * rate / pool_frames), 3, 60))
        config = dataclasses.replace(config, epochs=epochs)
        log(name, f"{rate:.0f} samples/s -> {epochs} epochs of {pool_frames}")
        record = {"architecture": architecture, "train_config": dataclasses.asdict(config), "samples_per_s": rate,
                  "train_frames": pool_frames}
        for role, rotation_weight in (("joint", 1.0), ("source_only", 0.0)):
            run_config = dataclasses.replace(config, rotation_weight=rotation_weight)
            model, meta = train_and_describe(model_config, run_config, pool, reference, device, False,
                                             f"{task} frames, split train, {pool_frames} frames")
            stats = meta["source_stats"]
            save_checkpoint(model, work / f"{name}_{role}.pt", meta)
            record[role] = {"train_seconds": meta["train_seconds"], "last": meta["history"][-1],
                            "rotation_accuracy": stats["rotation_accuracy"], "ssl_loss": stats["ssl_loss"]}
            log(name, role, f"{meta['train_seconds']:.0f} s, rotation accuracy {stats['rotation_accuracy']:.3f}",
                f"last epoch {meta['history'][-1]}")
            if role == "joint":
                record["val"] = val_check(model.to(device), task, device)
                log(name, "val", json.dumps(record["val"]))
            with tarfile.open(archive, "w") as tar:
                for path in sorted(work.glob(f"{'cls' if task == 'classifier' else 'det'}_*.pt")):
                    tar.add(path, arcname=path.name)
        summary[name] = record
        (out / f"{task}_summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log(task, f"lane done in {time.perf_counter() - began:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("classifier", "detector", "both"), default="both")
    parser.add_argument("--out", default="results/candidates", help="summaries and one archive of models per task")
    parser.add_argument("--work", help="where the single checkpoints are written (default: --out)")
    parser.add_argument("--budget-s", type=float, default=75.0, help="seconds of training per joint model")
    parser.add_argument("--pool", type=int, help="training frames (default: 100k classifier, 40k detector)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    out = Path(args.out)
    work = Path(args.work or args.out)
    for folder in (out, work):
        folder.mkdir(parents=True, exist_ok=True)
    if args.task == "both":  # one process per task, side by side on the one device
        lanes = [subprocess.Popen([sys.executable, __file__, "--task", task, "--out", str(out), "--work", str(work), "--budget-s",
                                   str(args.budget_s), "--device", args.device]
                                  + (["--pool", str(args.pool)] if args.pool else [])) for task in INPUT_SIZE]
        return max(lane.wait() for lane in lanes)
    from ttt_perception.devices import resolve_device

    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    workers = max(1, (os.cpu_count() or 2) // 2)
    run_lane(args.task, out, work, args.budget_s, args.pool or POOL[args.task], workers, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
