"""bag make / score (rosbags only) and bag replay against plain rclpy subscribers (no perception node)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from ttt_perception.bag import ground_truth
from ttt_perception.bag.flight import camera_topics, make_flight, read_flight_info
from ttt_perception.bag.rosbag_io import REPLAY_CUSTOM_DATA_KEY, jazzy_typestore, ns_to_stamp, open_writer, read_header
from ttt_perception.bag.schedule import parse_schedule, plan_frames
from ttt_perception.bag.score import UNCERTAINTY_SCHEMA, format_tables, read_ground_truth, score_bags
from ttt_perception.cli import main as cli_main

# ---- schedule -------------------------------------------------------------------------------------


def test_schedule_ramp_spends_equal_time_per_level():
    segments = parse_schedule("clear:1,fog@1-5:2,gaussian_noise@3:1")
    plan = plan_frames(segments, rate_hz=10)
    assert len(plan) == 40
    fog = [p.severity for p in plan if p.condition == "fog"]
    assert [fog.count(level) for level in range(1, 6)] == [4, 4, 4, 4, 4]
    assert fog == sorted(fog)
    assert {p.severity for p in plan if p.condition == "clear"} == {0}
    assert {p.severity for p in plan if p.condition == "gaussian_noise"} == {3}
    assert plan[15].time_s == pytest.approx(1.5)
    falling = parse_schedule("fog@5-2:4")[0]
    assert [falling.severity_at(i, 8) for i in range(8)] == [5, 5, 4, 4, 3, 3, 2, 2]


@pytest.mark.parametrize("text, reason", [
    ("", "empty"), ("fog:3", "needs @SEVERITY"), ("fog@6:3", "1..5"), ("clear@2:3", "no severity"),
    ("haze@2:3", "unknown condition"), ("clear:-1", "> 0"), ("clear", "CONDITION"), ("fog@a:2", "N or N-M"),
])
def test_schedule_errors_name_the_problem(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_schedule(text)


# ---- make ----------------------------------------------------------------------------------------


def _messages(bag):
    from rosbags.rosbag2 import Reader

    typestore = jazzy_typestore()
    with Reader(bag) as reader:
        return [(c.topic, c.msgtype, t, raw, typestore.deserialize_cdr(raw, c.msgtype))
                for c, t, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_make_writes_images_and_ground_truth_with_matching_stamps(tmp_path, storage):
    from ttt_perception.ros.image_conversion import image_to_rgb

    info = make_flight(tmp_path / "flight", schedule="clear:1,fog@5:1", rate_hz=4, cameras=["front", "rear"],
                       seed=3, storage=storage, start_time=100.0)
    assert info.frames_per_camera == 8
    assert set(info.topics) == {"/front/image", "/front/ground_truth", "/rear/image", "/rear/ground_truth"}
    messages = _messages(tmp_path / "flight")
    images = [m for m in messages if m[1] == "sensor_msgs/msg/Image"]
    truths = [m for m in messages if m[0].endswith("/ground_truth")]
    assert len(images) == len(truths) == 16
    for topic, _, log_ns, raw, msg in images:
        stamp_ns, frame_id = read_header(raw)
        assert stamp_ns == log_ns == msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        assert frame_id == msg.header.frame_id == camera_topics(topic.split("/")[1])["frame_id"]
        assert image_to_rgb(msg).shape == (96, 96, 3)
    assert images[0][2] == 100 * 10**9 and images[2][2] == 100 * 10**9 + 250_000_000
    frames = [ground_truth.decode(m[4].data) for m in truths]
    assert {(f.frame_id, f.stamp_ns) for f in frames} == {read_header(m[3])[::-1] for m in images}
    assert [f.severity for f in frames if f.frame_id == "front_optical_frame"] == [0] * 4 + [5] * 4
    assert all(len(f.boxes) == len(f.class_ids) >= 1 for f in frames)
    # cameras see different scenes; the same arguments give the same bag
    assert not np.array_equal(image_to_rgb(images[0][4]), image_to_rgb(images[1][4]))
    make_flight(tmp_path / "again", schedule="clear:1,fog@5:1", rate_hz=4, cameras=["front", "rear"], seed=3,
                storage=storage, start_time=100.0)
    assert [bytes(m[3]) for m in _messages(tmp_path / "again")] == [bytes(m[3]) for m in messages]
    assert read_flight_info(tmp_path / "flight")["schedule"] == "clear:1,fog@5:1"


def test_make_compressed_images(tmp_path):
    from ttt_perception.ros.image_conversion import compressed_to_rgb

    make_flight(tmp_path / "flight", schedule="clear:1", rate_hz=3, image_format="png")
    images = [m for m in _messages(tmp_path / "flight") if m[1] == "sensor_msgs/msg/CompressedImage"]
    assert [m[0] for m in images] == ["/camera/image/compressed"] * 3
    assert images[0][4].format == "png"
    assert compressed_to_rgb(images[0][4]).shape == (96, 96, 3)


def test_ground_truth_round_trip():
    frame = ground_truth.GroundTruthFrame(
        stamp_ns=5 * 10**9 + 7, frame_id="cam", image_topic="/cam/image", width=640, height=480, frame_index=3,
        time_s=0.3, segment_index=1, segment="fog 1-5", condition="fog", severity=2,
        boxes=np.array([[1, 2, 30, 40]], np.float32), class_ids=("7",))
    back = ground_truth.decode(ground_truth.encode(frame))
    assert back.key == ("cam", 5 * 10**9 + 7)
    assert back.class_ids == ("7",) and back.severity == 2 and back.segment == "fog 1-5"
    np.testing.assert_allclose(back.boxes, frame.boxes)
    assert ground_truth.is_ground_truth(ground_truth.encode(frame))
    with pytest.raises(ValueError):
        ground_truth.decode(json.dumps({"schema": "other"}))


# ---- score ---------------------------------------------------------------------------------------


def _write_outputs(path, truth, answer, sent=True, report=None, replay=None):
    """An output bag as the node and replay would write it; ``answer(frame)`` -> detections list or None;
    ``report(frame)`` -> the values of the frame's uncertainty report (JSON form), or None for none;
    ``replay``: the replay record (metadata custom data) as ``bag replay`` writes it."""
    typestore = jazzy_typestore()
    String = typestore.types["std_msgs/msg/String"]
    writer = open_writer(path)
    if replay is not None:
        writer.set_custom_data(REPLAY_CUSTOM_DATA_KEY, json.dumps(replay))
    detections = writer.add_connection("/camera/detections", "std_msgs/msg/String", typestore=typestore)
    uncertainty = writer.add_connection("/camera/uncertainty", "std_msgs/msg/String", typestore=typestore)
    log = writer.add_connection("/replay/sent", "std_msgs/msg/String", typestore=typestore)
    for frame in truth:
        sec, nanosec = ns_to_stamp(frame.stamp_ns)
        if sent:
            document = {"schema": "ttt_perception/ReplaySent", "version": 1, "topic": "/camera/image",
                        "stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame.frame_id,
                        "sent_wall_ns": frame.stamp_ns, "bag_time_ns": frame.stamp_ns, "loop": 0}
            writer.write(log, frame.stamp_ns, typestore.serialize_cdr(String(data=json.dumps(document)),
                                                                      "std_msgs/msg/String"))
        values = report(frame) if report else None
        if values is not None:
            document = {"schema": UNCERTAINTY_SCHEMA, "header": {"stamp": {"sec": sec, "nanosec": nanosec},
                                                                 "frame_id": frame.frame_id}, "values": values}
            writer.write(uncertainty, frame.stamp_ns + 20_000_000,
                         typestore.serialize_cdr(String(data=json.dumps(document)), "std_msgs/msg/String"))
        rows = answer(frame)
        if rows is None:
            continue
        document = {"schema": "ttt_perception/Detection2DArray", "version": 1,
                    "header": {"stamp": {"sec": sec, "nanosec": nanosec}, "frame_id": frame.frame_id},
                    "image": {"width": 96, "height": 96},
                    "detections": [{"bbox": {"center": {"x": (b[0] + b[2]) / 2, "y": (b[1] + b[3]) / 2},
                                             "size_x": b[2] - b[0], "size_y": b[3] - b[1]},
                                    "results": [{"class_id": c, "score": s}]} for b, c, s in rows]}
        writer.write(detections, frame.stamp_ns + 20_000_000,
                     typestore.serialize_cdr(String(data=json.dumps(document)), "std_msgs/msg/String"))
    writer.close()


def test_score_matches_by_stamp_per_segment_and_run(tmp_path):
    make_flight(tmp_path / "flight", schedule="clear:2,fog@5:2", rate_hz=5)
    truth = read_ground_truth(tmp_path / "flight")
    assert len(truth) == 20

    def perfect(frame):
        return [(b.tolist(), c, 0.9) for b, c in zip(frame.boxes, frame.class_ids)]

    def wrong_class_when_shifted_and_drops(frame):
        if frame.frame_index % 5 == 4:
            return None  # dropped
        return [(b.tolist(), c if frame.severity == 0 else "x", 0.9) for b, c in zip(frame.boxes, frame.class_ids)]

    def one_deadline_missed(frame):
        return {"deadline_met": frame.frame_index != 7, "steps_taken": 1, "total_ms": 5.0}

    _write_outputs(tmp_path / "good", truth, perfect, report=one_deadline_missed)
    _write_outputs(tmp_path / "bad", truth, wrong_class_when_shifted_and_drops)
    report = score_bags([("good", str(tmp_path / "good")), ("bad", str(tmp_path / "bad"))], str(tmp_path / "flight"),
                        tmp_path / "s.json", tmp_path / "s.png")
    good, bad = report["runs"]["good"], report["runs"]["bad"]
    assert good["groups"]["all"]["map50"] == pytest.approx(1.0)
    assert good["groups"]["all"]["accuracy"] == pytest.approx(1.0)
    assert good["groups"]["all"]["answered"] == 20 and good["groups"]["all"]["dropped"] == 0
    assert bad["groups"]["clear"]["map50"] == pytest.approx(1.0)
    assert bad["groups"]["shifted"]["map50"] == pytest.approx(0.0)
    assert bad["groups"]["shifted"]["accuracy"] == pytest.approx(0.0)
    assert bad["groups"]["all"]["dropped"] == 4 and bad["groups"]["all"]["answered"] == 16
    assert bad["groups"]["clear"]["map50_stream"] < 1.0  # dropped frames count as frames with no detections
    assert list(good["segments"]) == ["0: clear", "1: fog 5"]
    assert good["groups"]["all"]["e2e_ms"]["mean"] == pytest.approx(20.0)
    assert len(report["series"]["map50"]["good"]) == 20
    assert json.loads((tmp_path / "s.json").read_text())["runs"]["bad"]["groups"]["all"]["dropped"] == 4
    assert (tmp_path / "s.png").stat().st_size > 10_000
    assert good["groups"]["all"]["deadline_met_frames"] == 19 and good["groups"]["all"]["deadline_reports"] == 20
    assert bad["groups"]["all"]["deadline_reports"] == 0 and bad["groups"]["all"]["deadline_met"] is None
    table = format_tables(report)
    assert "mAP shifted" in table
    good_row = next(line for line in table.splitlines() if line.startswith("good "))
    assert "19/20" in good_row.split()  # counted, not a percentage that rounds 95% or 99.8% away


def test_score_refuses_a_run_replayed_from_another_flight(tmp_path):
    """Flights share frame ids and stamps (fixed start time), so only the replay record tells them apart."""
    make_flight(tmp_path / "a", schedule="clear:1", rate_hz=4, seed=0)
    make_flight(tmp_path / "b", schedule="clear:1", rate_hz=4, seed=1)
    truth = read_ground_truth(tmp_path / "a")
    assert [f.key for f in truth] == [f.key for f in read_ground_truth(tmp_path / "b")]
    record = {"input_bag": str((tmp_path / "a").resolve()), "input_flight": read_flight_info(tmp_path / "a")}
    _write_outputs(tmp_path / "run", truth, lambda f: [], replay=record)
    assert score_bags([(None, str(tmp_path / "run"))])["ground_truth"] == record["input_bag"]
    assert score_bags([(None, str(tmp_path / "run"))], str(tmp_path / "a"))["runs"]["run"]
    with pytest.raises(ValueError, match="run: replayed from another flight"):
        score_bags([(None, str(tmp_path / "run"))], str(tmp_path / "b"))


def test_score_without_sent_log_scores_every_ground_truth_frame(tmp_path):
    make_flight(tmp_path / "flight", schedule="clear:1", rate_hz=4)
    truth = read_ground_truth(tmp_path / "flight")
    _write_outputs(tmp_path / "run", truth[:2], lambda f: [], sent=False)
    report = score_bags([(None, str(tmp_path / "run"))], str(tmp_path / "flight"))
    run = report["runs"]["run"]  # label: the bag's name (no mode reported)
    assert run["groups"]["all"]["frames"] == 4 and run["groups"]["all"]["answered"] == 2


def test_cli_make_and_score(tmp_path, capsys):
    flight = tmp_path / "flight"
    assert cli_main(["bag", "make", str(flight), "--schedule", "clear:1,snow@2:1", "--rate", "3",
                     "--cameras", "a", "b", "--format", "jpeg", "--storage", "sqlite3"]) == 0
    assert "6 frames x 2 camera(s)" in capsys.readouterr().out
    truth = read_ground_truth(flight)
    _write_outputs(tmp_path / "run", truth, lambda f: [(b.tolist(), c, 0.8) for b, c in zip(f.boxes, f.class_ids)])
    assert cli_main(["bag", "score", f"perfect={tmp_path / 'run'}", "--ground-truth", str(flight),
                     "--json", str(tmp_path / "r.json"), "--png", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "perfect" in out and "1: snow 2" in out
    assert (tmp_path / "r.png").is_file()


# ---- replay against plain rclpy nodes ---------------------------------------------------------------


class EchoNode:
    """A plain rclpy node in its own context and thread: records what arrives; answers images on
    ``<camera>/detections`` with a std_msgs/String holding the image's stamp and frame_id."""

    def __init__(self, image_topics, use_sim_time=False):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("echo", context=self.context)
        self.images, self.clock = {t: [] for t in image_topics}, []
        self._publishers = {}
        for topic in image_topics:
            answer_topic = topic.rsplit("/image", 1)[0] + "/detections"
            self._publishers[topic] = self.node.create_publisher(String, answer_topic, 10)
            msg_type = CompressedImage if topic.endswith("/compressed") else Image
            self.node.create_subscription(msg_type, topic, lambda m, t=topic: self._on_image(t, m),
                                          qos_profile_sensor_data)
        self.node.create_subscription(Clock, "/clock", lambda m: self.clock.append(
            (time.monotonic(), m.clock.sec * 10**9 + m.clock.nanosec)), 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_image(self, topic, msg):
        from std_msgs.msg import String

        stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        self.images[topic].append((time.monotonic(), stamp, msg.header.frame_id, bytes(msg.data[:12])))
        self._publishers[topic].publish(String(data=json.dumps([stamp, msg.header.frame_id])))

    def close(self):
        self.executor.shutdown(timeout_sec=2)
        self.thread.join(timeout=2)
        self.node.destroy_node()
        self.context.try_shutdown()


@pytest.fixture(scope="module")
def small_flight(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "flight"
    make_flight(path, schedule="clear:1,fog@3:1", rate_hz=5, cameras=["camera", "other"])
    return path


@pytest.mark.ros
def test_replay_publishes_with_recorded_timing_and_records_answers(small_flight, tmp_path):
    from ttt_perception.bag.replay import BagReplayer, ReplayOptions

    echo = EchoNode(["/camera/image", "/other/image"])
    sent = []
    try:
        summary = BagReplayer(small_flight, ReplayOptions(
            rate=2.0, out=str(tmp_path / "out"), record=["/camera/detections", "/other/detections"], wait_s=20,
            idle_s=0.5, min_drain_s=0.5, on_sent=sent.append)).run()
    finally:
        echo.close()
    assert summary.sent == {"/camera/image": 10, "/other/image": 10}
    assert summary.unmatched == []
    received = echo.images["/camera/image"]
    assert len(received) == 10
    truth = {f.key for f in read_ground_truth(small_flight)}
    assert {(frame_id, stamp) for _, stamp, frame_id, _ in received} <= truth
    # recorded timing at twice the speed: 10 frames at 5 Hz -> 0.9 s of bag time -> 0.45 s
    span = received[-1][0] - received[0][0]
    assert 0.3 < span < 1.5
    # the answers were recorded, and the sent log lists every published frame
    assert summary.recorded["/camera/detections"] == 10 and summary.recorded["/other/detections"] == 10
    messages = _messages(tmp_path / "out")
    logged = [json.loads(m[4].data) for m in messages if m[0] == "/replay/sent"]
    assert len(logged) == 20 and [d["index"] for d in logged] == list(range(20))
    assert {(d["frame_id"], d["stamp"]["sec"] * 10**9 + d["stamp"]["nanosec"]) for d in logged} == truth
    assert [s.stamp_ns for s in sent] == [d["stamp"]["sec"] * 10**9 + d["stamp"]["nanosec"] for d in logged]


@pytest.mark.ros
def test_replay_offset_loops_remap_and_clock(small_flight, tmp_path):
    from ttt_perception.bag.replay import BagReplayer, ReplayOptions, parse_remap

    echo = EchoNode(["/robot/cam/image"])
    try:
        summary = BagReplayer(small_flight, ReplayOptions(
            topics=["/camera/image"], remap=parse_remap(["/camera/image:=/robot/cam/image"]), rate=4.0,
            start_offset_s=1.0, loops=2, clock=True, wait_s=20)).run()
        time.sleep(0.3)
    finally:
        echo.close()
    assert summary.sent == {"/robot/cam/image": 10}  # the second half (5 frames), twice
    stamps = [stamp for _, stamp, _, _ in echo.images["/robot/cam/image"]]
    truth = sorted(f.stamp_ns for f in read_ground_truth(small_flight) if f.frame_id == "camera_optical_frame")
    assert stamps == truth[5:] * 2
    # /clock carried the bag time being played, from the start offset to the last frame, once per loop
    clock_values = [value for _, value in echo.clock]
    assert min(clock_values) == truth[5] and truth[-1] <= max(clock_values) < truth[-1] + 10**9
    assert sum(later < earlier for earlier, later in zip(clock_values, clock_values[1:])) == 1


@pytest.mark.ros
def test_replay_refuses_a_bag_without_images(tmp_path):
    from ttt_perception.bag.replay import BagReplayer

    typestore = jazzy_typestore()
    writer = open_writer(tmp_path / "strings")
    connection = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=typestore)
    writer.write(connection, 1, typestore.serialize_cdr(typestore.types["std_msgs/msg/String"](data="x"),
                                                        "std_msgs/msg/String"))
    writer.close()
    with pytest.raises(ValueError, match="no sensor_msgs/Image"):
        BagReplayer(tmp_path / "strings").run()


@pytest.mark.ros
def test_replay_compressed_images_arrive_unchanged(tmp_path):
    from ttt_perception.bag.replay import BagReplayer, ReplayOptions, default_record_topics
    from ttt_perception.ros.image_conversion import compressed_to_rgb

    make_flight(tmp_path / "flight", schedule="clear:1", rate_hz=5, image_format="jpeg")
    assert default_record_topics(["/camera/image/compressed"]) == [
        "/camera/detections", "/camera/uncertainty", "/diagnostics"]
    stored = [m for m in _messages(tmp_path / "flight") if m[1] == "sensor_msgs/msg/CompressedImage"]
    echo = EchoNode(["/camera/image/compressed"])
    try:
        summary = BagReplayer(tmp_path / "flight", ReplayOptions(rate=5.0, wait_s=20)).run()
        deadline = time.monotonic() + 5
        while len(echo.images["/camera/image/compressed"]) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        echo.close()
    assert summary.sent == {"/camera/image/compressed": 5}
    received = echo.images["/camera/image/compressed"]
    assert [r[1] for r in received] == [m[2] for m in stored]
    assert [r[3] for r in received] == [bytes(m[4].data[:12]) for m in stored]  # the JPEG bytes themselves
    assert compressed_to_rgb(stored[0][4]).shape == (96, 96, 3)


VISION_MSGS_4 = {  # vision_msgs 4.x (Humble and later), as a robot's bag stores them
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
                                                "geometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/Detection2D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                   "vision_msgs/BoundingBox2D bbox\nstring id\n",
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


def test_score_reads_vision_msgs_detections_from_a_robot_bag(tmp_path):
    """A bag recorded where vision_msgs exists carries its definitions; score reads them from the bag."""
    from rosbags.typesys import get_types_from_msg

    make_flight(tmp_path / "flight", schedule="clear:1", rate_hz=4)
    truth = read_ground_truth(tmp_path / "flight")
    typestore = jazzy_typestore()
    for name, text in VISION_MSGS_4.items():
        typestore.register(get_types_from_msg(text, name))
    T = typestore.types
    writer = open_writer(tmp_path / "robot", "sqlite3")
    connection = writer.add_connection("/front/detections", "vision_msgs/msg/Detection2DArray", typestore=typestore)
    for frame in truth:
        sec, nanosec = ns_to_stamp(frame.stamp_ns)
        header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                          frame_id=frame.frame_id)
        pose = T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                             orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                           w=1.0)),
            covariance=np.zeros(36))
        detections = []
        for box, class_id in zip(frame.boxes, frame.class_ids):
            center = T["vision_msgs/msg/Pose2D"](
                position=T["vision_msgs/msg/Point2D"](x=float(box[0] + box[2]) / 2, y=float(box[1] + box[3]) / 2),
                theta=0.0)
            detections.append(T["vision_msgs/msg/Detection2D"](
                header=header, results=[T["vision_msgs/msg/ObjectHypothesisWithPose"](
                    hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=class_id, score=0.8), pose=pose)],
                bbox=T["vision_msgs/msg/BoundingBox2D"](center=center, size_x=float(box[2] - box[0]),
                                                        size_y=float(box[3] - box[1])), id=""))
        message = T["vision_msgs/msg/Detection2DArray"](header=header, detections=detections)
        writer.write(connection, frame.stamp_ns, typestore.serialize_cdr(message, "vision_msgs/msg/Detection2DArray"))
    writer.close()
    report = score_bags([("robot", str(tmp_path / "robot"))], str(tmp_path / "flight"))
    result = report["runs"]["robot"]["groups"]["all"]
    assert result["answered"] == 4 and result["map50"] == pytest.approx(1.0) and result["accuracy"] == 1.0
