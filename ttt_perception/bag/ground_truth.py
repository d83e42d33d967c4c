"""Ground truth of a flight bag: one ``std_msgs/String`` per camera frame, a JSON document (schema v1).

Topic ``<camera>/ground_truth``, same stamp (header and bag time) as the image it describes::

    {"schema": "ttt_perception/GroundTruth", "version": 1,
     "header": {"stamp": {"sec": 1700000000, "nanosec": 100000000}, "frame_id": "camera_optical_frame"},
     "image_topic": "/camera/image", "image": {"width": 96, "height": 96},
     "frame_index": 1, "time_s": 0.1,
     "segment": {"index": 0, "name": "clear", "condition": "clear", "severity": 0},
     "objects": [{"class_id": "7", "box_xyxy": [12.0, 30.0, 31.0, 58.0]}]}

``box_xyxy`` is in image pixels, pixel edges (x_max = last ink column + 1); ``class_id`` is the class
name as the detector publishes it. A frame is identified by (frame_id, stamp), which survives topic
remapping and namespaces.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .rosbag_io import ns_to_stamp, stamp_to_ns

SCHEMA = "ttt_perception/GroundTruth"
VERSION = 1
TOPIC_SUFFIX = "ground_truth"


@dataclass
class GroundTruthFrame:
    stamp_ns: int
    frame_id: str
    image_topic: str
    width: int
    height: int
    frame_index: int
    time_s: float
    segment_index: int
    segment: str
    condition: str
    severity: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (k, 4) xyxy px
    class_ids: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.frame_id, self.stamp_ns)


def encode(frame: GroundTruthFrame) -> str:
    sec, nanosec = ns_to_stamp(frame.stamp_ns)
    document: dict[str, Any] = {
        "schema": SCHEMA, "version": VERSION,
        "header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame.frame_id},
        "image_topic": frame.image_topic,
        "image": {"width": int(frame.width), "height": int(frame.height)},
        "frame_index": int(frame.frame_index), "time_s": round(float(frame.time_s), 6),
        "segment": {"index": int(frame.segment_index), "name": frame.segment, "condition": frame.condition,
                    "severity": int(frame.severity)},
        "objects": [{"class_id": str(c), "box_xyxy": [round(float(v), 3) for v in box]}
                    for box, c in zip(np.asarray(frame.boxes).reshape(-1, 4), frame.class_ids)],
    }
    return json.dumps(document, separators=(",", ":"))


def decode(text: str) -> GroundTruthFrame:
    """The frame of one ground-truth document; ValueError when it is not schema v1."""
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document")
    if int(document.get("version", -1)) != VERSION:
        raise ValueError(f"{SCHEMA} version {document.get('version')!r} is not {VERSION}")
    header, segment = document["header"], document["segment"]
    objects = document.get("objects", [])
    boxes = np.array([o["box_xyxy"] for o in objects], np.float32).reshape(-1, 4)
    return GroundTruthFrame(
        stamp_ns=stamp_to_ns(header["stamp"]["sec"], header["stamp"]["nanosec"]), frame_id=header["frame_id"],
        image_topic=document.get("image_topic", ""), width=int(document["image"]["width"]),
        height=int(document["image"]["height"]), frame_index=int(document.get("frame_index", -1)),
        time_s=float(document.get("time_s", 0.0)), segment_index=int(segment["index"]), segment=segment["name"],
        condition=segment.get("condition", segment["name"]), severity=int(segment.get("severity", 0)),
        boxes=boxes, class_ids=tuple(str(o["class_id"]) for o in objects))


def is_ground_truth(text: str) -> bool:
    return f'"schema":"{SCHEMA}"' in text[:64] or f'"schema": "{SCHEMA}"' in text[:64]


def labels_as_indices(class_ids: Sequence[str], vocabulary: dict[str, int]) -> np.ndarray:
    """Class names -> integer indices, growing ``vocabulary`` with names it has not seen."""
    return np.array([vocabulary.setdefault(str(c), len(vocabulary)) for c in class_ids], np.int64)
