"""What every benchmark shares: where results go, which machine produced them, table printing,
models (the packaged joint-trained one, the cached source-only one, or a user's checkpoint), seeds,
peak memory and the PASS/MISS lines of the issue's targets."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ..devices import machine_description, resolve_device, synchronize

_LOG = logging.getLogger(__name__)


def results_dir() -> Path:
    path = Path(os.environ.get("TTT_PERCEPTION_RESULTS", "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(name: str, payload: dict) -> Path:
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default))
    return path


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---- run set-up ----------------------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared small machine more threads mostly wait on "
                             "each other; 0 keeps torch's own choice)")


def set_up(args) -> torch.device:
    """Seeds, thread count and the device; every benchmark calls this first."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    return resolve_device(args.device)


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


def run_record(args, device: torch.device, profile: str) -> dict:
    """What every JSON carries: the command, profile, seed, machine and when it ran."""
    return {"command": "ttt-perception " + " ".join(sys.argv[1:]) if sys.argv else "",
            "profile": profile, "seed": args.seed, "device": str(device),
            "machine": machine_description(device), "created": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def target(name: str, passed: bool, detail: str) -> dict:
    return {"target": name, "passed": bool(passed), "detail": detail}


def paired_errors(first_wrong, second_wrong) -> dict:
    """Two methods scored on the same frames: on how many only the first errs, on how many only the second,
    and the two-sided exact sign test on those frames (McNemar's exact test): the chance of a split at
    least this lopsided if neither method were the better one. Frames both get right or wrong say nothing."""
    from scipy.stats import binomtest

    first, second = np.asarray(first_wrong, dtype=bool), np.asarray(second_wrong, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f"paired errors need the same frames: {first.shape} against {second.shape}")
    only_first, only_second = int((first & ~second).sum()), int((~first & second).sum())
    split = only_first + only_second
    p_value = float(binomtest(only_first, split, 0.5).pvalue) if split else 1.0
    return {"only_first_wrong": only_first, "only_second_wrong": only_second, "p_value": p_value}


def print_targets(targets: list[dict]) -> None:
    for t in targets:
        print(f"{'PASS' if t['passed'] else 'MISS'}  {t['target']}: {t['detail']}")


# ---- models --------------------------------------------------------------------------------------


def load_model(task: str, path: str | None, device: torch.device):
    """(model, description): a user's checkpoint, or the packaged default for ``task``; ValueError when the
    checkpoint's model is made for another task."""
    from ..checkpoint import load_checkpoint
    from ..default_models import default_model_path, load_default_model

    if path:
        model, _ = load_checkpoint(path, device)
        if model.config.task != task:  # refused now, not minutes into the benchmark
            raise ValueError(f"{path} is a {model.config.task} checkpoint; this benchmark needs a {task}")
        return model, f"checkpoint {path}"
    return load_default_model(task, device), f"default {task} ({default_model_path(task).name}, joint training)"


def source_only_path(task: str) -> Path:
    from ..default_models import cache_dir

    return cache_dir() / f"{task}_source_only.pt"


def source_only_model(task: str, device: torch.device, progress: bool = True):
    """The default recipe trained with rotation weight 0, cached next to the other default models.

    Trained on first use (minutes on a CPU) and retrained when the recipe or the frames have changed since.
    """
    from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from ..data import DATA_VERSION
    from ..default_models import RECIPES, train_default_model

    recipe = RECIPES[task]
    wanted_train = {**asdict(recipe.train), "rotation_weight": 0}
    path = source_only_path(task)
    if path.is_file():
        try:
            model, meta = load_checkpoint(path, device)
            if (meta.get("train_config") == wanted_train and model.config == recipe.model
                    and meta.get("data_version") == DATA_VERSION):
                return model
            _LOG.warning("%s was trained with another recipe or data version: training it again", path)
        except CheckpointError as exc:
            _LOG.warning("%s: training it again", exc)
    _LOG.warning("source-only %s not cached at %s: training it now (rotation weight 0; once)", task, path)
    model, meta = train_default_model(task, rotation_weight=0, progress=progress)
    meta["role"] = "source-only baseline (rotation_weight=0)"
    save_checkpoint(model, path, meta)
    return model.to(device).eval()


# ---- memory --------------------------------------------------------------------------------------


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA allocator statistics, or the kernel's peak RSS (Linux clear_refs)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak then covers the whole process


def peak_memory_mb(device: torch.device) -> dict:
    """Peak since ``reset_peak_memory``: {'kind': ..., 'mb': ...}."""
    if device.type == "cuda":
        synchronize(device)
        return {"kind": "torch.cuda.max_memory_allocated", "mb": torch.cuda.max_memory_allocated(device) / 2**20}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return {"kind": "peak RSS (VmHWM)", "mb": int(line.split()[1]) / 1024}
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"kind": "peak RSS (process lifetime)", "mb": peak / (2**20 if sys.platform == "darwin" else 1024)}
