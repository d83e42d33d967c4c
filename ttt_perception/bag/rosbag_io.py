"""Small helpers around ``rosbags``: the Jazzy typestore, writers, header parsing, bag-defined types."""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

STORAGES = ("mcap", "sqlite3")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# rosbag2 metadata version written by Jazzy's rosbag2 (Jazzy reads 1..8; version 9 is Kilted's).
BAG_VERSION = 8


def jazzy_typestore():
    """A fresh typestore with the ROS 2 Jazzy message types (callers may register more into it)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def open_writer(path, storage: str = "mcap"):
    """An opened ``rosbags.rosbag2.Writer`` for a new bag directory ``path``."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    writer = Writer(Path(path), version=BAG_VERSION, storage_plugin=plugin)
    writer.open()
    return writer


def stamp_to_ns(sec: int, nanosec: int) -> int:
    return int(sec) * 1_000_000_000 + int(nanosec)


def ns_to_stamp(ns: int) -> tuple[int, int]:
    return int(ns) // 1_000_000_000, int(ns) % 1_000_000_000


def read_header(raw) -> tuple[int, str]:
    """(stamp in ns, frame_id) of a CDR-serialised message whose first field is a std_msgs/Header.

    Reads the few header bytes only, so large images are not deserialised. ``raw`` includes the
    4-byte CDR encapsulation header, as stored in rosbag2 files and as rclpy's raw publish expects.
    """
    data = memoryview(raw)
    if len(data) < 16:
        raise ValueError(f"message of {len(data)} bytes is too short for a header")
    little = data[1] & 1  # encapsulation 0x0001: CDR little endian, 0x0000: big endian
    order = "<" if little else ">"
    sec, nanosec, length = struct.unpack_from(order + "iII", data, 4)
    if length == 0 or 16 + length - 1 > len(data):
        raise ValueError("header frame_id runs past the end of the message")
    frame_id = bytes(data[16:16 + length - 1]).decode("utf-8", errors="replace")
    return stamp_to_ns(sec, nanosec), frame_id


def register_connection_types(typestore, connections: Iterable) -> None:
    """Register the message definitions stored in a bag (for types the Jazzy store lacks, e.g. vision_msgs)."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    for connection in connections:
        if connection.msgtype in typestore.fielddefs:
            continue
        msgdef = getattr(connection, "msgdef", None)
        text = getattr(msgdef, "data", "") if msgdef is not None else ""
        if not text:
            continue
        if text.startswith("=" * 80 + "\nIDL: "):
            types = get_types_from_idl(text)
        else:
            types = get_types_from_msg(text, connection.msgtype)
        typestore.register(types)


def ensure_type(typestore, msgtype: str, search_path: str | None = None) -> bool:
    """Make ``msgtype`` known to ``typestore``, from the ``.msg`` files of the ROS installation if needed.

    Types of the Jazzy store are known already; others (vision_msgs on a robot, say) are read from
    ``<prefix>/share/<package>/msg/<Name>.msg`` under ``AMENT_PREFIX_PATH`` and this interpreter's
    prefix, with their dependencies.
    Returns whether the type is known afterwards.
    """
    prefixes = [p for p in (search_path or os.environ.get("AMENT_PREFIX_PATH", "")).split(os.pathsep) if p]
    if search_path is None and sys.prefix not in prefixes:
        prefixes.append(sys.prefix)  # a venv with ROS from wheels (and vision_msgs built into it)
    return _load_type(typestore, msgtype, prefixes, depth=0)


def _load_type(typestore, name: str, prefixes: list, depth: int) -> bool:
    from rosbags.typesys import get_types_from_msg

    if name in typestore.fielddefs:
        return True
    if depth > 16 or "/msg/" not in name:
        return False
    package, _, short = name.partition("/msg/")
    for prefix in prefixes:
        candidate = Path(prefix) / "share" / package / "msg" / f"{short}.msg"
        if candidate.is_file():
            types = get_types_from_msg(candidate.read_text(), name)
            break
    else:
        return False
    for dependency in _referenced_types(types):
        if dependency not in types and not _load_type(typestore, dependency, prefixes, depth + 1):
            return False
    typestore.register(types)
    return True


def _referenced_types(types) -> list:
    """Names of the message types referenced by the fields of parsed ``types`` (rosbags' field format)."""
    names = []
    for _, fields in types.values():
        for _, (kind, spec) in fields:
            if kind in (3, 4):  # array or sequence: ((element kind, element spec), size)
                kind, spec = spec[0]
            if kind == 2:  # a named message type
                names.append(spec)
    return names


# metadata.yaml custom_data keys: what ``bag make`` says of a flight, what ``bag replay`` says of a run
FLIGHT_CUSTOM_DATA_KEY = "ttt_perception.flight"
REPLAY_CUSTOM_DATA_KEY = "ttt_perception.replay"


def read_custom_data(path, key: str) -> str | None:
    """A ``custom_data`` entry of a bag directory's metadata.yaml (None when absent)."""
    import yaml

    metadata = Path(path) / "metadata.yaml"
    if not metadata.is_file():
        return None
    info = (yaml.safe_load(metadata.read_text()) or {}).get("rosbag2_bagfile_information", {})
    return (info.get("custom_data") or {}).get(key)
