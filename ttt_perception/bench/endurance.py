"""``bench endurance``: the node under a long load and hostile input, as numbers.

    ttt-perception bench endurance            # 30,000 frames, 1,000 fuzzed messages, 50 cycles
    ttt-perception bench endurance --quick    # the short version (make test runs it)

Four phases, each against the real node in its own process over DDS (loopback, a domain of its own):

* soak: 3 cameras in online mode at ``--rate`` Hz each until ``--frames`` frames were sent. The
  node's resident memory, threads and open files are sampled between chunks; growth is measured
  from the sample after the warm-up (``--warmup`` of the frames) to the end. Every frame sent must
  be answered or counted by the node (dropped, rejected, failed): ``lost`` is what is neither.
* fuzz: ``--fuzz`` malformed Image and CompressedImage messages (random encodings, sizes, steps,
  truncated and oversized data, NaN floats, garbage and truncated JPEG/PNG, large PNGs), half of them
  into a node reading raw images, half into one reading compressed ones (``input.transport``); then
  good frames must still be answered. ``crashes``: a node process died or the adapter raised.
* lifecycle: ``--cycles`` configure/activate/(one frame)/deactivate/cleanup cycles through the
  lifecycle services; memory, threads and open files after each cleanup.
* recovery: a static camera whose lens is covered (flat frames) while the online state is driven
  to collapse on them (learning rate 1, 5 steps) until the automatic reset fires, then the scene
  again with the defaults; and NaN/inf float frames, which the node
  rejects before the model. A non-finite state inside the adapter cannot be reached from any frame
  the node accepts, so the adapter's non-finite guard is exercised in this process: one weight of
  the online state is made NaN (what an overflow leaves) and the next frame must reset it.

Nothing here asserts; ``results/endurance.json`` has the numbers, docs/endurance.md explains them.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..bag.node_process import NodeProcess
from ..choices import ADAPTATION_DEFAULTS as DEFAULTS
from ..choices import GATE_OFF
from ..ros.dds_profile import use_large_image_profile
from .latency import _frames, _Probe, _wait, run_case

FULL = {"frames": 30_000, "rate": 6.0, "fuzz": 1000, "cycles": 50, "chunk_s": 60.0}
QUICK = {"frames": 300, "rate": 5.0, "fuzz": 100, "cycles": 3, "chunk_s": 10.0}
CAMERAS = 3


def process_usage(pid: int) -> dict[str, float]:
    """Resident memory (MiB), threads and open file descriptors of a process (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mib": int(fields["VmRSS"].split()[0]) / 1024.0,
            "threads": int(fields["Threads"]),
            "open_files": len(os.listdir(f"/proc/{pid}/fd"))}


def _start(namespace: str, parameters: dict, work: Path, name: str) -> NodeProcess:
    return NodeProcess(parameters, namespace=namespace, log_path=str(work / f"node_{name}.log")).start()


def _active(node: NodeProcess, timeout: float = 180.0) -> None:
    if not _wait(lambda: "active: answering frames" in node.log() or not node.alive(), timeout):
        raise RuntimeError(f"node did not become active:\n{node.log()[-3000:]}")
    if not node.alive():
        raise RuntimeError(f"node exited:\n{node.log()[-3000:]}")
    time.sleep(2.0)  # discovery


def _camera_values(probe: _Probe, namespace: str, camera: str) -> dict[str, str]:
    with probe.lock:
        return dict(probe.diagnostics.get(f"{namespace}/ttt_perception: camera {camera}", {}))


# ---- soak ------------------------------------------------------------------------------------------

def soak(settings: dict, model: str, work: Path) -> dict[str, Any]:
    namespace = "/endurance_soak"
    node = _start(namespace, {"model.path": model, "cameras": [f"cam{i}" for i in range(CAMERAS)],
                              "adaptation.mode": "online", "input.qos": "reliable"}, work, "soak")
    probe = _Probe(namespace, CAMERAS)
    began = time.monotonic()
    try:
        _active(node)
        frames = _frames((120, 160), 16)
        chunks, samples, sent = [], [], 0
        samples.append({"frames": 0, **process_usage(node.process.pid)})
        while sent < settings["frames"]:
            left_s = (settings["frames"] - sent) / (settings["rate"] * CAMERAS)
            duration = min(settings["chunk_s"], max(left_s, 1.0 / settings["rate"]))
            row = run_case(probe, namespace, settings["rate"], CAMERAS, duration, frames,
                           stamp_base=1 + 100_000 * len(chunks))
            chunks.append(row)
            sent += row["sent"]
            samples.append({"frames": sent, **process_usage(node.process.pid)})
            print(f"soak: {sent} frames sent, {sum(c['answered'] for c in chunks)} answered, "
                  f"rss {samples[-1]['rss_mib']:.1f} MiB", flush=True)
        with probe.lock:
            reports = list(probe.reports.values())
        alive = node.alive()
    finally:
        probe.close()
        node.stop()
    totals = {key: sum(c[key] for c in chunks)
              for key in ("sent", "answered", "node_dropped", "node_rejected", "node_failed")}
    warm = next(s for s in samples if s["frames"] >= settings["warmup"] * sent)
    end = samples[-1]
    stops: dict[str, int] = {}
    for report in reports:
        stops[report["stop_reason"]] = stops.get(report["stop_reason"], 0) + 1
    return {
        "cameras": CAMERAS, "rate_hz_per_camera": settings["rate"], "frame_size": "160x120",
        **totals,
        "lost": totals["sent"] - totals["answered"] - totals["node_dropped"] - totals["node_rejected"]
        - totals["node_failed"],
        "node_alive": alive, "wall_s": time.monotonic() - began,
        "warm": warm, "end": end,
        "rss_growth_pct": 100.0 * (end["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"],
        "rss_max_after_warmup_mib": max(s["rss_mib"] for s in samples if s["frames"] >= warm["frames"]),
        "threads_growth": end["threads"] - warm["threads"],
        "open_files_growth": end["open_files"] - warm["open_files"],
        "deadline_met_fraction": float(np.mean([r["deadline_met"] for r in reports])) if reports else None,
        "mean_steps": float(np.mean([r["steps_taken"] for r in reports])) if reports else None,
        "stop_reasons": stops,
        "samples": samples,
    }


# ---- fuzz ------------------------------------------------------------------------------------------

_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2, "rgb16": 6,
              "bgr16": 6, "32FC1": 4, "32FC3": 12, "yuv422": 2, "bayer_rggb8": 1, "8UC3": 3,
              "16UC1": 2, "": 3, "no_such_encoding": 3}
_FORMATS = ("jpeg", "png", "rgb8; jpeg compressed bgr8", "bgr8; png compressed", "", "tiff",
            "no_such_format")
MAX_FUZZ_BYTES = 4_000_000


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def fuzzed_image(rng):
    """A sensor_msgs/Image with random, mostly inconsistent fields; and what was done to it."""
    from sensor_msgs.msg import Image

    encoding = _pick(rng, list(_ENCODINGS))
    bytes_per_pixel = _ENCODINGS[encoding]
    height = int(_pick(rng, [0, 1, 2, rng.integers(1, 700), 5000]))
    width = int(_pick(rng, [0, 1, 3, rng.integers(1, 700), 5000]))
    exact = width * bytes_per_pixel
    step = int(_pick(rng, [exact, exact, max(exact - 1, 0), exact + int(rng.integers(1, 64)), 0,
                           rng.integers(0, 20000)]))
    size = step * height
    how = _pick(rng, ["exact", "exact", "truncated", "oversized", "empty"])
    length = {"exact": size, "truncated": int(rng.integers(0, size)) if size else 0,
              "oversized": size + int(rng.integers(1, 100_000)), "empty": 0}[how]
    length = min(length, MAX_FUZZ_BYTES)
    data = rng.integers(0, 256, size=length, dtype=np.uint8)
    if encoding.startswith("32FC") and length >= 4 and rng.random() < 0.5:
        floats = data[: length - length % 4].view(np.float32)
        floats[:: max(1, len(floats) // 7)] = _pick(rng, [np.nan, np.inf, -np.inf])
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=int(rng.random() < 0.2),
                step=step)
    msg.data = data.tobytes()
    return msg, f"image {encoding or '(empty)'} {width}x{height} step {step} data {how} {length} B"


def _encoded(rng, fmt: str, size=None, mode="RGB") -> bytes:
    from PIL import Image as PILImage

    width, height = size or (int(rng.integers(1, 400)), int(rng.integers(1, 400)))
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    image = PILImage.fromarray(pixels) if mode == "RGB" else PILImage.new(mode, (width, height))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def fuzzed_compressed(rng):
    """A sensor_msgs/CompressedImage with random format and damaged or hostile data."""
    from sensor_msgs.msg import CompressedImage

    fmt = _pick(rng, list(_FORMATS))
    how = _pick(rng, ["jpeg", "png", "truncated_jpeg", "truncated_png", "jpeg_header_garbage",
                      "garbage", "empty", "large_garbage", "large_png"])
    if how in ("jpeg", "truncated_jpeg", "jpeg_header_garbage"):
        data = _encoded(rng, "JPEG")
    elif how in ("png", "truncated_png"):
        data = _encoded(rng, "PNG")
    elif how == "large_png":  # 6000x6000 pixels in a few kB: a decompression bomb of moderate size
        data = _encoded(rng, "PNG", size=(6000, 6000), mode="L")
    else:
        data = b""
    if how.startswith("truncated"):
        data = data[: int(rng.integers(0, max(len(data) - 1, 1)))]
    elif how == "jpeg_header_garbage":
        data = data[:20] + rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    elif how == "garbage":
        data = rng.integers(0, 256, size=int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
    elif how == "large_garbage":
        data = rng.integers(0, 256, size=1_000_000, dtype=np.uint8).tobytes()
    msg = CompressedImage(format=fmt)
    msg.data = data
    return msg, f"compressed '{fmt}' {how} {len(data)} B"


def fuzz(settings: dict, model: str, work: Path, seed: int = 0) -> dict[str, Any]:
    """Half the messages (Image) into a node reading raw images, the other half (CompressedImage) into
    one reading compressed images: a camera reads one of the two topics (``input.transport``)."""
    rng = np.random.default_rng(seed)
    count = settings["fuzz"]
    halves = {transport: _fuzz_node(transport, number, model, work, rng)
              for transport, number in (("raw", count - count // 2), ("compressed", count // 2))}
    parts = list(halves.values())
    reasons: dict[str, int] = {}
    for part in parts:
        for reason, number in part["rejected_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + number
    totals = {key: sum(part[key] for part in parts)
              for key in ("messages", "node_received", "answered", "dropped", "rejected", "adapter_failures",
                          "crashes")}
    return {
        **totals, "by_kind": {"image": halves["raw"]["messages"], "compressed": halves["compressed"]["messages"]},
        "rejected_by_reason": dict(sorted(reasons.items())),
        "good_frames_after": {key: sum(part["good_frames_after"][key] for part in parts)
                              for key in ("sent", "answered")},
        "node_alive": all(part["node_alive"] for part in parts),
        "by_transport": halves,
    }


def _fuzz_node(transport: str, count: int, model: str, work: Path, rng) -> dict[str, Any]:
    """``count`` fuzzed messages of the kind a node with this ``input.transport`` reads, then good frames."""
    namespace = f"/endurance_fuzz_{transport}"
    node = _start(namespace, {"model.path": model, "cameras": ["cam0"], "adaptation.mode": "online",
                              "input.qos": "reliable", "input.transport": transport}, work, f"fuzz_{transport}")
    probe = _Probe(namespace, 1, transport=transport)
    make = fuzzed_image if transport == "raw" else fuzzed_compressed
    try:
        _active(node)
        before = probe.counters(namespace, 1)
        for index in range(count):
            msg, _ = make(rng)
            msg.header.stamp.sec, msg.header.frame_id = 500_000 + index, "fuzz"
            probe.publishers[0].publish(msg)
            time.sleep(0.05)

        def settled():
            now = probe.counters(namespace, 1)
            delta = {key: now[key] - before[key] for key in now}
            return delta["received"] >= count and delta["received"] == (
                delta["published"] + delta["dropped"] + delta["rejected"] + delta["failed"])

        _wait(settled, timeout=120.0)
        time.sleep(1.5)
        after = probe.counters(namespace, 1)
        delta = {key: after[key] - before[key] for key in after}
        reasons = {key[len("rejected."):]: int(value)
                   for key, value in _camera_values(probe, namespace, "cam0").items()
                   if key.startswith("rejected.")}
        good = run_case(probe, namespace, 5.0, 1, 3.0,
                        _frames((120, 160), 4, image_format="raw" if transport == "raw" else "jpeg"),
                        stamp_base=900_000)
        alive = node.alive()
        usage = process_usage(node.process.pid) if alive else None
    finally:
        probe.close()
        node.stop()
    return {
        "messages": count, "node_received": delta["received"],
        "answered": delta["published"], "dropped": delta["dropped"], "rejected": delta["rejected"],
        "rejected_by_reason": reasons, "adapter_failures": delta["failed"],
        "crashes": int(not alive) + delta["failed"],
        "good_frames_after": {"sent": good["sent"], "answered": good["answered"]},
        "node_alive": alive, "usage_after": usage,
    }


# ---- lifecycle -------------------------------------------------------------------------------------

def lifecycle(settings: dict, model: str, work: Path) -> dict[str, Any]:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    namespace = "/endurance_lifecycle"
    node = _start(namespace, {"model.path": model, "cameras": ["cam0"], "autostart": False},
                  work, "lifecycle")
    probe = _Probe(namespace, 1)
    client = probe.node.create_client(ChangeState, f"{namespace}/ttt_perception/change_state")
    frames = _frames((120, 160), 2)

    def change(transition: int) -> bool:
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        if not _wait(future.done, timeout=120.0):
            raise RuntimeError(f"no answer to lifecycle transition {transition}")
        return bool(future.result().success)

    cycles = []
    began = time.monotonic()
    try:
        if not _wait(client.service_is_ready, timeout=120.0):
            raise RuntimeError(f"lifecycle services did not appear:\n{node.log()[-3000:]}")
        usage_start = process_usage(node.process.pid)
        for cycle in range(settings["cycles"]):
            ok = change(Transition.TRANSITION_CONFIGURE) and change(Transition.TRANSITION_ACTIVATE)
            time.sleep(0.5)
            answered = run_case(probe, namespace, 5.0, 1, 1.0, frames,
                                stamp_base=1 + 1000 * cycle)["answered"] if ok else 0
            ok = ok and change(Transition.TRANSITION_DEACTIVATE) and change(Transition.TRANSITION_CLEANUP)
            cycles.append({"cycle": cycle + 1, "ok": ok, "answered": answered,
                           **process_usage(node.process.pid)})
        alive = node.alive()
    finally:
        probe.close()
        node.stop()
    reference = cycles[min(4, len(cycles) - 1)]  # after the first allocations have settled
    end = cycles[-1]
    return {
        "cycles": len(cycles), "all_ok": all(c["ok"] for c in cycles),
        "cycles_with_an_answer": sum(1 for c in cycles if c["answered"] > 0),
        "node_alive": alive, "wall_s": time.monotonic() - began, "usage_start": usage_start,
        "reference_cycle": reference["cycle"], "reference": reference, "end": end,
        "rss_growth_pct": 100.0 * (end["rss_mib"] - reference["rss_mib"]) / reference["rss_mib"],
        "threads_growth": end["threads"] - reference["threads"],
        "open_files_growth": end["open_files"] - reference["open_files"],
        "per_cycle": cycles,
    }


# ---- recovery --------------------------------------------------------------------------------------

def _set_parameters(probe: _Probe, node_name: str, values: dict) -> bool:
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = probe.node.create_client(SetParameters, f"{node_name}/set_parameters")
    try:
        if not _wait(client.service_is_ready, timeout=60.0):
            return False
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        future = client.call_async(request)
        return _wait(future.done, timeout=60.0) and all(r.successful for r in future.result().results)
    finally:
        probe.node.destroy_client(client)


def _lockstep(probe: _Probe, msg, stamp: int, timeout: float = 30.0) -> dict | None:
    """Publish one frame and wait for its uncertainty report."""
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp, 0
    probe.publishers[0].publish(msg)
    key = (0, stamp, 0)
    if not _wait(lambda: key in probe.reports, timeout):
        return None
    with probe.lock:
        return probe.reports[key]


def recovery(model: str, work: Path) -> dict[str, Any]:
    from ..data import make_detection_frames
    from ..ros.image_conversion import rgb_to_image

    namespace = "/endurance_recovery"
    node_name = f"{namespace}/ttt_perception"
    # without the shift gate: this phase is about the health check's reset, not the gate's
    node = _start(namespace, {"model.path": model, "cameras": ["cam0"], "adaptation.mode": "online",
                              **{f"adaptation.{k}": v for k, v in GATE_OFF.items()},
                              "deadline.budget_ms": 0.0, "input.qos": "reliable"}, work, "recovery")
    probe = _Probe(namespace, 1)
    scene = rgb_to_image(make_detection_frames("test", 1, seed=3).images[0], "rgb8")
    scene.header.frame_id = "cam0"
    # the lens covered: a flat frame, whose rotations are all alike (rotation loss ln 4 for any
    # weights), adapted on with learning rate 1 so that the online state collapses too
    covered = rgb_to_image(np.full((96, 96, 3), 128, np.uint8), "rgb8")
    covered.header.frame_id = "cam0"
    phases: dict[str, list] = {"before": [], "collapse": [], "after": []}
    stamp = 1
    try:
        _active(node)
        for _ in range(20):
            phases["before"].append(_lockstep(probe, scene, stamp))
            stamp += 1
        _set_parameters(probe, node_name, {"adaptation.learning_rate": 1.0, "adaptation.max_steps": 5})
        for _ in range(40):
            report = _lockstep(probe, covered, stamp)
            stamp += 1
            phases["collapse"].append(report)
            if report and report.get("auto_reset"):
                break
        _set_parameters(probe, node_name, {"adaptation.learning_rate": DEFAULTS["learning_rate"],
                                           "adaptation.max_steps": DEFAULTS["max_steps"]})
        for _ in range(20):
            phases["after"].append(_lockstep(probe, scene, stamp))
            stamp += 1
        nan_frames = []
        for value in (np.nan, np.inf):
            from sensor_msgs.msg import Image

            rgb = np.full((48, 64, 3), 0.5, np.float32)
            rgb[10, 10] = value
            msg = Image(height=48, width=64, encoding="32FC3", step=64 * 12, data=rgb.tobytes())
            msg.header.frame_id = "cam0"
            msg.header.stamp.sec = stamp
            stamp += 1
            probe.publishers[0].publish(msg)
            nan_frames.append(str(value))
        time.sleep(2.0)
        rejected = {key: value for key, value in _camera_values(probe, namespace, "cam0").items()
                    if key.startswith("rejected.")}
        answered_after_nan = _lockstep(probe, scene, stamp) is not None
        alive = node.alive()
    finally:
        probe.close()
        node.stop()

    def losses(reports):
        return [r["ssl_loss_before"] for r in reports if r]

    collapse = [r for r in phases["collapse"] if r]
    reset = next((r["auto_reset"] for r in collapse if r.get("auto_reset")), "")
    before, after = losses(phases["before"]), losses(phases["after"])
    return {
        "collapse": {
            "ssl_loss_before_mean": float(np.mean(before[5:])),
            "ssl_loss_at_collapse_max": max(losses(collapse)) if collapse else None,
            "frames_until_auto_reset": len(collapse) if reset else None,
            "auto_reset": reset,
            "ssl_loss_after_mean": float(np.mean(after[2:])) if after else None,
            "recovered": bool(reset) and bool(after) and
            abs(float(np.mean(after[2:])) - float(np.mean(before[5:]))) < 0.15,
        },
        "nan_frames": {"sent": nan_frames, "rejected": rejected,
                       "answered_after": answered_after_nan, "node_alive": alive},
        "non_finite_state": _non_finite_state(),
    }


def _non_finite_state() -> dict[str, Any]:
    """The adapter's guard: an online state holding a NaN weight is reset on the next frame."""
    import torch

    from ..adaptation_config import AdaptationConfig
    from ..adapter import TestTimeAdapter
    from ..data import make_detection_frames
    from ..default_models import load_default_model

    adapter = TestTimeAdapter(load_default_model("detector", torch.device("cpu")),
                              AdaptationConfig(mode="online", **GATE_OFF),  # steps from frame one
                              device="cpu")
    frames = make_detection_frames("test", 3, seed=4).images
    adapter.process(frames[0], stream="cam")
    with torch.no_grad():
        next(iter(adapter.model.extractor.parameters())).view(-1)[0] = float("nan")
    poisoned = adapter.process(frames[1], stream="cam").report
    healthy = adapter.process(frames[2], stream="cam").report
    return {"auto_reset": poisoned.auto_reset,
            "next_frame_finite": all(math.isfinite(v) for v in
                                     (healthy.entropy, healthy.ssl_loss_before, healthy.ssl_loss_after))}


# ---- command ---------------------------------------------------------------------------------------

def add_parser(kinds) -> None:
    parser = kinds.add_parser("endurance", description=__doc__,
                              help="the node: soak, fuzzed input, lifecycle cycles, automatic reset")
    parser.add_argument("--quick", action="store_true", help="the short version (make test)")
    parser.add_argument("--frames", type=int, help=f"soak frames, all cameras (default {FULL['frames']})")
    parser.add_argument("--rate", type=float, help=f"soak frames per second per camera (default {FULL['rate']:g})")
    parser.add_argument("--fuzz", type=int, help=f"fuzzed messages (default {FULL['fuzz']})")
    parser.add_argument("--cycles", type=int, help=f"lifecycle cycles (default {FULL['cycles']})")
    parser.add_argument("--warmup", type=float, default=0.1,
                        help="fraction of the soak's frames before memory is measured (default 0.1)")
    parser.add_argument("--phases", nargs="+", default=["soak", "fuzz", "lifecycle", "recovery"],
                        choices=["soak", "fuzz", "lifecycle", "recovery"])
    parser.add_argument("--model", default="", help="checkpoint (default: the packaged default detector)")
    parser.add_argument("--out", type=Path, help="JSON (default results/endurance.json, "
                                                 "results/tmp/endurance_quick.json with --quick)")
    parser.set_defaults(run=main)


def main(args) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    use_large_image_profile()
    settings = dict(QUICK if args.quick else FULL, warmup=args.warmup)
    for key in ("frames", "rate", "fuzz", "cycles"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    out = args.out or Path("results/tmp/endurance_quick.json" if args.quick else "results/endurance.json")
    work = Path(tempfile.mkdtemp(prefix="ttt_endurance_"))
    began = time.monotonic()
    payload: dict[str, Any] = {"settings": settings, "cpu_count": os.cpu_count(),
                               "model": args.model or "packaged default detector"}
    try:
        phases = {"soak": lambda: soak(settings, args.model, work),
                  "fuzz": lambda: fuzz(settings, args.model, work),
                  "lifecycle": lambda: lifecycle(settings, args.model, work),
                  "recovery": lambda: recovery(args.model, work)}
        for name in args.phases:
            print(f"{name} ...", flush=True)
            payload[name] = phases[name]()
            print(json.dumps({k: v for k, v in payload[name].items()
                              if k not in ("samples", "per_cycle")}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    payload["wall_s"] = time.monotonic() - began
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    print(summary(payload))
    print(f"json: {out}")
    return 0


def _usage_change(phase: dict, reference: str) -> str:
    return (f"rss {phase[reference]['rss_mib']:.1f} -> {phase['end']['rss_mib']:.1f} MiB "
            f"({phase['rss_growth_pct']:+.2f}%), threads {phase['threads_growth']:+d}, "
            f"open files {phase['open_files_growth']:+d}")


def summary(payload: dict) -> str:
    """The numbers docs/endurance.md quotes, one line each."""
    lines = []
    if "soak" in payload:
        s = payload["soak"]
        lines.append(f"soak: {s['sent']} frames from {s['cameras']} cameras at {s['rate_hz_per_camera']:g} Hz "
                     f"in {s['wall_s'] / 60:.1f} min: {s['answered']} answered, {s['node_dropped']} dropped, "
                     f"{s['lost']} lost; {_usage_change(s, 'warm')}")
    if "fuzz" in payload:
        f = payload["fuzz"]
        lines.append(f"fuzz: {f['messages']} messages {f['by_kind']}: {f['rejected']} rejected, "
                     f"{f['answered']} answered, {f['dropped']} dropped, {f['crashes']} crashes; "
                     f"then {f['good_frames_after']['answered']}/{f['good_frames_after']['sent']} good frames "
                     f"answered")
    if "lifecycle" in payload:
        c = payload["lifecycle"]
        lines.append(f"lifecycle: {c['cycles']} cycles, all ok {c['all_ok']}, "
                     f"{c['cycles_with_an_answer']} answered a frame; from cycle {c['reference_cycle']}: "
                     f"{_usage_change(c, 'reference')}")
    if "recovery" in payload:
        r = payload["recovery"]
        k = r["collapse"]
        lines.append(f"recovery: rotation loss {k['ssl_loss_before_mean']:.3f} -> up to "
                     f"{k['ssl_loss_at_collapse_max']:.3f} under collapse; automatic reset after "
                     f"{k['frames_until_auto_reset']} frames ({k['auto_reset']}); after it "
                     f"{k['ssl_loss_after_mean']:.3f}, recovered {k['recovered']}; NaN/inf frames rejected "
                     f"{r['nan_frames']['rejected']}, answered after {r['nan_frames']['answered_after']}; "
                     f"NaN state: '{r['non_finite_state']['auto_reset']}', next frame finite "
                     f"{r['non_finite_state']['next_frame_finite']}")
    return "\n".join(lines)
