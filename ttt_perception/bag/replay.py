"""Replay a rosbag2 file into the ROS graph and record chosen topics into a new bag.

``ttt-perception bag replay`` in code: ``BagReplayer(bag, ReplayOptions(...)).run()``.

* Publishes the bag's messages with their recorded timing (bag log time), scaled by ``rate``,
  from ``start_offset_s`` into the bag, ``loops`` times (0: until interrupted). By default the
  played topics are every ``sensor_msgs/Image`` and ``sensor_msgs/CompressedImage`` topic of the
  bag, so bags from any robot work; ``topics`` names others (any type whose Python message package
  imports).
* Messages are published as they are stored (serialised CDR, no decoding), so headers, encodings
  and payloads reach the subscribers unchanged. ``remap`` renames topics
  (``{"/cam/image": "/x/image"}``).
* ``clock``: publishes ``rosgraph_msgs/Clock`` on ``/clock`` with the bag time being played (at
  ``clock_hz`` and right before every message), as ``ros2 bag play --clock`` does, for nodes run
  with ``use_sim_time``. With ``loops`` > 1 the clock jumps back at each new pass, as with
  ``ros2 bag play``.
* ``out``: records the ``record`` topics (default: ``<camera>/detections``,
  ``<camera>/uncertainty`` of every played ``<camera>/image[/compressed]`` topic, and
  ``/diagnostics``) into a new bag, with the wall-clock receive time as bag time, like
  ``ros2 bag record``. Subscription QoS follows what the publishers offer (best effort if any
  publisher is best effort, else reliable). The output bag also holds ``/replay/sent``: one
  ``std_msgs/String`` JSON per published frame (schema ``ttt_perception/ReplaySent`` v1: topic,
  source_topic, stamp, frame_id, bag_time_ns, sent_wall_ns, loop), which ``bag score`` uses as the
  list of frames that were offered to the node.
"""
from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .rosbag_io import (
    FLIGHT_CUSTOM_DATA_KEY,
    IMAGE_TYPES,
    REPLAY_CUSTOM_DATA_KEY,
    ensure_type,
    jazzy_typestore,
    ns_to_stamp,
    open_writer,
    read_custom_data,
    read_header,
)

_LOG = logging.getLogger(__name__)

SENT_TOPIC = "/replay/sent"
SENT_SCHEMA = "ttt_perception/ReplaySent"
SENT_VERSION = 1


@dataclass
class SentFrame:
    """One published message, as the ``on_sent`` callback and ``/replay/sent`` see it."""

    index: int  # running count over the whole replay
    topic: str  # as published (after remapping)
    source_topic: str  # as stored in the bag
    bag_time_ns: int
    sent_wall_ns: int
    loop: int
    stamp_ns: int | None = None  # header stamp, for message types that start with a header
    frame_id: str | None = None

    def to_json(self) -> str:
        document = {"schema": SENT_SCHEMA, "version": SENT_VERSION, "topic": self.topic,
                    "source_topic": self.source_topic, "bag_time_ns": self.bag_time_ns,
                    "sent_wall_ns": self.sent_wall_ns, "loop": self.loop, "index": self.index}
        if self.stamp_ns is not None:
            sec, nanosec = ns_to_stamp(self.stamp_ns)
            document["stamp"] = {"sec": sec, "nanosec": nanosec}
            document["frame_id"] = self.frame_id
        return json.dumps(document, separators=(",", ":"))


@dataclass
class ReplayOptions:
    topics: Sequence[str] | None = None  # bag topics to publish; None: every image topic
    remap: Mapping[str, str] = field(default_factory=dict)
    rate: float = 1.0
    start_offset_s: float = 0.0
    loops: int = 1  # 0: until interrupted
    clock: bool = False
    clock_hz: float = 40.0
    out: str | None = None
    record: Sequence[str] | None = None  # None: the default outputs of the played image topics
    storage: str = "mcap"
    qos: str = "reliable"  # of the publishers: reliable or sensor_data (best effort)
    # wait this long at most for subscribers of played topics / publishers of recorded ones
    wait_s: float = 0.0
    idle_s: float = 1.0  # after the last message: stop when nothing was recorded for this long ...
    drain_s: float = 10.0  # ... or after this long at most
    min_drain_s: float = 1.2  # ... but not before this (one more 1 Hz /diagnostics message)
    node_name: str = "ttt_bag_replay"
    on_sent: Callable[[SentFrame], None] | None = None

    def validated(self) -> ReplayOptions:
        checks = [
            (self.rate > 0, f"rate must be > 0, got {self.rate}"),
            (self.start_offset_s >= 0, f"start offset must be >= 0 s, got {self.start_offset_s}"),
            (self.loops >= 0, f"loops must be >= 0 (0: forever), got {self.loops}"),
            (self.clock_hz > 0, f"clock rate must be > 0 Hz, got {self.clock_hz}"),
            (self.qos in ("reliable", "sensor_data"),
             f"qos must be reliable or sensor_data, got {self.qos!r}"),
            (self.wait_s >= 0 and self.idle_s >= 0 and self.drain_s >= 0,
             "wait, idle and drain must be >= 0 s"),
            (not self.record or bool(self.out), "recording topics needs an output bag (out)"),
        ]
        for ok, reason in checks:
            if not ok:
                raise ValueError(reason)
        return self


@dataclass
class ReplaySummary:
    sent: dict[str, int] = field(default_factory=dict)  # published topic -> messages
    recorded: dict[str, int] = field(default_factory=dict)  # recorded topic -> messages
    out: str | None = None
    wall_s: float = 0.0
    unmatched: list[str] = field(default_factory=list)  # what waiting did not find


def parse_remap(items: Sequence[str]) -> dict[str, str]:
    """``["FROM:=TO", ...]`` (or ``FROM=TO``) -> mapping; ValueError on malformed items."""
    mapping = {}
    for item in items or ():
        source, sep, target = item.partition(":=")
        if not sep:
            source, sep, target = item.partition("=")
        if not sep or not source or not target:
            raise ValueError(f"remapping {item!r} must look like FROM:=TO")
        mapping[_absolute(source)] = _absolute(target)
    return mapping


def default_record_topics(image_topics: Sequence[str]) -> list[str]:
    """``<camera>/detections`` and ``<camera>/uncertainty`` for each
    ``<camera>/image[/compressed]``, plus /diagnostics."""
    topics = []
    for topic in image_topics:
        base = topic
        for suffix in ("/compressed", "/image"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        for name in ("detections", "uncertainty"):
            candidate = f"{base}/{name}"
            if candidate not in topics:
                topics.append(candidate)
    topics.append("/diagnostics")
    return topics


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def message_class(msgtype: str):
    """The rclpy message class of ``pkg/msg/Name``; ImportError naming the missing package."""
    package, kind, name = msgtype.split("/")
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"message type {msgtype} is not available in this ROS installation "
                          f"({exc})") from None


class BagReplayer:
    def __init__(self, bag, options: ReplayOptions | None = None):
        self.bag = Path(bag)
        self.options = (options or ReplayOptions()).validated()
        self._lock = threading.Lock()
        self._writer = None
        self._connections: dict[str, object] = {}
        self._typestore = jazzy_typestore()
        self._subscriptions: dict[str, object] = {}
        self._subscribe_lock = threading.Lock()
        self._last_record_wall = 0.0
        self._stop = threading.Event()
        self.summary = ReplaySummary()

    def stop(self) -> None:
        """Ask a running ``run`` to finish early (from another thread); outputs are still
        written."""
        self._stop.set()

    # ---- set-up --------------------------------------------------------------------------------

    def _played_connections(self, reader) -> list:
        wanted = self.options.topics
        if wanted is None:
            chosen = [c for c in reader.connections if c.msgtype in IMAGE_TYPES]
            if not chosen:
                raise ValueError(f"{self.bag} has no sensor_msgs/Image or CompressedImage topic; "
                                 f"topics: {sorted({c.topic for c in reader.connections})}")
            return chosen
        wanted = [_absolute(t) for t in wanted]
        chosen = [c for c in reader.connections if c.topic in wanted]
        missing = sorted(set(wanted) - {c.topic for c in chosen})
        if missing:
            present = sorted({c.topic for c in reader.connections})
            raise ValueError(f"topics not in {self.bag}: {missing}; it has {present}")
        return chosen

    def run(self) -> ReplaySummary:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rosbags.rosbag2 import Reader

        opts = self.options
        began = time.monotonic()
        context = rclpy.Context()
        rclpy.init(context=context, args=[])
        executor = SingleThreadedExecutor(context=context)
        node = rclpy.create_node(opts.node_name, context=context, start_parameter_services=False)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="bag-replay-executor", daemon=True)
        spinner.start()
        try:
            with Reader(self.bag) as reader:
                played = self._played_connections(reader)
                publishers, topic_of = self._make_publishers(node, played)
                record = list(opts.record) if opts.record is not None else (
                    default_record_topics(sorted(set(topic_of.values()))) if opts.out else [])
                if opts.out:
                    self._open_output(reader, played)
                clock_publisher = self._make_clock(node) if opts.clock else None
                start_ns = reader.start_time + int(opts.start_offset_s * 1e9)
                if clock_publisher is not None:
                    self._clock_state = {"t0": start_ns, "wall0": None, "last": -1}
                    self._publish_clock(start_ns)
                    clock_timer = node.create_timer(1.0 / opts.clock_hz, self._clock_tick)
                self._wait(node, publishers, record)
                record_timer = (node.create_timer(0.25, lambda: self._subscribe_all(node, record))
                                if record else None)
                try:
                    self._play(reader, played, publishers, topic_of, start_ns)
                except KeyboardInterrupt:  # Ctrl-C ends the replay; what was recorded is kept
                    self._stop.set()
                self._drain(bool(record))
                if record_timer is not None:
                    node.destroy_timer(record_timer)
                if clock_publisher is not None:
                    node.destroy_timer(clock_timer)
        finally:
            executor.shutdown(timeout_sec=2.0)
            spinner.join(timeout=2.0)
            node.destroy_node()
            context.try_shutdown()
            with self._lock:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
        self.summary.wall_s = time.monotonic() - began
        self.summary.out = opts.out
        return self.summary

    def _make_publishers(self, node, played):
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

        qos = qos_profile_sensor_data if self.options.qos == "sensor_data" else QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publishers, topic_of = {}, {}
        for connection in played:
            target = self.options.remap.get(connection.topic, connection.topic)
            topic_of[connection.id] = target
            if target not in publishers:
                publishers[target] = node.create_publisher(
                    message_class(connection.msgtype), target, qos)
        return publishers, topic_of

    def _make_clock(self, node):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._clock_msg = Clock
        self._clock_publisher = node.create_publisher(Clock, "/clock", QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        return self._clock_publisher

    def _publish_clock(self, bag_ns: int) -> None:
        state = self._clock_state
        with self._lock:
            if bag_ns <= state["last"]:
                return
            state["last"] = bag_ns
        msg = self._clock_msg()
        msg.clock.sec, msg.clock.nanosec = ns_to_stamp(bag_ns)
        self._clock_publisher.publish(msg)

    def _clock_tick(self) -> None:
        state = self._clock_state
        if state["wall0"] is None:
            return
        now = state["t0"] + int((time.monotonic() - state["wall0"]) * self.options.rate * 1e9)
        self._publish_clock(now)

    def _open_output(self, reader, played) -> None:
        opts = self.options
        self._writer = open_writer(opts.out, opts.storage)
        self._writer.set_custom_data(REPLAY_CUSTOM_DATA_KEY, json.dumps({
            "input_bag": str(self.bag.resolve()), "played": [c.topic for c in played],
            # what ``bag make`` stored of the flight (None for other bags): ``bag score`` checks it
            "input_flight": json.loads(read_custom_data(self.bag, FLIGHT_CUSTOM_DATA_KEY) or "null"),
            "remap": dict(opts.remap), "rate": opts.rate, "start_offset_s": opts.start_offset_s,
            "loops": opts.loops, "clock": opts.clock}))
        self._sent_connection = self._writer.add_connection(SENT_TOPIC, "std_msgs/msg/String",
                                                            typestore=self._typestore)

    def _wait(self, node, publishers, record) -> None:
        """Wait (at most ``wait_s``) until every played topic has a subscriber and every recorded
        one a publisher."""
        opts = self.options
        deadline = time.monotonic() + opts.wait_s
        while True:
            if record:
                self._subscribe_all(node, record)
            missing = [f"subscriber of {t}" for t, p in publishers.items()
                       if p.get_subscription_count() == 0]
            missing += [f"publisher of {t}" for t in record
                        if t not in self._subscriptions
                        or self._subscriptions[t].get_publisher_count() == 0]
            if not missing or time.monotonic() >= deadline or self._stop.is_set():
                break
            time.sleep(0.05)
        if opts.wait_s > 0:
            if missing:
                hint = ("; the ttt_perception node reads <camera>/image/compressed only with input.transport "
                        "compressed" if any(t.endswith("/compressed") for t in missing) else "")
                _LOG.warning("playing without %s (waited %.1f s%s)", ", ".join(missing), opts.wait_s, hint)
            else:
                time.sleep(0.3)  # let the other side finish matching too
        self.summary.unmatched = missing if opts.wait_s > 0 else []

    def _subscribe_all(self, node, record) -> None:
        """Subscribe to every recorded topic that has appeared in the graph (raw CDR, QoS as
        offered)."""
        with self._subscribe_lock:
            self._subscribe_pending(node, record)

    def _subscribe_pending(self, node, record) -> None:
        pending = [t for t in record if t not in self._subscriptions]
        if not pending:
            return
        types = dict(node.get_topic_names_and_types())
        for topic in pending:
            if topic not in types:
                continue
            msgtype = types[topic][0]
            try:
                cls = message_class(msgtype)
            except ImportError as exc:
                _LOG.warning("not recording %s: %s", topic, exc)
                self._subscriptions[topic] = None
                continue
            if not ensure_type(self._typestore, msgtype):
                _LOG.warning("not recording %s: no message definition of %s for the bag",
                             topic, msgtype)
                self._subscriptions[topic] = None
                continue
            with self._lock:
                self._connections[topic] = self._writer.add_connection(
                    topic, msgtype, typestore=self._typestore)
            self._subscriptions[topic] = node.create_subscription(
                cls, topic, lambda data, t=topic: self._record(t, data),
                self._record_qos(node, topic), raw=True)

    @staticmethod
    def _record_qos(node, topic: str):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        offered = node.get_publishers_info_by_topic(topic)
        best_effort = any(info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
                          for info in offered)
        return QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT if best_effort
                          else ReliabilityPolicy.RELIABLE)

    def _record(self, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._writer is None:
                return
            self._writer.write(self._connections[topic], now, data)
            self.summary.recorded[topic] = self.summary.recorded.get(topic, 0) + 1
            if topic != "/diagnostics":
                self._last_record_wall = time.monotonic()

    # ---- playing -------------------------------------------------------------------------------

    def _play(self, reader, played, publishers, topic_of, start_ns: int) -> None:
        opts = self.options
        loop, index = 0, 0
        while not self._stop.is_set() and (opts.loops == 0 or loop < opts.loops):
            wall0 = time.monotonic()
            first = None
            if opts.clock:
                with self._lock:
                    self._clock_state.update(t0=start_ns, wall0=wall0, last=-1)
            for connection, bag_ns, raw in reader.messages(played, start=start_ns):
                if first is None:
                    first = start_ns
                target = wall0 + (bag_ns - first) / 1e9 / opts.rate
                while not self._stop.is_set():
                    remaining = target - time.monotonic()
                    if remaining <= 0:
                        break
                    time.sleep(min(remaining, 0.05))
                if self._stop.is_set():
                    break
                topic = topic_of[connection.id]
                if opts.clock:
                    self._publish_clock(bag_ns)
                stamp_ns, frame_id = self._header_of(connection.msgtype, raw)
                sent_wall_ns = time.time_ns()
                publishers[topic].publish(bytes(raw))
                frame = SentFrame(index, topic, connection.topic, bag_ns, sent_wall_ns, loop,
                                  stamp_ns, frame_id)
                index += 1
                self.summary.sent[topic] = self.summary.sent.get(topic, 0) + 1
                self._log_sent(frame)
                if opts.on_sent is not None:
                    opts.on_sent(frame)
            loop += 1

    @staticmethod
    def _header_of(msgtype: str, raw):
        if msgtype not in IMAGE_TYPES:
            return None, None
        try:
            return read_header(raw)
        except ValueError:
            return None, None

    def _log_sent(self, frame: SentFrame) -> None:
        with self._lock:
            if self._writer is None:
                return
            text = self._typestore.types["std_msgs/msg/String"](data=frame.to_json())
            self._writer.write(self._sent_connection, frame.sent_wall_ns,
                               self._typestore.serialize_cdr(text, "std_msgs/msg/String"))

    def _drain(self, recording: bool) -> None:
        """Keep recording after the last message until the outputs go quiet."""
        if not recording:
            return
        opts = self.options
        end = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                last = max(self._last_record_wall, end)
            if now - end >= opts.drain_s:
                break
            if now - end >= opts.min_drain_s and now - last >= opts.idle_s:
                break
            time.sleep(0.05)


def replay(bag, **options) -> ReplaySummary:
    """``BagReplayer(bag, ReplayOptions(**options)).run()``."""
    return BagReplayer(bag, ReplayOptions(**options)).run()
