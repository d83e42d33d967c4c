"""``bag make``: a synthetic flight as a rosbag2 file.

Per camera: test-split frames of ``data.make_detection_frames`` (digits and backgrounds never seen in
training), corrupted along the environment schedule (``schedule.py``) with ``corruptions.corrupt``,
written as ``sensor_msgs/Image`` (``encoding``, default rgb8) on ``/<camera>/image`` (or
``sensor_msgs/CompressedImage`` on ``/<camera>/image/compressed``) at a fixed rate, plus the ground truth of
each frame on ``/<camera>/ground_truth`` (``ground_truth.py``). Bag time and header stamps agree, as in a bag recorded
with ``use_sim_time``; stamps start at ``start_time`` (seconds). The same arguments give the same bag.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..corruptions import corrupt
from ..data import CLASS_NAMES, make_detection_frames
from . import ground_truth
from .rosbag_io import FLIGHT_CUSTOM_DATA_KEY, jazzy_typestore, ns_to_stamp, open_writer, read_custom_data
from .schedule import CLEAR, DEFAULT_SCHEDULE, parse_schedule, plan_frames, schedule_text

_LOG = logging.getLogger(__name__)

IMAGE_FORMATS = ("raw", "jpeg", "png")
DEFAULT_START_TIME = 1_700_000_000.0  # stamps of the first frame, seconds (fixed: bags are reproducible)
_CAMERA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass
class FlightInfo:
    path: Path
    frames_per_camera: int
    duration_s: float
    topics: dict[str, str] = field(default_factory=dict)  # topic -> message type
    segments: list[str] = field(default_factory=list)


def camera_topics(camera: str, image_format: str = "raw") -> dict[str, str]:
    base = "/" + camera.strip("/")
    return {"image": f"{base}/image" + ("" if image_format == "raw" else "/compressed"),
            "ground_truth": f"{base}/{ground_truth.TOPIC_SUFFIX}",
            "frame_id": camera.strip("/").replace("/", "_") + "_optical_frame"}


def make_flight(path, *, schedule: str = DEFAULT_SCHEDULE, rate_hz: float = 10.0,
                cameras: Sequence[str] = ("camera",), size: int = 96, image_format: str = "raw",
                seed: int = 0, start_time: float = DEFAULT_START_TIME, storage: str = "mcap",
                jpeg_quality: int = 90, encoding: str = "rgb8") -> FlightInfo:
    """Write a flight bag to the new directory ``path`` and describe it."""
    segments = parse_schedule(schedule)
    plan = plan_frames(segments, rate_hz)
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if not cameras:
        raise ValueError("at least one camera is needed")
    for camera in cameras:
        if not _CAMERA_NAME.match(camera.strip("/")):
            raise ValueError(f"camera name {camera!r} is not a valid ROS name")
    if len(set(cameras)) != len(cameras):
        raise ValueError(f"camera names must be unique, got {list(cameras)}")
    if start_time < 0:
        raise ValueError(f"start time must be >= 0 s, got {start_time}")

    typestore = jazzy_typestore()
    if image_format == "raw":  # refuse an encoding before anything is written
        _raw_image(typestore, np.zeros((2, 2, 3), np.uint8), _header(typestore, 0, "check"), encoding)
    image_type = "sensor_msgs/msg/Image" if image_format == "raw" else "sensor_msgs/msg/CompressedImage"
    start_ns = int(round(start_time * 1e9))
    period_ns = 1e9 / rate_hz
    info = FlightInfo(Path(path), len(plan), len(plan) / rate_hz, segments=[s.name for s in segments])
    writer = open_writer(path, storage)
    try:
        writer.set_custom_data(FLIGHT_CUSTOM_DATA_KEY, json.dumps({
            "schedule": schedule_text(segments), "rate_hz": rate_hz, "cameras": list(cameras), "size": size,
            "image_format": image_format, "encoding": encoding if image_format == "raw" else None, "seed": seed,
            "start_time": start_time, "frames_per_camera": len(plan),
            "ground_truth": f"{ground_truth.SCHEMA} v{ground_truth.VERSION}"}))
        connections = []
        for camera_index, camera in enumerate(cameras):
            topics = camera_topics(camera, image_format)
            image_conn = writer.add_connection(topics["image"], image_type, typestore=typestore)
            gt_conn = writer.add_connection(topics["ground_truth"], "std_msgs/msg/String", typestore=typestore)
            info.topics[topics["image"]] = image_type
            info.topics[topics["ground_truth"]] = "std_msgs/msg/String"
            frames = make_detection_frames("test", len(plan), size=size, seed=_scene_seed(seed, camera_index))
            connections.append((camera_index, topics, image_conn, gt_conn, frames))
        for planned in plan:
            stamp_ns = start_ns + int(round(planned.index * period_ns))
            for camera_index, topics, image_conn, gt_conn, frames in connections:
                rgb = frames.images[planned.index]
                if planned.condition != CLEAR:
                    rgb = corrupt(rgb, planned.condition, planned.severity,
                                  seed=_corruption_seed(seed, camera_index, planned.index))
                header = _header(typestore, stamp_ns, topics["frame_id"])
                if image_format == "raw":
                    message = _raw_image(typestore, rgb, header, encoding)
                else:
                    message = _compressed_image(typestore, rgb, header, image_format, jpeg_quality)
                writer.write(image_conn, stamp_ns, typestore.serialize_cdr(message, image_type))
                truth = ground_truth.GroundTruthFrame(
                    stamp_ns=stamp_ns, frame_id=topics["frame_id"], image_topic=topics["image"], width=rgb.shape[1],
                    height=rgb.shape[0], frame_index=planned.index, time_s=planned.time_s,
                    segment_index=planned.segment_index, segment=planned.segment.name, condition=planned.condition,
                    severity=planned.severity, boxes=frames.boxes[planned.index],
                    class_ids=tuple(CLASS_NAMES[int(c)] for c in frames.labels[planned.index]))
                text = typestore.types["std_msgs/msg/String"](data=ground_truth.encode(truth))
                writer.write(gt_conn, stamp_ns, typestore.serialize_cdr(text, "std_msgs/msg/String"))
    except BaseException:
        writer.close()
        raise
    writer.close()
    _LOG.info("wrote %s: %d frames x %d camera(s), %.1f s", path, len(plan), len(cameras), info.duration_s)
    return info


def read_flight_info(path) -> dict | None:
    """The flight parameters stored in a bag made by ``make_flight`` (None for other bags)."""
    text = read_custom_data(path, FLIGHT_CUSTOM_DATA_KEY)
    return json.loads(text) if text else None


def _scene_seed(seed: int, camera_index: int) -> int:
    return int(np.random.SeedSequence([seed, camera_index, 1]).generate_state(1)[0])


def _corruption_seed(seed: int, camera_index: int, frame_index: int) -> int:
    return int(np.random.SeedSequence([seed, camera_index, frame_index, 2]).generate_state(1)[0])


def _header(typestore, stamp_ns: int, frame_id: str):
    sec, nanosec = ns_to_stamp(stamp_ns)
    time_type = typestore.types["builtin_interfaces/msg/Time"]
    return typestore.types["std_msgs/msg/Header"](stamp=time_type(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _raw_image(typestore, rgb: np.ndarray, header, encoding: str):
    from ..ros.image_conversion import rgb_to_image  # no rclpy: fills the rosbags message given

    empty = typestore.types["sensor_msgs/msg/Image"](header=header, height=0, width=0, encoding="", is_bigendian=0,
                                                     step=0, data=np.zeros(0, np.uint8))
    return rgb_to_image(rgb, encoding, header=header, msg=empty)


def _compressed_image(typestore, rgb: np.ndarray, header, image_format: str, quality: int):
    from ..ros.image_conversion import rgb_to_compressed

    empty = typestore.types["sensor_msgs/msg/CompressedImage"](header=header, format="", data=np.zeros(0, np.uint8))
    return rgb_to_compressed(rgb, image_format, header=header, quality=quality, msg=empty)
