"""``ttt-perception demo``: a synthetic flight, the node in each adaptation mode on the same replay, a table.

1. ``bag make``: a flight (default: clear -> fog rising to severity 5 -> JPEG compression at severity 5
   -> noise at severity 3, then 5 -> clear, 10 Hz).
2. For each mode (off, reset, online): the node in its own process with ``adaptation.mode`` set, the
   flight replayed into it in real time, its detections, uncertainty and diagnostics recorded; then
   one online run per profile (default: the noisy-camera profile).
3. ``bag score`` over the runs: the table (quality on clear and shifted frames, latency,
   deadline met) and the plot of quality over time.

Everything runs in a ROS domain of its own on loopback unless ROS_DOMAIN_ID is set already. ``--out-dir``
must be new, empty, or an earlier demo's (it carries the file ``.ttt_perception_demo``); the demo then
replaces that demo's outputs and never deletes anything else.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from ..choices import MODES, NODE_BUDGET_MS
from .schedule import DEFAULT_SCHEDULE, parse_schedule, plan_frames

_LOG = logging.getLogger(__name__)

# The node's real-time defaults, except that every mode gets the same deadline and detections are kept
# from score 0.1 so that mAP sees the whole precision-recall curve.
DEMO_PARAMETERS = {
    "detection.score_threshold": 0.1,
    "detection.max_detections": 10,
}
# Written into --out-dir before anything else: a folder that carries it is one the demo may clear.
MARKER = ".ttt_perception_demo"
# What the demo writes into --out-dir, and all that it ever deletes there.
OUTPUTS = ("flight", "run_*", "node_*.log", "score.json", "quality_over_time.png")


def add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="flight bag -> node in off/reset/online (+ profiles) -> table and plot",
                                   description=__doc__)
    parser.add_argument("--out-dir", default="results/demo",
                        help="bags, logs, JSON and PNG (default %(default)s): a new or empty folder, or an earlier "
                             f"demo's (marked by {MARKER}), whose outputs are replaced")
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE, help="environment schedule (see bag make)")
    parser.add_argument("--rate", type=float, default=10.0, help="camera frames per second (default 10)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--profiles", nargs="*", default=["noisy_camera"],
                        help="one more online run per packaged profile (ttt_perception/profiles/NAME.yaml); "
                             "none: --profiles with no name")
    parser.add_argument("--budget-ms", type=float, default=NODE_BUDGET_MS,
                        help="deadline per frame (node parameter deadline.budget_ms; 0: none)")
    parser.add_argument("--model", default="", help="checkpoint (default: the packaged default detector)")
    parser.add_argument("--device", default="auto", help="model.device of the node")
    parser.add_argument("--seed", type=int, default=0, help="seed of the flight's frames and corruptions")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="node parameter model.threads; default: the node's own default, as ros2 launch "
                             "starts it (1 thread; see docs/node.md)")
    parser.set_defaults(run=main)


def _private_ros_domain() -> None:
    from ..ros.dds_profile import use_large_image_profile

    use_large_image_profile()  # camera-sized frames through shared memory, unless a profile is chosen
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if "ROS_DOMAIN_ID" not in os.environ:
        os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)


def run_mode(flight: Path, out: Path, mode: str, parameters: dict, log_path: Path, wait_s: float = 120.0,
             torch_threads: int | None = None):
    """The node in ``mode`` on one replay of ``flight``; the outputs go to the new bag ``out``."""
    from .node_process import NodeProcess
    from .replay import BagReplayer, ReplayOptions

    node = NodeProcess({**parameters, "adaptation.mode": mode}, log_path=str(log_path), torch_threads=torch_threads)
    with node:
        options = ReplayOptions(out=str(out), wait_s=wait_s, drain_s=10.0)
        began = time.monotonic()
        summary = BagReplayer(flight, options).run()
        if not node.alive():
            raise RuntimeError(f"the node stopped during the replay; its log: {log_path}\n{node.log()[-2000:]}")
    if summary.unmatched:
        raise RuntimeError(f"the node did not come up within {wait_s:.0f} s ({', '.join(summary.unmatched)}); "
                           f"its log: {log_path}\n{node.log()[-2000:]}")
    _LOG.info("mode %s: %s frames sent, replay took %.0f s", mode, sum(summary.sent.values()),
              time.monotonic() - began)
    return summary


def checked_profiles(args) -> dict[str, dict]:
    """Each profile's node parameters, once the schedule, rate, modes, budget and model are checked too:
    a ValueError here comes before anything is written or deleted."""
    from ..ros.parameters import profile_path, read_parameters_file

    plan_frames(parse_schedule(args.schedule), args.rate)
    unknown = [mode for mode in args.modes if mode not in MODES]
    if unknown or not args.modes:
        raise ValueError(f"modes {unknown or args.modes}: choose from {', '.join(MODES)}")
    if not args.budget_ms >= 0:
        raise ValueError(f"--budget-ms must be >= 0 (0: no deadline), got {args.budget_ms:g}")
    if args.model and not Path(args.model).is_file():
        raise ValueError(f"--model {args.model} does not exist")
    return {name: read_parameters_file(profile_path(name)) for name in args.profiles}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _only_demo_outputs(out_dir: Path) -> bool:
    """Empty, or a demo's from before the marker (an old results/demo): nothing but what a demo writes,
    with a node's log among it (a user's lone ``flight`` bag does not pass)."""
    paths = list(out_dir.iterdir())
    return all(any(path.match(pattern) for pattern in OUTPUTS) for path in paths) and \
        (not paths or any(path.match("node_*.log") for path in paths))


def prepare_out_dir(out_dir: Path) -> None:
    """``out_dir`` ready for a new demo: created, or cleared of an earlier demo's outputs (``OUTPUTS``) when
    it carries ``MARKER`` or holds nothing else; a folder with other contents is refused (ValueError)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir} is a file, not a folder")
    if out_dir.is_dir() and not (out_dir / MARKER).is_file() and not _only_demo_outputs(out_dir):
        raise ValueError(f"--out-dir {out_dir} is not empty and was not written by the demo (no {MARKER} in it); "
                         "the demo deletes nothing it did not write: choose a new or empty folder")
    for pattern in OUTPUTS:
        for path in sorted(out_dir.glob(pattern)):
            _remove(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by ttt-perception demo: the next demo with this --out-dir replaces "
                                  f"{', '.join(OUTPUTS)} here and nothing else\n")


def main(args) -> int:
    from ..devices import cpu_model
    from .flight import make_flight
    from .score import format_tables, score_bags

    profiles = checked_profiles(args)
    out_dir = Path(args.out_dir)
    prepare_out_dir(out_dir)
    _private_ros_domain()
    began = time.monotonic()
    if not args.model:
        from ..default_models import default_model_path, load_default_model

        if not default_model_path("detector").is_file():
            print("no default detector yet: training it once (a few minutes)")
            load_default_model("detector")
    flight = out_dir / "flight"
    info = make_flight(flight, schedule=args.schedule, rate_hz=args.rate, seed=args.seed)
    print(f"flight: {info.frames_per_camera} frames at {args.rate:g} Hz ({info.duration_s:.0f} s), "
          f"segments {', '.join(info.segments)}; ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}")
    threads = "the node's default" if args.torch_threads is None else args.torch_threads
    machine = f"CPU {cpu_model()}, {os.cpu_count()} cores; node: model.device {args.device}, model.threads {threads}"
    print(f"machine: {machine}")
    parameters = {**DEMO_PARAMETERS, "cameras": ["camera"], "model.path": args.model, "model.device": args.device,
                  "deadline.budget_ms": float(args.budget_ms)}
    runs = []
    for mode in args.modes:
        print(f"mode {mode}: node started, replaying {info.duration_s:.0f} s of flight ...", flush=True)
        run_mode(flight, out_dir / f"run_{mode}", mode, parameters, out_dir / f"node_{mode}.log",
                 torch_threads=args.torch_threads)
        runs.append((mode, str(out_dir / f"run_{mode}")))
    for profile in args.profiles:
        label = f"online+{profile}"
        print(f"{label}: node started, replaying {info.duration_s:.0f} s of flight ...", flush=True)
        run_mode(flight, out_dir / f"run_{label}", "online", {**parameters, **profiles[profile]},
                 out_dir / f"node_{label}.log", torch_threads=args.torch_threads)
        runs.append((label, str(out_dir / f"run_{label}")))
    report = score_bags(runs, str(flight), out_dir / "score.json", out_dir / "quality_over_time.png",
                        title=f"{info.frames_per_camera} frames at {args.rate:g} Hz, budget {args.budget_ms:g} ms",
                        context={"machine": machine, "budget_ms": float(args.budget_ms)})
    print()
    print(format_tables(report))
    print()
    print(f"plot: {report['png']}")
    print(f"json: {report['json']}")
    print(f"demo took {time.monotonic() - began:.0f} s")
    return 0
