"""What every benchmark shares: where results go, which machine produced them, table printing."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch


def results_dir() -> Path:
    path = Path(os.environ.get("TTT_PERCEPTION_RESULTS", "results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"


def write_json(name: str, payload: dict) -> Path:
    path = results_dir() / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=False))
    return path


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
