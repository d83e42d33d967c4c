"""A frame's uncertainty and adaptation report -> ``diagnostic_msgs/DiagnosticArray``.

Stamped with the image header (stamp and frame_id unchanged). The array holds one
``DiagnosticStatus``: ``name`` "<node>: <camera>", ``hardware_id`` the image frame_id, ``message`` a
one-line summary, ``level`` OK, or WARN when the deadline was missed or the state was reset
automatically on this frame. ``values`` are ``KeyValue`` pairs, listed in docs/node.md ("Uncertainty
message"): ``schema`` (ttt_perception/uncertainty), ``version`` (1), ``camera`` and every key of the
adapter's ``FrameReport`` (entropy, max_prob, margin, ssl_loss_before, ssl_loss_after, steps_taken,
steps_planned, adapt_ms, deadline_met, stop_reason, mode, ...). Numbers are written with ``repr``
precision, booleans as ``true``/``false``, NaN as ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

UNCERTAINTY_SCHEMA = "ttt_perception/uncertainty"
UNCERTAINTY_VERSION = 1


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def build_uncertainty(header, report: Mapping[str, Any], camera: str, node_name: str = "ttt_perception"):
    """The stamped message of one frame's ``report`` (``FrameReport.as_dict()``)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus()
    status.name = f"{node_name}: {camera or 'camera'}"
    status.hardware_id = str(header.frame_id)
    auto_reset = str(report.get("auto_reset", "") or "")
    deadline_met = bool(report.get("deadline_met", True))
    status.level = DiagnosticStatus.OK if deadline_met and not auto_reset else DiagnosticStatus.WARN
    status.message = _summary(report)
    pairs = [("schema", UNCERTAINTY_SCHEMA), ("version", UNCERTAINTY_VERSION), ("camera", camera)]
    pairs.extend(report.items())
    status.values = [KeyValue(key=str(key), value=_text(value)) for key, value in pairs]
    array = DiagnosticArray()
    array.header = header
    array.status = [status]
    return array


def _summary(report: Mapping[str, Any]) -> str:
    parts = [f"{report.get('mode', '?')} mode",
             f"entropy {float(report.get('entropy', float('nan'))):.3f}",
             f"{report.get('steps_taken', '?')}/{report.get('steps_planned', '?')} steps "
             f"({report.get('stop_reason', '?')})",
             "deadline met" if report.get("deadline_met", True) else "deadline missed"]
    if report.get("auto_reset"):
        parts.append(f"automatic reset: {report['auto_reset']}")
    return ", ".join(parts)


def parse_uncertainty(msg) -> dict[str, Any]:
    """The key/value pairs of an uncertainty message, numbers and booleans converted back."""
    values: dict[str, Any] = {}
    for pair in msg.status[0].values:
        values[pair.key] = _value(pair.value)
    return values


def _value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text
