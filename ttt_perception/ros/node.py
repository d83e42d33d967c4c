"""The ttt_perception lifecycle node: camera images in, detections and uncertainty out.

States (rclpy.lifecycle):

* unconfigured: parameters and ``/diagnostics`` exist; no model.
* configure: loads the model (``model.path``, empty: the default detector) on ``model.device`` and
  builds the adapter, the per-camera subscriptions and publishers and the worker thread. A missing or
  corrupt model file or a device that does not exist fails the transition with a message naming it;
  the node stays up, unconfigured.
* active: frames are accepted and answered. inactive: frames are ignored, nothing is published.
* cleanup: stops the worker and frees the model (and its GPU memory).

Executor callbacks never run the model: an image callback only puts the message into its camera's
latest-frame slot. The worker thread converts it, calls the adapter, and publishes.
"""

from __future__ import annotations

import dataclasses
import gc
import threading
import time
from typing import Any, NamedTuple

import rclpy
import rclpy.executors
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from ..choices import AUTO_VALUES
from . import parameters as params
from .camera_stats import ERROR, OK, WARN, CameraStats
from .debug_image import draw_detections
from .detection_message import DetectionMessageBuilder
from .diagnostics import camera_status, diagnostic_array, node_status
from .frame_buffer import LatestFrameSlots
from .image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb, rgb_to_image
from .log_throttle import LogThrottle
from .next_frame import NextFrameClock
from .uncertainty_message import build_uncertainty
from .worker import FrameWorker

NODE_NAME = "ttt_perception"
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
# depth 5 like sensor_data: DDS keeps a few frames until the executor takes them; the node's own
# latest-frame slot does the dropping, and counts it
RELIABLE_INPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


class Frame(NamedTuple):
    msg: Any
    compressed: bool
    arrival: float  # time.perf_counter() when the callback ran (the adapter's clock)
    age_s: float | None  # now - header stamp on the node's clock, when deadline.clock is "stamp"


@dataclasses.dataclass
class CameraIO:
    name: str
    label: str  # the adapter's stream name and the name in diagnostics
    stats: CameraStats
    subscriptions: list[Any]
    detections: Any
    uncertainty: Any
    debug_image: Any | None


class TTTPerceptionNode(LifecycleNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._values, self._refused_overrides = params.declare_parameters(self)
        for problem in self._refused_overrides.values():
            self.get_logger().error(problem)
        # why the node did not start by itself, while it stays unconfigured
        self._start_note = ""
        if "autostart" in self._refused_overrides:
            self._start_note = ("not started by itself: its autostart override was refused, and starting on the "
                                "default could be what it was meant to prevent; configure and activate with ros2 "
                                "lifecycle set, or start it again with autostart true or false")
            self.get_logger().error(self._start_note)
        self._lock = threading.Lock()  # guards _values and _pending_settings
        self._pending_settings: dict[str, Any] | None = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._throttle = LogThrottle(period_s=5.0)
        self._messages = DetectionMessageBuilder()
        self.get_logger().info(f"detections are published as {self._messages.description}")

        self._adapter = None
        self._class_names: list[str] = []
        self._device = ""
        self._cameras: dict[str, CameraIO] = {}
        self._slots: LatestFrameSlots | None = None
        self._next_frame = NextFrameClock()  # bounds the steps taken after publishing; times the pre-warm
        self._prewarm_pending = False  # worker thread only: a frame was handled since the last pre-warm
        self._worker: FrameWorker | None = None
        self._active = False
        # held while checking "active" and publishing, and while deactivating: once deactivation has
        # begun no output starts, and one in progress finishes first
        self._publish_lock = threading.Lock()
        self._state_label = "unconfigured"
        self._configure_error = ""
        self._manual_resets = 0
        self._cuda_used = False
        self._torch_default_threads: int | None = None
        self._threads = 0  # torch threads in use since the last configure
        self._in_use: dict[str, Any] = {}  # the reconfigure parameters' values at the last configure

        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # on a steady clock: with use_sim_time and nothing on /clock (a paused bag) ROS time stands still,
        # and the health report, configure's ERROR included, must not (clock= exists from Humble on)
        self._diagnostics_timer = self.create_timer(1.0, self._publish_diagnostics,
                                                    clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._reset_service = self.create_service(Trigger, "~/reset", self._on_reset)

    # ---- parameters --------------------------------------------------------------------------

    # rclpy checks a value's type before any callback sees it, so values are normalised here ("off" for
    # YAML's boolean off, doubles for integers). The parameter services call set_parameters_atomically
    # in Humble, Jazzy and Kilted alike; pre-set callbacks only exist from Iron on.
    def set_parameters(self, parameter_list):
        return [self.set_parameters_atomically([parameter]) for parameter in parameter_list]

    def set_parameters_atomically(self, parameter_list):
        parameter_list = params.normalised_parameters(parameter_list)
        problems = params.value_problems(parameter_list)
        if problems:
            reason = "; ".join(problems)
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        return super().set_parameters_atomically(parameter_list)

    def _on_set_parameters(self, changes) -> SetParametersResult:
        with self._lock:
            proposed = dict(self._values)
        ours = [change for change in changes if change.name in params.SPEC_BY_NAME]
        for change in ours:
            proposed[change.name] = params.plain_value(change.value)
        errors = params.validate(proposed)
        if not errors:
            errors = self._adapter_config_errors(proposed)
        if errors:
            reason = "; ".join(errors)
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            kinds = params.changed_kinds(self._values, proposed)
            self._values = proposed
            for change in ours:  # a valid value replaces a refused start-up override
                self._refused_overrides.pop(change.name, None)
            if self._adapter is not None and kinds[params.LIVE]:
                self._pending_settings = params.adapter_settings(proposed)
        if kinds[params.LIVE]:
            self.get_logger().info(f"changed {', '.join(kinds[params.LIVE])}: applies from the next frame")
        if kinds[params.RECONFIGURE]:
            self.get_logger().info(f"changed {', '.join(kinds[params.RECONFIGURE])}: applies at the next "
                                   "configure (cleanup, then configure)")
        return SetParametersResult(successful=True)

    def _adapter_config_errors(self, values) -> list[str]:
        from ttt_perception.adaptation_config import AdaptationConfig

        adapter = self._adapter
        base = adapter.config if adapter is not None else AdaptationConfig()
        try:
            config = dataclasses.replace(base, **params.adapter_settings(values)).validated()
            if adapter is not None:  # what the loaded model can do (e.g. its stored clean levels)
                adapter.check_supported(config)
        except (TypeError, ValueError) as exc:
            return [str(exc)]
        return []

    def value(self, name: str) -> Any:
        with self._lock:
            return self._values[name]

    # ---- lifecycle ---------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - any failure leaves the node up and unconfigured
            self._release()
            self._configure_error = str(exc)
            self._state_label = "unconfigured"
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._configure_error = ""
        self._start_note = ""
        self._state_label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        with self._lock:
            values = dict(self._values)
        errors = params.validate(values) + self._adapter_config_errors(values)
        if errors:
            raise ValueError("invalid parameters: " + "; ".join(errors))
        refused = [problem for name, problem in self._refused_overrides.items()
                   if params.SPEC_BY_NAME[name].kind != params.STARTUP]
        if refused:  # running on defaults the user did not ask for would hide the mistake
            raise ValueError("; ".join(refused) + " (set a valid value with ros2 param set, then configure)")
        import torch

        from ttt_perception.adaptation_config import AdaptationConfig
        from ttt_perception.adapter import TestTimeAdapter
        from ttt_perception.devices import resolve_device
        from ttt_perception.warm_start import warm_up

        device_name = values["model.device"].strip()
        if device_name == "auto":
            device_name = "cuda" if torch.cuda.is_available() else "cpu"
            if device_name == "cpu":
                self.get_logger().warning("model.device 'auto': no CUDA device available, using the CPU")
        try:
            device = resolve_device(device_name)
        except ValueError as exc:
            raise RuntimeError(f"model.device: {exc}") from None
        threads = self._threads = self._apply_threads(torch, values["model.threads"])
        model = self._load_model(values["model.path"], device)
        config = dataclasses.replace(AdaptationConfig(), **params.adapter_settings(values))
        self._adapter = TestTimeAdapter(model, config, device=device)
        if self._adapter.gate_note:
            self.get_logger().warning(self._adapter.gate_note)
        # before the node reports active: the first frames meet their deadlines with warm estimates
        warm = warm_up(self._adapter)
        self.get_logger().info(f"warmed up in {warm['rounds']} rounds: step {warm['step_ms']:.1f} ms, "
                               f"prediction {warm['predict_ms']:.1f} ms")
        self._device = str(device)
        self._cuda_used = self._cuda_used or device.type == "cuda"
        self._class_names = [str(name) for name in model.config.class_names]
        with self._lock:
            self._pending_settings = None

        cameras = params.camera_names(values)
        self._slots = LatestFrameSlots(cameras)
        self._next_frame.forget()
        qos = qos_profile_sensor_data if values["input.qos"] == "sensor_data" else RELIABLE_INPUT_QOS
        for camera in cameras:
            self._cameras[camera] = self._camera_io(camera, qos, values["input.transport"],
                                                    values["publish_debug_image"])
        self._prewarm_pending = False
        self._worker = FrameWorker(self._slots, self._handle_frame, self._on_frame_error,
                                   idle=self._prewarm_when_due).start()
        inputs = ", ".join(sub.topic_name for io in self._cameras.values() for sub in io.subscriptions)
        self.get_logger().info(
            f"configured: model {values['model.path'] or 'default detector'} on {self._device} "
            f"({threads} torch threads), "
            f"mode {config.mode}, {auto_values_text(config, self._adapter.effective_config)}inputs {inputs} "
            f"(transport {values['input.transport']}, QoS {values['input.qos']})")
        self._in_use = {spec.name: values[spec.name] for spec in params.SPECS if spec.kind == params.RECONFIGURE}

    def _apply_threads(self, torch, threads: int) -> int:
        """torch's intra-op threads for this process (0: the number torch chose at start)."""
        if self._torch_default_threads is None:
            self._torch_default_threads = torch.get_num_threads()
        torch.set_num_threads(threads or self._torch_default_threads)
        return torch.get_num_threads()

    def _load_model(self, path: str, device):
        if not path:
            from ttt_perception.default_models import default_model_path, load_default_model

            try:
                return load_default_model("detector", device)
            except Exception as exc:  # noqa: BLE001 - name the file in the message
                raise RuntimeError(f"default model {default_model_path('detector')}: {exc}") from None
        from ttt_perception.checkpoint import load_checkpoint

        model, _ = load_checkpoint(path, device)  # CheckpointError names the file and the problem
        return model

    def _camera_io(self, camera: str, qos, transport: str, debug: bool) -> CameraIO:
        label = camera or "default"
        # one topic per camera: image_transport publishes a frame on both, and both would answer it twice
        compressed = transport == "compressed"
        msg_type = CompressedImage if compressed else Image
        subscriptions = [
            self.create_subscription(msg_type, params.topic(camera, params.INPUT_TOPICS[transport]),
                                     lambda msg, c=camera: self._on_image(c, msg, compressed), qos),
        ]
        return CameraIO(
            name=camera, label=label, stats=CameraStats(label), subscriptions=subscriptions,
            detections=self.create_lifecycle_publisher(self._messages.msg_type, params.topic(camera, "detections"),
                                                       OUTPUT_QOS),
            uncertainty=self.create_lifecycle_publisher(DiagnosticArray, params.topic(camera, "uncertainty"),
                                                        OUTPUT_QOS),
            debug_image=self.create_lifecycle_publisher(Image, params.topic(camera, "debug_image"), OUTPUT_QOS)
            if debug else None,
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers
        if result == TransitionCallbackReturn.SUCCESS:
            self._active = True
            self._state_label = "active"
            self.get_logger().info("active: answering frames")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._publish_lock:
            self._active = False
        self._discard_waiting()
        self._state_label = "inactive"
        self.get_logger().info("inactive: frames are ignored until activated again")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state_label = "unconfigured"
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        self._state_label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        self._state_label = "unconfigured"
        self.get_logger().error("error during a transition: resources released, back to unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def _discard_waiting(self) -> None:
        if self._slots is None:
            return
        for camera in self._slots.clear():
            io = self._cameras.get(camera)
            if io is not None:
                io.stats.dropped()

    def _release(self) -> None:
        """Stop the worker, destroy subscriptions and publishers, free the model."""
        self._active = False
        if self._worker is not None:
            # a frame may run long (no deadline, many steps): its model must not be freed under it
            while not self._worker.stop(timeout=30.0):
                self.get_logger().warning("the worker is still finishing a frame; waiting for it before releasing "
                                          "the model")
            self._worker = None
        self._discard_waiting()
        self._slots = None
        for io in self._cameras.values():
            for sub in io.subscriptions:
                self.destroy_subscription(sub)
            for pub in (io.detections, io.uncertainty, io.debug_image):
                if pub is not None:
                    self.destroy_lifecycle_publisher(pub)
        self._cameras = {}
        self._in_use = {}
        had_cuda = self._device.startswith("cuda")
        self._adapter = None
        self._device = ""
        gc.collect()
        if had_cuda:
            import torch

            torch.cuda.empty_cache()

    # ---- frames ------------------------------------------------------------------------------

    def _on_image(self, camera: str, msg, compressed: bool) -> None:
        """Executor callback: stamp the arrival and hand the message to the camera's slot.

        Nothing may escape it: an exception in a subscription callback ends ``spin()``, and the process.
        """
        arrival = time.perf_counter()
        slots, io = self._slots, self._cameras.get(camera)
        if not self._active or slots is None or io is None:
            return
        io.stats.received()
        try:
            age = self._stamp_age(io, msg) if self.value("deadline.clock") == "stamp" else None
            self._next_frame.arrived(camera, arrival)
            if slots.put(camera, Frame(msg, compressed, arrival, age)) is not None:
                io.stats.dropped()
        except Exception as exc:  # noqa: BLE001 - counted and logged; the node goes on with the next frame
            text = f"{type(exc).__name__}: {exc}"
            io.stats.failed(f"in the image callback: {text}")
            self._throttle((camera, "callback"), self.get_logger().error,
                           f"camera '{io.label}': frame failed in the image callback: {text}")

    def _stamp_age(self, io: CameraIO, msg) -> float | None:
        """How old the frame is by its header stamp, on the node's clock; None without a stamp (zero), or
        with one that is no time (negative seconds: counted and logged), so that its budget starts at arrival."""
        stamp = msg.header.stamp
        if not (stamp.sec or stamp.nanosec):
            return None
        now = self.get_clock().now()
        try:
            then = Time.from_msg(stamp, clock_type=now.clock_type)
        except (ValueError, OverflowError) as exc:
            io.stats.bad_stamp()
            self._throttle((io.name, "bad_stamp"), self.get_logger().warning,
                           f"camera '{io.label}': header.stamp {stamp.sec} s {stamp.nanosec} ns is no time "
                           f"({exc}); the frame is answered, its budget starting at its arrival")
            return None
        return max(0.0, (now - then).nanoseconds * 1e-9)

    def _handle_frame(self, camera: str, frame: Frame) -> None:
        """Worker thread: convert, adapt and predict, publish."""
        io, adapter = self._cameras.get(camera), self._adapter
        if io is None or adapter is None:
            return
        self._apply_pending_settings(adapter)
        msg = frame.msg
        try:
            rgb = compressed_to_rgb(msg) if frame.compressed else image_to_rgb(msg)
        except ImageConversionError as exc:
            io.stats.rejected(exc.reason)
            self._throttle((camera, exc.reason), self.get_logger().warning,
                           f"camera '{io.label}': frame rejected ({exc.reason}): {exc}")
            return
        if not msg.header.frame_id:
            io.stats.empty_frame_id()
            self._throttle((camera, "empty_frame_id"), self.get_logger().warning,
                           f"camera '{io.label}': frame with an empty header.frame_id; processed, but its "
                           "outputs cannot be placed in TF (set the camera driver's frame_id)")
        arrival = frame.arrival if frame.age_s is None else frame.arrival - frame.age_s
        published = []

        def publish_detections(result) -> None:  # before the steps when adapting after publishing
            published.append(self._publish_detections(io, msg, rgb, result))

        result = adapter.process(rgb, stream=io.label, arrival_time=arrival, publish=publish_detections,
                                 adapt_until=self._idle_until() if adapter.config.adapt_after_publish else None)
        self._prewarm_pending = True
        if not published:
            published.append(self._publish_detections(io, msg, rgb, result))
        if not published[0]:
            return
        report = result.report.as_dict()
        uncertainty = build_uncertainty(msg.header, report, io.label, self.get_fully_qualified_name())
        with self._publish_lock:
            if self._active:
                io.uncertainty.publish(uncertainty)
        io.stats.published(report)
        if report.get("auto_reset"):
            self.get_logger().warning(f"camera '{io.label}': automatic reset to the source weights: "
                                      f"{report['auto_reset']}")

    def _idle_until(self) -> float | None:
        """When the worker's next frame is due (now if one waits already); None: not known yet."""
        now = time.perf_counter()
        return now if self._frame_waiting() else self._next_frame.next_due(now)

    def _frame_waiting(self) -> bool:
        """A frame of some camera waits for the worker."""
        slots = self._slots
        return slots is not None and any(slots.waiting(camera) for camera in self._cameras)

    def _prewarm_when_due(self) -> float | None:
        """Worker thread, between frames: one throwaway prediction that ends ``deadline.prewarm_ms``
        before the next frame is due, so that the frame's own runs warm. Returns the seconds until that moment
        (None: nothing to do before the next frame)."""
        try:
            return self._prewarm_step()
        except Exception as exc:  # noqa: BLE001 - logged; a failed pre-warm only leaves the next frame cold
            self._prewarm_pending = False
            self._throttle(("prewarm", "failed"), self.get_logger().error,
                           f"pre-warm before the next frame failed: {type(exc).__name__}: {exc}")
            return None

    def _prewarm_step(self) -> float | None:
        adapter = self._adapter
        if not self._prewarm_pending or adapter is None or self._slots is None:
            return None
        now = time.perf_counter()
        due = self._next_frame.next_due(now)
        start = adapter.prewarm_at(due) if due is not None else None
        if start is None:
            self._prewarm_pending = False
            return None
        if now < start:
            return start - now
        self._prewarm_pending = False
        if not self._frame_waiting():  # else the frame needs the time
            adapter.prewarm(until=due)
        return None

    def _publish_detections(self, io: CameraIO, msg, rgb, result) -> bool:
        """Publish a frame's detections (and debug image); False if the node was deactivated meanwhile."""
        height, width = rgb.shape[:2]
        detections = self._messages.build(msg.header, result.detections, self._class_names,
                                          image_size=(width, height))
        debug = None
        if io.debug_image is not None and io.debug_image.get_subscription_count() > 0:
            debug = rgb_to_image(draw_detections(rgb, result.detections, self._class_names), "rgb8",
                                 header=msg.header)
        with self._publish_lock:
            if not self._active:  # deactivated while this frame was in work
                io.stats.dropped()
                return False
            io.detections.publish(detections)
            if debug is not None:
                io.debug_image.publish(debug)
        return True

    def _apply_pending_settings(self, adapter) -> None:
        with self._lock:
            pending, self._pending_settings = self._pending_settings, None
        if pending:
            try:
                adapter.update_config(**pending)
            except ValueError as exc:  # validated already; reported should the core disagree
                self.get_logger().error(f"adaptation settings not applied: {exc}")
            if adapter.gate_note:
                self.get_logger().warning(adapter.gate_note)

    def _on_frame_error(self, camera: str, frame: Frame, exc: BaseException) -> None:
        io = self._cameras.get(camera)
        text = f"{type(exc).__name__}: {exc}"
        if io is not None:
            io.stats.failed(f"in the adapter: {text}")
        self._throttle((camera, "failed"), self.get_logger().error,
                       f"camera '{io.label if io else camera}': frame failed in the adapter: {text}")

    # ---- service and diagnostics -------------------------------------------------------------

    def _on_reset(self, request, response):
        # The adapter's lock makes this wait for the frame in work, if any (one frame's time at most).
        adapter = self._adapter
        if adapter is None:
            response.success = False
            response.message = f"not configured (state {self._state_label}): nothing to reset"
            return response
        adapter.reset()
        self._manual_resets += 1
        response.success = True
        response.message = f"all cameras ({len(self._cameras)}) back to the source weights"
        self.get_logger().info(f"reset: {response.message}")
        return response

    def _publish_diagnostics(self) -> None:
        name = self.get_fully_qualified_name()
        with self._lock:
            # what is in force: a reconfigure parameter set since the last configure waits for the next one
            pending = sorted(name for name, used in self._in_use.items() if self._values[name] != used)
            values = {**self._values, **self._in_use}
        adapter = self._adapter
        if self._configure_error:
            level, message = ERROR, f"configure failed: {self._configure_error}"
        elif self._state_label == "active":
            level, message = OK, "active"
        elif self._start_note and self._state_label == "unconfigured":
            level, message = WARN, f"unconfigured: {self._start_note}"
        else:
            level, message = (WARN if self._state_label == "unconfigured" else OK), self._state_label
        info = {
            "state": self._state_label,
            "model": values["model.path"] or "default detector",
            "device": self._device or values["model.device"],
            "mode": adapter.config.mode if adapter is not None else values["adaptation.mode"],
            "objective": adapter.config.objective if adapter is not None else values["adaptation.objective"],
            "detections_type": self._messages.msg_type.__name__,
            "torch_threads": self._threads or values["model.threads"],
            "manual_resets": self._manual_resets,
            "prewarms": adapter.prewarms if adapter is not None else 0,
        }
        if pending:
            info["pending_reconfigure"] = ", ".join(pending)
        if self._device.startswith("cuda") or self._cuda_used:
            import torch

            # falls back to about 0 after cleanup: the model's GPU memory is freed
            info["cuda_memory_mb"] = torch.cuda.memory_allocated() / 2**20
        statuses = [node_status(name, level, message, info)]
        for io in list(self._cameras.values()):
            hint = (", ".join(sub.topic_name for sub in io.subscriptions)
                    + f" (input.transport {values['input.transport']}) with QoS {values['input.qos']}")
            statuses.append(camera_status(io.stats.snapshot(), name, self._active, input_hint=hint))
        self._diagnostics.publish(diagnostic_array(self.get_clock().now().to_msg(), statuses))

    @property
    def autostart(self) -> bool:
        """Configure and activate at start-up: the parameter, and never after its override was refused
        (the string "false" may well have meant false; starting on the default would hide the mistake)."""
        return bool(self.value("autostart")) and "autostart" not in self._refused_overrides


def auto_values_text(given, effective) -> str:
    """What the "auto" adaptation values stand for with the loaded model, for the configure log."""
    parts = []
    for field, auto in AUTO_VALUES.items():
        if getattr(given, field) == auto:
            value = getattr(effective, field)
            parts.append(f"{field} {value:g} (auto), " if isinstance(value, float) else f"{field} {value} (auto), ")
    return "".join(parts)


def main(args=None) -> None:
    rclpy.init(args=args)
    node = TTTPerceptionNode()
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if node.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            node.trigger_activate()
        executor.spin()
    except (KeyboardInterrupt, _external_shutdown()):
        pass
    finally:
        node._release()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def _external_shutdown():
    """``ExternalShutdownException`` where rclpy has it (Humble and later)."""
    return getattr(rclpy.executors, "ExternalShutdownException", KeyboardInterrupt)


if __name__ == "__main__":
    main()
