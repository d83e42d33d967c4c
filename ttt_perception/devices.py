"""Device selection: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""

from __future__ import annotations

import logging
import os
import platform
import re
from pathlib import Path

import torch

_LOG = logging.getLogger(__name__)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; ValueError with the reason when it does not exist here."""
    name = (name or "auto").strip()
    if not DEVICE_PATTERN.match(name):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        _LOG.warning("device 'auto': no CUDA device available, using the CPU")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that host clocks measure what the GPU really spent."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), for the machine line of measurements."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> str:
    """Which machine measured: results are compared within one machine (kernels round differently)."""
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, " \
           f"torch {torch.__version__}"
