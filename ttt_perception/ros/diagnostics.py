"""Node health -> ``diagnostic_msgs/DiagnosticArray`` for ``/diagnostics``.

One status for the node ("<node>: node": lifecycle state, model, device, mode, detection message type;
ERROR with the reason when configure failed) and one per camera ("<node>: camera <name>") with:

``input_hz``, ``output_hz`` (over the last 10 s), ``received``, ``published``, ``dropped``, ``rejected``,
``rejected.<reason>``, ``failed``, ``in_flight``, ``deadline_met_fraction``, ``mean_steps``,
``adapt_ms_p50``, ``adapt_ms_p95``, ``total_ms_p95`` (over the last 100 frames), ``auto_resets``,
``last_auto_reset``, ``empty_frame_id``, ``bad_stamp``. Level and message come from ``camera_stats.assess``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .camera_stats import assess


def _number(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def camera_status(snapshot: Mapping[str, Any], node_name: str, active: bool, input_hint: str = ""):
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    level, message = assess(snapshot, active, input_hint)
    status = DiagnosticStatus(level=bytes([level]) if _level_is_bytes() else level,
                              name=f"{node_name}: camera {snapshot['camera'] or 'camera'}",
                              message=message, hardware_id="")
    counts = snapshot["counts"]
    pairs = [
        ("input_hz", snapshot["input_hz"]), ("output_hz", snapshot["output_hz"]),
        ("received", counts["received"]), ("published", counts["published"]),
        ("dropped", counts["dropped"]), ("rejected", counts["rejected"]),
    ]
    pairs += [(f"rejected.{reason}", count) for reason, count in sorted(snapshot["rejected_by_reason"].items())]
    pairs += [
        ("failed", counts["failed"]), ("in_flight", snapshot["in_flight"]),
        ("deadline_met_fraction", snapshot["deadline_met_fraction"]), ("mean_steps", snapshot["mean_steps"]),
        ("adapt_ms_p50", snapshot["adapt_ms_p50"]), ("adapt_ms_p95", snapshot["adapt_ms_p95"]),
        ("total_ms_p95", snapshot["total_ms_p95"]), ("auto_resets", counts["auto_resets"]),
        ("last_auto_reset", snapshot["last_auto_reset"]), ("empty_frame_id", counts["empty_frame_id"]),
        ("bad_stamp", counts["bad_stamp"]),
    ]
    status.values = [KeyValue(key=key, value=_number(value)) for key, value in pairs]
    return status


def node_status(node_name: str, level: int, message: str, values: Mapping[str, Any]):
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([level]) if _level_is_bytes() else level,
                              name=f"{node_name}: node", message=message, hardware_id="")
    status.values = [KeyValue(key=str(key), value=_number(value)) for key, value in values.items()]
    return status


def diagnostic_array(stamp, statuses: Iterable[Any]):
    from diagnostic_msgs.msg import DiagnosticArray

    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = list(statuses)
    return array


_LEVEL_IS_BYTES: bool | None = None


def _level_is_bytes() -> bool:
    """DiagnosticStatus.level is ``byte``: rclpy takes bytes in some releases and int in others."""
    global _LEVEL_IS_BYTES
    if _LEVEL_IS_BYTES is None:
        from diagnostic_msgs.msg import DiagnosticStatus

        _LEVEL_IS_BYTES = isinstance(DiagnosticStatus.OK, bytes)
    return _LEVEL_IS_BYTES


def level_value(level: Any) -> int:
    """A status level as int, whichever representation the message uses."""
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)
