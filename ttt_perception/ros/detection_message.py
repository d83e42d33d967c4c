"""Detections -> a ROS message: ``vision_msgs/Detection2DArray`` where it imports, else a JSON fallback.

vision_msgs: one ``Detection2D`` per box, its header the image header, ``bbox`` centre and size in image
pixels, one ``ObjectHypothesisWithPose`` with the class name as ``class_id`` and the score. Field
layouts differ between vision_msgs releases and both are handled:

* vision_msgs 4.x (Humble and later): ``bbox.center.position.x``, ``results[i].hypothesis.class_id``;
* vision_msgs 3.x (Foxy, Galactic): ``bbox.center.x``, ``results[i].id``.

Fallback where vision_msgs is missing: ``std_msgs/String`` whose ``data`` is a JSON document with
schema ``ttt_perception/Detection2DArray``, version 1 (documented in docs/node.md, "Detections message"):

    {"schema": "ttt_perception/Detection2DArray", "version": 1,
     "header": {"stamp": {"sec": 12, "nanosec": 345}, "frame_id": "camera_optical"},
     "image": {"width": 640, "height": 480},
     "detections": [{"bbox": {"center": {"x": 320.5, "y": 100.0}, "size_x": 40.0, "size_y": 38.0},
                     "results": [{"class_id": "7", "score": 0.91}]}]}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

FALLBACK_SCHEMA = "ttt_perception/Detection2DArray"
FALLBACK_VERSION = 1


def _vision_msgs():
    try:
        from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    except ImportError:
        return None
    return Detection2DArray, Detection2D, ObjectHypothesisWithPose


class DetectionMessageBuilder:
    """Chooses the message type once and builds detection messages of that type.

    ``classes``: optional ``(Detection2DArray, Detection2D, ObjectHypothesisWithPose)`` to use instead of
    importing vision_msgs (``()`` forces the fallback).
    """

    def __init__(self, classes: Sequence[Any] | None = None):
        found = _vision_msgs() if classes is None else (tuple(classes) or None)
        if found is not None:
            self._array_type, self._detection_type, self._hypothesis_type = found
            self.msg_type = self._array_type
            self.uses_vision_msgs = True
            self.description = "vision_msgs/msg/Detection2DArray"
        else:
            from std_msgs.msg import String

            self.msg_type = String
            self.uses_vision_msgs = False
            self.description = (f"std_msgs/msg/String with JSON (schema {FALLBACK_SCHEMA}, version "
                                f"{FALLBACK_VERSION}); vision_msgs is not installed")

    def build(self, header, detections, class_names: Sequence[str], image_size=(0, 0)):
        """Message for ``detections`` (boxes xyxy in image pixels) stamped with ``header``.

        ``image_size``: (width, height) of the input image; used by the JSON fallback only.
        """
        rows = list(_rows(detections, class_names))
        if self.uses_vision_msgs:
            return self._build_vision(header, rows)
        return self._build_json(header, rows, image_size)

    def _build_vision(self, header, rows):
        array = self._array_type()
        array.header = header
        for cx, cy, width, height, class_id, score in rows:
            detection = self._detection_type()
            detection.header = header
            center = detection.bbox.center
            if hasattr(center, "position"):  # vision_msgs >= 4: vision_msgs/Pose2D with a Point2D
                center.position.x, center.position.y = cx, cy
            else:  # vision_msgs 3: geometry_msgs/Pose2D
                center.x, center.y = cx, cy
            detection.bbox.size_x, detection.bbox.size_y = width, height
            hypothesis = self._hypothesis_type()
            if hasattr(hypothesis, "hypothesis"):  # vision_msgs >= 4
                hypothesis.hypothesis.class_id = class_id
                hypothesis.hypothesis.score = score
            else:  # vision_msgs 3
                hypothesis.id = class_id
                hypothesis.score = score
            detection.results.append(hypothesis)
            array.detections.append(detection)
        return array

    def _build_json(self, header, rows, image_size):
        document = {
            "schema": FALLBACK_SCHEMA,
            "version": FALLBACK_VERSION,
            "header": {"stamp": {"sec": int(header.stamp.sec), "nanosec": int(header.stamp.nanosec)},
                       "frame_id": str(header.frame_id)},
            "image": {"width": int(image_size[0]), "height": int(image_size[1])},
            "detections": [
                {"bbox": {"center": {"x": cx, "y": cy}, "size_x": width, "size_y": height},
                 "results": [{"class_id": class_id, "score": score}]}
                for cx, cy, width, height, class_id, score in rows
            ],
        }
        msg = self.msg_type()
        msg.data = json.dumps(document, separators=(",", ":"))
        return msg


def _rows(detections, class_names: Sequence[str]):
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    class_ids = np.asarray(detections.class_ids).reshape(-1)
    for (x0, y0, x1, y1), score, class_index in zip(boxes, scores, class_ids):
        index = int(class_index)
        name = class_names[index] if 0 <= index < len(class_names) else str(index)
        yield ((x0 + x1) / 2.0, (y0 + y1) / 2.0, x1 - x0, y1 - y0, str(name), float(score))


def parse_json_detections(text: str) -> dict[str, Any]:
    """The fallback document as a dict; ValueError when schema or version do not match."""
    document = json.loads(text)
    if document.get("schema") != FALLBACK_SCHEMA:
        raise ValueError(f"schema {document.get('schema')!r} is not {FALLBACK_SCHEMA!r}")
    if int(document.get("version", -1)) != FALLBACK_VERSION:
        raise ValueError(f"version {document.get('version')!r} is not {FALLBACK_VERSION}")
    return document


def detections_summary(msg) -> dict[str, Any]:
    """Either message type as ``{"stamp": (sec, nanosec), "frame_id": str, "detections": [...]}``.

    Each detection is ``{"center": (x, y), "size": (w, h), "class_id": str, "score": float}``; for
    subscribers (tests, tools) that must accept whichever type the node publishes.
    """
    if hasattr(msg, "detections"):
        out = []
        for detection in msg.detections:
            center = detection.bbox.center
            point = center.position if hasattr(center, "position") else center
            result = detection.results[0] if detection.results else None
            hypothesis = getattr(result, "hypothesis", result)
            out.append({"center": (point.x, point.y), "size": (detection.bbox.size_x, detection.bbox.size_y),
                        "class_id": getattr(hypothesis, "class_id", getattr(hypothesis, "id", "")),
                        "score": float(getattr(hypothesis, "score", 0.0))})
        return {"stamp": (msg.header.stamp.sec, msg.header.stamp.nanosec), "frame_id": msg.header.frame_id,
                "detections": out}
    document = parse_json_detections(msg.data)
    stamp = document["header"]["stamp"]
    return {
        "stamp": (stamp["sec"], stamp["nanosec"]),
        "frame_id": document["header"]["frame_id"],
        "detections": [{"center": (d["bbox"]["center"]["x"], d["bbox"]["center"]["y"]),
                        "size": (d["bbox"]["size_x"], d["bbox"]["size_y"]),
                        "class_id": d["results"][0]["class_id"], "score": d["results"][0]["score"]}
                       for d in document["detections"]],
    }
