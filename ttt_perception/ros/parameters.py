"""The node's parameters: names, defaults, descriptors, and validation of a whole set of values.

Each parameter is one of three kinds, stated in its descriptor's description:

* ``live``: changed at any time with ``ros2 param set``; the worker applies it from the next frame.
* ``reconfigure``: accepted at any time, used at the next configure (``cleanup`` then ``configure``).
* ``startup``: read-only, read once when the node starts.

``validate`` checks a complete set of values (a change is checked together with every other current
value) and returns the reasons it refuses; it needs no ROS graph. ``declare_parameters`` and
``descriptor`` turn the specs into rclpy declarations.

``normalise`` fixes what YAML and the ROS command line make of values a user typed plainly: every
ROS front end reads ``off`` (and ``no``, ``false``) as the boolean false, so ``adaptation.mode: off``
arrives as BOOL; and ``deadline.budget_ms 150`` arrives as an INTEGER. Both are turned into the
declared type (the string "off", the double 150.0) before rclpy checks the type, so get, describe and
dump keep reporting the declared type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import ADAPTATION_DEFAULTS as DEFAULT
from ..choices import (
    AUTO_BELOW_RANGE,
    AUTO_VALUES,
    CONFIDENCE_FALLBACKS,
    MAX_PREWARM_MS,
    MODES,
    NODE_BUDGET_MS,
    OBJECTIVES,
    PARAMETER_SETS,
    POLICIES,
    TASK_DEFAULTS,
)

DEADLINE_CLOCKS = ("arrival", "stamp")
QOS_CHOICES = ("sensor_data", "reliable")
# input.transport -> the one topic (under the camera) it reads
INPUT_TOPICS = {"raw": "image", "compressed": "image/compressed"}
TRANSPORTS = tuple(INPUT_TOPICS)
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# a camera name is a relative ROS name: tokens of letters, digits and underscores, not starting with a digit
CAMERA_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_CAMERAS = 16
# One torch thread: the default models take a few ms per step on one core, and torch's own default (a
# thread per core) made every step of a node sharing its CPU many times slower (cores spin-waiting).
DEFAULT_THREADS = 1

LIVE, RECONFIGURE, STARTUP = "live", "reconfigure", "startup"
# What an "auto" adaptation value stands for, by task, as descriptions say it ("classifier 0.003, detector 0.006").
_BY_TASK = {field: ", ".join(f"{task} {values[field]}" for task, values in TASK_DEFAULTS.items())
            for field in AUTO_VALUES}
_KIND_TEXT = {
    LIVE: "Changes live, from the next frame.",
    RECONFIGURE: "Takes effect at the next configure (lifecycle cleanup, then configure).",
    STARTUP: "Read-only: set at start-up only.",
}


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    kind: str
    choices: tuple[str, ...] = ()
    low: float | None = None  # inclusive range for numbers
    high: float | None = None
    adapter_field: str | None = None  # the AdaptationConfig field it sets, if any

    @property
    def is_float(self) -> bool:
        return isinstance(self.default, float)

    @property
    def is_int(self) -> bool:
        return isinstance(self.default, int) and not isinstance(self.default, bool)

    def full_description(self) -> str:
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(self.choices)}."
        return f"{text} {_KIND_TEXT[self.kind]}"


SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec("model.path", "", "Checkpoint file of the model; empty: the packaged default detector.",
                  RECONFIGURE),
    ParameterSpec("model.device", "auto", "Torch device: auto (CUDA if present, else CPU with a warning), "
                  "cpu, cuda or cuda:N.", RECONFIGURE),
    ParameterSpec("model.threads", DEFAULT_THREADS, "Torch CPU threads of the node (set at configure); 0: "
                  "torch's own choice (every core). 1 keeps a frame's time steady beside other nodes; more "
                  "threads help large models only when cores are free.", RECONFIGURE, low=0, high=256),
    ParameterSpec("cameras", [""], "Camera names. Each camera <c> reads <c>/image (or <c>/image/compressed: "
                  "input.transport) and writes <c>/detections and <c>/uncertainty (relative names). [\"\"]: "
                  "one camera with the topics image, detections, uncertainty.", RECONFIGURE),
    ParameterSpec("input.transport", "raw", "The one image topic each camera reads: raw (<c>/image, "
                  "sensor_msgs/Image) or compressed (<c>/image/compressed, sensor_msgs/CompressedImage: JPEG, "
                  "PNG). Never both: a camera driver (image_transport) publishes both, and every frame would "
                  "be answered twice.", RECONFIGURE, choices=TRANSPORTS),
    ParameterSpec("input.qos", "sensor_data", "QoS of the image subscriptions: sensor_data (best effort, "
                  "matches every publisher) or reliable (matches reliable publishers only).", RECONFIGURE,
                  choices=QOS_CHOICES),
    ParameterSpec("adaptation.mode", DEFAULT["mode"],
                  "off: plain inference; reset: adapt on each frame, then "
                  "restore the source weights; online: keep adapting from frame to frame.", LIVE,
                  choices=MODES, adapter_field="mode"),
    ParameterSpec("adaptation.objective", DEFAULT["objective"],
                  "Self-supervised objective: rotation (TTT, extractor "
                  "weights), entropy (Tent, normalisation affine parameters) or features (feature alignment: "
                  "the camera's running feature statistics pulled toward the clean ones stored in the "
                  "checkpoint; extractor weights).", LIVE, choices=OBJECTIVES,
                  adapter_field="objective"),
    ParameterSpec("adaptation.parameters", DEFAULT["parameters"],
                  "Weights the steps change: auto (norm for entropy, else "
                  "the extractor), extractor, stem (first convolution and its norm: the noisy-camera "
                  "profile, docs/adaptation.md) or norm (GroupNorm affines). A change returns every camera to "
                  "the source weights.", LIVE, choices=PARAMETER_SETS, adapter_field="parameters"),
    ParameterSpec("adaptation.max_steps", DEFAULT["max_steps"],
                  "Most SGD steps per frame.", LIVE, low=0, high=100,
                  adapter_field="max_steps"),
    ParameterSpec("adaptation.learning_rate", DEFAULT["learning_rate"],
                  "SGD learning rate of the test-time steps; 0: the rate chosen on val for the model's task "
                  f"({_BY_TASK['learning_rate']}).", LIVE, low=0.0, high=1.0, adapter_field="learning_rate"),
    ParameterSpec("adaptation.momentum", DEFAULT["momentum"],
                  "SGD momentum of the test-time steps (online: kept per camera from frame to frame, dropped "
                  "with the adapted weights); -1: the value chosen on val for the model's task "
                  f"({_BY_TASK['momentum']}).", LIVE, low=-1.0, high=0.99, adapter_field="momentum"),
    ParameterSpec("adaptation.batch_size", DEFAULT["batch_size"],
                  "Augmented copies of the frame per step; 0: the number chosen on val for the model's task "
                  f"({_BY_TASK['batch_size']}).", LIVE, low=0, high=256,
                  adapter_field="batch_size"),
    ParameterSpec("adaptation.min_ssl_loss", DEFAULT["min_ssl_loss"],
                  "Adapt only while the source weights' rotation loss, "
                  "averaged over the camera's last ~10 frames, is at least this (a shift signal: high under "
                  "noise, near its clean level under fog); 0: no lower bound. The noisy-camera profile uses 1.0.",
                  LIVE, low=0.0, high=100.0, adapter_field="min_ssl_loss"),
    ParameterSpec("adaptation.min_ssl_loss_ratio", DEFAULT["min_ssl_loss_ratio"],
                  "Like min_ssl_loss, relative to the model's own clean rotation loss stored in its "
                  "checkpoint at training time: adapt only while the camera's recent source loss is at least "
                  "this many times it (the larger of the two thresholds applies); 0: off. With a checkpoint "
                  "that stores no clean level, a warning says the ratio has no effect.",
                  LIVE, low=0.0, high=100.0, adapter_field="min_ssl_loss_ratio"),
    ParameterSpec("adaptation.max_ssl_loss", DEFAULT["max_ssl_loss"],
                  "The gate's upper bound: no steps while the camera's recent source rotation loss is above "
                  "this (far above chance, ln 4 = 1.39, the rotation head is confidently wrong: the shift has an "
                  "orientation cue of its own, such as motion blur's streaks, and steps would learn it); 0: no "
                  "upper bound; -1: the bound chosen on val for the model's task "
                  f"({_BY_TASK['max_ssl_loss']}).", LIVE, low=-1.0, high=100.0, adapter_field="max_ssl_loss"),
    ParameterSpec("adaptation.adapt_after_publish", DEFAULT["adapt_after_publish"],
                  "Online mode: publish the prediction first, then adapt on the frame in the idle time "
                  "before the next frame is due (the deadline then bounds only the prediction). Reset "
                  "mode always adapts first.", LIVE, adapter_field="adapt_after_publish"),
    ParameterSpec("adaptation.verify_confidence", DEFAULT["verify_confidence"],
                  "Online mode: publish the camera's adapted weights' prediction only while, over its last 30 "
                  "frames, the main head is surer of itself with them than with the source weights (by "
                  "confidence_margin); otherwise confidence_fallback decides what is published and "
                  "adaptation goes on. Spares the shifts where steps do harm (blur, low contrast, warps).", LIVE,
                  adapter_field="verify_confidence"),
    ParameterSpec("adaptation.confidence_margin", DEFAULT["confidence_margin"],
                  "verify_confidence's margin: the adapted weights' mean confidence must be at least (1 + this) "
                  "times the source weights' on the same frames.", LIVE, low=0.0, high=1.0,
                  adapter_field="confidence_margin"),
    ParameterSpec("adaptation.confidence_fallback", DEFAULT["confidence_fallback"],
                  "verify_confidence: what is published while the adapted weights are not trusted. source: "
                  "the source weights' prediction; surer: the prediction of whichever weights are surer of the "
                  "frame; average: the mean of both weights' main-head outputs (class probabilities; a "
                  "detector's heatmap probabilities and box maps); auto: chosen on val for the model's task "
                  f"({_BY_TASK['confidence_fallback']}). surer and average take one more prediction, only "
                  "when it still fits the frame's deadline (else: source).", LIVE, choices=CONFIDENCE_FALLBACKS,
                  adapter_field="confidence_fallback"),
    ParameterSpec("adaptation.confidence_floor", DEFAULT["confidence_floor"],
                  "confidence_fallback surer: the adapted weights' prediction only when they are surer of the "
                  "frame and at least this sure (top class probability; a detector's strongest heatmap cell); "
                  "below it both weights are unsure, their choice a coin toss, and the source weights' "
                  "prediction is published; 0: no floor; -1: the floor chosen on val for the model's task "
                  f"({_BY_TASK['confidence_floor']}).", LIVE, low=-1.0, high=1.0,
                  adapter_field="confidence_floor"),
    ParameterSpec("adaptation.share_state", DEFAULT["share_state"],
                  "Online mode: all cameras share one adapted state "
                  "(false: one state per camera).", LIVE, adapter_field="share_state"),
    ParameterSpec("deadline.budget_ms", NODE_BUDGET_MS,
                  "Time budget per frame in milliseconds, adaptation and "
                  "prediction together; 0: no deadline.", LIVE, low=0.0, high=60000.0,
                  adapter_field="budget_ms"),
    ParameterSpec("deadline.policy", DEFAULT["policy"],
                  "truncate: take the steps that fit the budget; skip: all "
                  "planned steps or none.", LIVE, choices=POLICIES, adapter_field="policy"),
    ParameterSpec("deadline.prewarm_ms", DEFAULT["prewarm_ms"],
                  "Between frames, one throwaway prediction that ends this long before the next frame is "
                  "due (from the cameras' recent rates), so that the frame's own runs warm: on a CPU a forward "
                  "pass after an idle wait is far slower than one right after another (docs/node.md); any mode; "
                  "0: never.",
                  LIVE, low=0.0, high=MAX_PREWARM_MS, adapter_field="prewarm_ms"),
    ParameterSpec("deadline.clock", "arrival", "Where a frame's budget starts: arrival (when the node "
                  "received it) or stamp (its header stamp, on the node's clock).", LIVE,
                  choices=DEADLINE_CLOCKS),
    ParameterSpec("detection.score_threshold", DEFAULT["score_threshold"],
                  "Lowest score of a published detection.", LIVE,
                  low=0.0, high=1.0, adapter_field="score_threshold"),
    ParameterSpec("detection.max_detections", DEFAULT["max_detections"],
                  "Most detections per frame.", LIVE, low=1, high=1000,
                  adapter_field="max_detections"),
    ParameterSpec("publish_debug_image", False, "Publish <camera>/debug_image with boxes and labels drawn "
                  "(only while someone subscribes).", RECONFIGURE),
    ParameterSpec("autostart", True, "Configure and activate the node by itself at start-up. A refused "
                  "override (e.g. the string \"false\") does not start it: it stays unconfigured and says why.",
                  STARTUP),
)
SPEC_BY_NAME: dict[str, ParameterSpec] = {spec.name: spec for spec in SPECS}


def defaults() -> dict[str, Any]:
    return {spec.name: (list(spec.default) if isinstance(spec.default, list) else spec.default)
            for spec in SPECS}


def _check_value(spec: ParameterSpec, value: Any) -> str | None:
    name = spec.name
    if isinstance(spec.default, bool):
        return None if isinstance(value, bool) else f"{name} must be true or false, got {value!r}"
    if isinstance(spec.default, str):
        if not isinstance(value, str):
            return f"{name} must be a string, got {value!r}{_yaml_hint(spec, value)}"
        if spec.choices and value not in spec.choices:
            return f"{name} must be one of {', '.join(spec.choices)}; got '{value}'"
        return None
    if isinstance(spec.default, list):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"{name} must be a list of strings, got {value!r}{_yaml_hint(spec, value)}"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be a number, got {value!r}"
    if spec.is_int and isinstance(value, float):
        return f"{name} must be an integer, got {value!r}"
    if not math.isfinite(float(value)):
        return f"{name} must be finite, got {value!r}"
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        return f"{name} must be in [{spec.low:g}, {spec.high:g}], got {value!r}"
    if spec.adapter_field in AUTO_BELOW_RANGE and value < 0 and value != AUTO_VALUES[spec.adapter_field]:
        auto = AUTO_VALUES[spec.adapter_field]
        return f"{name} must be in [0, {spec.high:g}], or {auto:g} for the model's task's, got {value!r}"
    return None


def normalise(name: str, value: Any) -> Any:
    """``value`` in the type ``name`` is declared with, where the user's intent is unambiguous.

    A boolean false for ``adaptation.mode`` is "off" (YAML's ``off``, ``no``, ``false``); an integer for
    a double parameter is that double. Anything else comes back unchanged for validation to judge.
    """
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return value
    if spec.name == "adaptation.mode" and value is False:
        return "off"
    if spec.is_float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _yaml_hint(spec: ParameterSpec, value: Any) -> str:
    """Why a value typed as text arrived as something else, for string parameters."""
    if isinstance(value, bool) or isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value):
        if spec.name == "adaptation.mode":
            return (" (YAML reads on/yes/true as the boolean true, and true names no mode: "
                    "write off, reset or online)")
        return " (YAML reads on/off/yes/no/true/false as booleans: quote the text, e.g. 'on')"
    if isinstance(value, (int, float)) or isinstance(value, (list, tuple)) and \
            any(isinstance(v, (int, float)) for v in value):
        return " (YAML reads it as a number: quote the text)"
    return ""


def validate(values: Mapping[str, Any]) -> list[str]:
    """The reasons why this complete set of values is refused; empty when it is valid."""
    errors = []
    for spec in SPECS:
        if spec.name not in values:
            errors.append(f"{spec.name} is missing")
            continue
        problem = _check_value(spec, values[spec.name])
        if problem:
            errors.append(problem)
    if errors:
        return errors
    if not DEVICE_PATTERN.match(values["model.device"].strip()):
        errors.append(f"model.device must be auto, cpu, cuda or cuda:N; got '{values['model.device']}'")
    errors.extend(_camera_errors(values["cameras"]))
    return errors


def _camera_errors(cameras: Sequence[str]) -> list[str]:
    cameras = list(cameras)
    if cameras in ([], [""]):
        return []
    if len(cameras) > MAX_CAMERAS:
        return [f"cameras: at most {MAX_CAMERAS} cameras, got {len(cameras)}"]
    errors = []
    for name in cameras:
        if not CAMERA_PATTERN.match(name):
            errors.append(f"cameras: '{name}' is not a relative ROS name (letters, digits, '_', '/'; "
                          "the empty name only as the single camera)")
    duplicates = sorted({name for name in cameras if cameras.count(name) > 1})
    if duplicates:
        errors.append(f"cameras: duplicate names {duplicates}")
    return errors


def camera_names(values: Mapping[str, Any]) -> list[str]:
    """The cameras to serve; ``[""]`` (also for an empty list) is the single camera without a prefix."""
    cameras = list(values["cameras"])
    return cameras if cameras else [""]


def topic(camera: str, leaf: str) -> str:
    """Relative topic name of a camera: ``topic("front", "detections") == "front/detections"``."""
    return f"{camera}/{leaf}" if camera else leaf


def adapter_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``AdaptationConfig`` fields these parameter values set (numbers in the field's type)."""
    settings = {}
    for spec in SPECS:
        if spec.adapter_field is None:
            continue
        value = values[spec.name]
        if spec.is_float:
            value = float(value)
        elif spec.is_int:
            value = int(value)
        settings[spec.adapter_field] = value
    return settings


def changed_kinds(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    """Names of the parameters that differ between two value sets, grouped by kind."""
    kinds: dict[str, list[str]] = {LIVE: [], RECONFIGURE: [], STARTUP: []}
    for spec in SPECS:
        if spec.name in old and spec.name in new and old[spec.name] != new[spec.name]:
            kinds[spec.kind].append(spec.name)
    return kinds


# ---- rclpy declarations -------------------------------------------------------------------------

def descriptor(spec: ParameterSpec):
    """The ``rcl_interfaces/ParameterDescriptor`` of a spec (description, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    desc = ParameterDescriptor(name=spec.name, description=spec.full_description(),
                               read_only=spec.kind == STARTUP)
    if spec.choices:
        desc.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if isinstance(spec.default, bool):
        desc.type = ParameterType.PARAMETER_BOOL
    elif isinstance(spec.default, str):
        desc.type = ParameterType.PARAMETER_STRING
    elif isinstance(spec.default, list):
        desc.type = ParameterType.PARAMETER_STRING_ARRAY
    elif spec.is_int:
        desc.type = ParameterType.PARAMETER_INTEGER
        desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    else:
        # statically DOUBLE: an integer from `ros2 param set ... deadline.budget_ms 50` is made a double by
        # `normalised_parameters` before rclpy checks the type
        desc.type = ParameterType.PARAMETER_DOUBLE
        desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high),
                                                        step=0.0)]
    return desc


def declare_parameters(node) -> tuple[dict[str, Any], dict[str, str]]:
    """Declare every parameter on ``node``; return (values, problems by parameter name).

    An override (from a parameters file or ``-p``) is first read untyped, normalised (``normalise``)
    and then declared with the static type. One that is still of the wrong type or out of range is
    not fatal: the parameter keeps its default, and the problem is returned for the node to report.
    """
    from rcl_interfaces.msg import ParameterDescriptor
    from rclpy.exceptions import ParameterException  # base of the type/value errors in every distro

    values, problems = {}, {}
    for spec in SPECS:
        default = list(spec.default) if isinstance(spec.default, list) else spec.default
        # read whatever the override holds, of any type, then declare for good with the declared type
        untyped = node.declare_parameter(spec.name, default, ParameterDescriptor(dynamic_typing=True))
        value = normalise(spec.name, plain_value(untyped.value))
        node.undeclare_parameter(spec.name)
        desc = descriptor(spec)
        # rclpy takes a static parameter's type from the value declared: check it first
        problem = _check_value(spec, value)
        if problem is None:
            try:
                parameter = node.declare_parameter(spec.name, value, desc, ignore_override=True)
            except (ParameterException, TypeError, ValueError) as exc:
                problem = str(exc)
        if problem is not None:
            problems[spec.name] = (f"parameter {spec.name}: override refused ({problem}); "
                                   f"it keeps the default {default!r}")
            parameter = node.declare_parameter(spec.name, default, desc, ignore_override=True)
        values[spec.name] = plain_value(parameter.value)
    return values, problems


def value_problems(parameter_list) -> list[str]:
    """Why single values of ``parameter_list`` (rclpy ``Parameter``) are refused, before rclpy's own
    type check answers with a bare "Wrong parameter type"."""
    return [problem for parameter in parameter_list if parameter.name in SPEC_BY_NAME
            for problem in [_check_value(SPEC_BY_NAME[parameter.name], plain_value(parameter.value))] if problem]


def normalised_parameters(parameter_list):
    """rclpy ``Parameter`` objects with ``normalise`` applied to their values (for ``set_parameters``)."""
    from rclpy.parameter import Parameter

    result = []
    for parameter in parameter_list:
        value = normalise(parameter.name, parameter.value)
        result.append(parameter if value is parameter.value else Parameter(parameter.name, value=value))
    return result


def plain_value(value: Any) -> Any:
    """Parameter values as plain Python (rclpy gives arrays as lists or array.array)."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return list(value)


# ---- parameter files and profiles -----------------------------------------------------------------

PROFILES_DIR = Path(__file__).resolve().parents[1] / "profiles"


def profile_path(name: str) -> Path:
    """A packaged profile (``ttt_perception/profiles/NAME.yaml``, also installed to share/config)."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ValueError(f"no profile {name!r}; packaged profiles: {', '.join(known)}")
    return path


def flatten_parameters(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ``ros__parameters`` mapping -> {"adaptation.mode": ..., ...}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_parameters(value, name + "."))
        else:
            flat[name] = value
    return flat


def read_parameters_file(path) -> dict[str, Any]:
    """The flat values of a one-node ROS 2 parameters file; ValueError if a name or value is invalid."""
    import yaml

    document = yaml.safe_load(Path(path).read_text())
    entries = list(document.values()) if isinstance(document, Mapping) else []
    if len(entries) != 1 or not isinstance(entries[0], Mapping) or \
            not isinstance(entries[0].get("ros__parameters"), Mapping):
        raise ValueError(f"{path}: expected one node key with ros__parameters")
    values = flatten_parameters(entries[0]["ros__parameters"])
    unknown = sorted(set(values) - set(SPEC_BY_NAME))
    errors = [f"unknown parameter {name}" for name in unknown] or validate({**defaults(), **values})
    if errors:
        raise ValueError(f"{path}: {'; '.join(errors)}")
    return values

