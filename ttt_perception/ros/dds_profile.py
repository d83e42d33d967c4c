"""Fast DDS profile for camera-sized frames (config/fastdds_large_images.xml).

Processes that this package starts for benchmarks, the demo and rosbag replay use it unless the user
already chose a profile: without it, frames over 512 KiB cross processes as UDP fragments and
best-effort subscriptions lose about half of them.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE_NAME = "fastdds_large_images.xml"
ENV_NAMES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def large_image_profile() -> Path | None:
    """The profile in the source tree, or in an installed share/ttt_perception/config."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / "ttt_perception" / "config" / PROFILE_NAME)
    return next((path for path in candidates if path.is_file()), None)


def use_large_image_profile(env: dict | None = None) -> dict:
    """Set the profile variables in ``env`` (default: this process's environment) where unset."""
    env = os.environ if env is None else env
    profile = large_image_profile()
    if profile is not None:
        for name in ENV_NAMES:
            env.setdefault(name, str(profile))
    return env
