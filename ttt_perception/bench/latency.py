"""``bench latency``: the node's end-to-end latency against the adapter's own time; accounting.

    ttt-perception bench latency --rates 10 30 --cameras 1 3 --sizes 96x96 640x480

For each frame size (and each ``--prewarm-ms``) the node runs in its own process (cameras
cam0..camN-1); this process publishes frames at each rate on 1..N cameras for ``--duration``
seconds and records, per answered frame:

* ``e2e_ms``: publish -> detections received (both taken on this process's clock);
* ``adapter_ms``: the adapter's own time for that frame (preprocess + adapt + predict, from the
  uncertainty message);
* ``overhead_ms = e2e_ms - adapter_ms``: what the ROS layer adds (conversion, transport both ways,
  waiting in the latest-frame slot, message building).

Accounting: frames sent, answered (received here), dropped (the node's counter) and the rest, which
would be silently lost. Without ``--model`` an untrained detector with the default detector's
architecture is used (same cost per frame; the weights do not change the timings).
DDS stays on loopback unless ROS_AUTOMATIC_DISCOVERY_RANGE is set otherwise; without ROS_DOMAIN_ID
a domain of its own is chosen.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bag.node_process import NodeProcess
from ..choices import ADAPTATION_DEFAULTS, MAX_PREWARM_MS, MODES
from ..ros.dds_profile import use_large_image_profile


def _start_node(namespace: str, cameras: int, args, model: Path, log_path: Path, prewarm_ms: float) -> NodeProcess:
    parameters = {
        "model.path": str(model), "model.device": args.device,
        "cameras": [f"cam{i}" for i in range(cameras)],
        "adaptation.mode": args.mode, "adaptation.max_steps": args.steps,
        "adaptation.batch_size": args.batch, "deadline.budget_ms": float(args.budget_ms),
        "input.qos": args.input_qos, "deadline.prewarm_ms": float(prewarm_ms),
    }
    return NodeProcess(parameters, namespace=namespace, log_path=str(log_path),
                       large_image_profile=not args.default_dds).start()


class _Probe:
    """Publishers of cam0..camN-1's input (``transport``: raw, ``image``; compressed, ``image/compressed``,
    what a node with that ``input.transport`` reads); the answers, reports and counters that come back."""

    def __init__(self, namespace: str, cameras: int, transport: str = "raw"):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from ..ros.detection_message import DetectionMessageBuilder, detections_summary
        from ..ros.uncertainty_message import parse_uncertainty

        self._summary, self._parse = detections_summary, parse_uncertainty
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("ttt_latency_bench", context=self.context)
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.detections: dict[tuple, float] = {}
        self.reports: dict[tuple, dict[str, Any]] = {}
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.publishers = []
        from ..ros.parameters import INPUT_TOPICS

        msg_type = CompressedImage if transport == "compressed" else Image
        for i in range(cameras):
            self.publishers.append(
                self.node.create_publisher(msg_type, f"{namespace}/cam{i}/{INPUT_TOPICS[transport]}", reliable))
            self.node.create_subscription(
                DetectionMessageBuilder().msg_type, f"{namespace}/cam{i}/detections",
                lambda msg, c=i: self._on_detections(c, msg), reliable)
            self.node.create_subscription(
                DiagnosticArray, f"{namespace}/cam{i}/uncertainty",
                lambda msg, c=i: self._on_uncertainty(c, msg), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - ends with the context
            pass

    def _on_detections(self, camera, msg):
        now = time.perf_counter()
        stamp = self._summary(msg)["stamp"]
        with self.lock:
            self.detections[(camera,) + tuple(stamp)] = now

    def _on_uncertainty(self, camera, msg):
        with self.lock:
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            self.reports[(camera,) + stamp] = self._parse(msg)

    def _on_diagnostics(self, msg):
        with self.lock:
            for status in msg.status:
                self.diagnostics[status.name] = {pair.key: pair.value for pair in status.values}

    def counters(self, namespace: str, cameras: int) -> dict[str, int]:
        totals = {"received": 0, "published": 0, "dropped": 0, "rejected": 0, "failed": 0}
        with self.lock:
            for i in range(cameras):
                values = self.diagnostics.get(f"{namespace}/ttt_perception: camera cam{i}", {})
                for key in totals:
                    totals[key] += int(values.get(key, 0))
        return totals

    def close(self):
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _frames(size, count: int, seed: int = 0, image_format: str = "raw"):
    """Random rgb8 Images; with ``image_format`` jpeg or png, CompressedImages."""
    from ..ros.image_conversion import rgb_to_compressed, rgb_to_image

    rng = np.random.default_rng(seed)
    height, width = size
    pixels = [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(count)]
    if image_format == "raw":
        return [rgb_to_image(rgb, "rgb8") for rgb in pixels]
    return [rgb_to_compressed(rgb, image_format) for rgb in pixels]


def _wait(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def run_case(probe: _Probe, namespace: str, rate: float, cameras: int, duration: float, frames,
             stamp_base: int):
    time.sleep(1.5)  # a fresh diagnostics message with the counters before this case
    before = probe.counters(namespace, cameras)
    sent: dict[tuple, float] = {}
    period, start, index = 1.0 / rate, time.perf_counter(), 0
    while time.perf_counter() - start < duration:
        due = start + index * period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for camera in range(cameras):
            msg = frames[(index + camera) % len(frames)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_base + index, camera
            msg.header.frame_id = f"cam{camera}"
            sent[(camera, stamp_base + index, camera)] = time.perf_counter()
            probe.publishers[camera].publish(msg)
        index += 1

    def settled():  # every frame answered, or the node's counters account for all it received
        now = probe.counters(namespace, cameras)
        delta = {key: now[key] - before[key] for key in now}
        with probe.lock:
            answered = sum(1 for key in sent if key in probe.detections)
        accounted = delta["published"] + delta["dropped"] + delta["rejected"] + delta["failed"]
        return (delta["received"] and delta["received"] == accounted
                and answered == delta["published"])

    _wait(settled, timeout=30.0)
    time.sleep(1.5)
    after = probe.counters(namespace, cameras)
    delta = {key: after[key] - before[key] for key in after}
    e2e, adapter = [], []
    with probe.lock:
        for key, published_at in sent.items():
            if key in probe.detections and key in probe.reports:
                report = probe.reports[key]
                e2e.append((probe.detections[key] - published_at) * 1e3)
                adapter.append(report["preprocess_ms"] + report["adapt_ms"] + report["predict_ms"])
        answered = sum(1 for key in sent if key in probe.detections)
    e2e_a, adapter_a = np.asarray(e2e), np.asarray(adapter)
    overhead = e2e_a - adapter_a
    return {
        "rate_hz": rate, "cameras": cameras, "sent": len(sent), "answered": answered,
        "node_received": delta["received"], "node_dropped": delta["dropped"],
        "node_rejected": delta["rejected"], "node_failed": delta["failed"],
        "answered_or_dropped_fraction": (answered + delta["dropped"]) / max(len(sent), 1),
        "e2e_ms_p50": float(np.median(e2e_a)) if e2e else None,
        "adapter_ms_p50": float(np.median(adapter_a)) if e2e else None,
        "overhead_ms_p50": float(np.median(overhead)) if e2e else None,
        "overhead_ms_p95": float(np.percentile(overhead, 95)) if e2e else None,
        "overhead_fraction_p50": float(np.median(overhead / adapter_a)) if e2e else None,
    }


def add_parser(kinds) -> None:
    parser = kinds.add_parser("latency", description=__doc__,
                              help="the node over DDS: end-to-end latency, ROS overhead, drops")
    parser.add_argument("--model", type=Path,
                        help="checkpoint (default: untrained default architecture)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--sizes", nargs="+", default=["96x96", "640x480"], help="WIDTHxHEIGHT")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--mode", default="reset", choices=MODES)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--budget-ms", type=float, default=0.0)
    parser.add_argument("--prewarm-ms", type=float, nargs="+", default=[ADAPTATION_DEFAULTS["prewarm_ms"]],
                        help="node parameter deadline.prewarm_ms; several: one node run each, side by side "
                             "(e.g. 5 0: with and without the pre-warm; default %(default)s)")
    parser.add_argument("--input-qos", default="sensor_data", choices=["sensor_data", "reliable"])
    parser.add_argument("--default-dds", action="store_true",
                        help="Fast DDS defaults instead of config/fastdds_large_images.xml "
                             "(to see the difference)")
    parser.add_argument("--out", type=Path, default=Path("results/ros_latency.json"))
    parser.set_defaults(run=main)


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' -> (640, 480); ValueError naming the entry otherwise."""
    width, _, height = text.lower().partition("x")
    try:
        size = int(width), int(height)
    except ValueError:
        raise ValueError(f"--sizes {text!r}: give WIDTHxHEIGHT in pixels, e.g. 640x480") from None
    if min(size) < 1:
        raise ValueError(f"--sizes {text!r}: width and height must be >= 1")
    return size


def checked_sizes(args) -> list[tuple[int, int]]:
    """Every (width, height) of ``--sizes``, once the other arguments and ``--model`` are checked too:
    each size is a node run of its own, and a bad entry found later would throw away the runs before it."""
    sizes = [parse_size(text) for text in args.sizes]
    if min(args.rates) <= 0 or min(args.cameras) < 1 or args.duration <= 0:
        raise ValueError("--rates and --duration must be > 0, --cameras >= 1")
    if not all(0 <= value <= MAX_PREWARM_MS for value in args.prewarm_ms):
        raise ValueError(f"--prewarm-ms must be in 0 .. {MAX_PREWARM_MS:g} ms (0: no pre-warm), got {args.prewarm_ms}")
    if args.model is not None:
        from ..checkpoint import load_checkpoint

        load_checkpoint(args.model)  # CheckpointError: missing, unreadable or not a checkpoint
    return sizes


def main(args) -> int:
    sizes = checked_sizes(args)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))  # not the default domain 0
    if not args.default_dds:
        use_large_image_profile()

    work = Path(tempfile.mkdtemp(prefix="ttt_latency_"))
    model = args.model
    if model is None:
        from ..checkpoint import save_checkpoint
        from ..default_models import RECIPES
        from ..model import build_model

        model = save_checkpoint(build_model(RECIPES["detector"].model), work / "detector.pt")
    results = []
    max_cameras = max(args.cameras)
    for (width, height), prewarm_ms in [(size, p) for size in sizes for p in args.prewarm_ms]:
        name = f"{width}x{height}" + (f"_prewarm{prewarm_ms:g}" if len(args.prewarm_ms) > 1 else "")
        namespace = "/bench_" + name.replace(".", "_")
        log = work / f"node_{name}.log"
        node = _start_node(namespace, max_cameras, args, model, log, prewarm_ms)
        probe = _Probe(namespace, max_cameras)
        try:
            if not _wait(lambda node=node: "active: answering frames" in node.log(), timeout=120):
                raise RuntimeError(f"node did not become active:\n{node.log()}")
            time.sleep(2.0)  # discovery
            frames = _frames((height, width), 8)
            run_case(probe, namespace, 5.0, 1, 2.0, frames, stamp_base=1)  # warm-up, not reported
            for rate in args.rates:
                for cameras in args.cameras:
                    base = 100_000 * (len(results) + 1)
                    row = run_case(probe, namespace, rate, cameras, args.duration, frames, base)
                    row["size"], row["prewarm_ms"] = f"{width}x{height}", prewarm_ms
                    results.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            probe.close()
            node.stop()
    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": args.device, "mode": args.mode, "steps": args.steps, "batch": args.batch,
            "budget_ms": args.budget_ms, "prewarm_ms": args.prewarm_ms, "input_qos": args.input_qos,
            "duration_s": args.duration,
            "cpu_count": os.cpu_count(),
            "model": str(args.model or "untrained default architecture")}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(_table(results))
    return 0


def _table(rows) -> str:
    def number(value, digits=1):
        return "n/a" if value is None else f"{value:.{digits}f}"

    header = ["size", "pre-warm ms", "Hz", "cams", "sent", "answered", "dropped", "answered+dropped",
              "e2e p50 ms", "adapter p50 ms", "overhead p50 ms", "overhead p95 ms",
              "overhead/adapter p50"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        fraction = r["overhead_fraction_p50"]
        cells = [r["size"], f"{r['prewarm_ms']:g}", f"{r['rate_hz']:g}", r["cameras"], r["sent"], r["answered"],
                 r["node_dropped"], f"{100 * r['answered_or_dropped_fraction']:.1f}%",
                 number(r["e2e_ms_p50"]), number(r["adapter_ms_p50"]),
                 number(r["overhead_ms_p50"]), number(r["overhead_ms_p95"]),
                 f"{number(fraction and 100 * fraction)}%"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
