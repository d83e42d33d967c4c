"""``ttt-perception bag make|replay|score``: synthetic flights, replay into ROS, scoring."""

from __future__ import annotations

from pathlib import Path

from .rosbag_io import STORAGES
from .schedule import DEFAULT_SCHEDULE


def add_bag_parser(subparsers) -> None:
    bag = subparsers.add_parser("bag", help="rosbag tools: make a synthetic flight, replay a bag, score outputs",
                                description=__doc__)
    tools = bag.add_subparsers(dest="bag", required=True)
    _add_make(tools)
    _add_replay(tools)
    _add_score(tools)


def _add_make(tools) -> None:
    from .flight import DEFAULT_START_TIME, IMAGE_FORMATS

    parser = tools.add_parser("make", help="write a synthetic flight bag with ground truth",
                              description="Write a synthetic flight: camera frames along an environment schedule "
                                          "and the ground truth of every frame (see docs/simulation.md).")
    parser.add_argument("out", help="new bag directory")
    parser.add_argument("--schedule", default=DEFAULT_SCHEDULE,
                        help=f"CONDITION[@SEVERITY]:SECONDS,... (default '{DEFAULT_SCHEDULE}'); "
                             "conditions: clear or a corruption name")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second per camera (default 10)")
    parser.add_argument("--cameras", nargs="+", default=["camera"],
                        help="camera names; topics /<camera>/image[/compressed] and /<camera>/ground_truth")
    parser.add_argument("--size", type=int, default=96, help="frame side in pixels (default 96)")
    parser.add_argument("--format", choices=IMAGE_FORMATS, default="raw",
                        help="raw: sensor_msgs/Image rgb8; jpeg/png: sensor_msgs/CompressedImage")
    parser.add_argument("--encoding", default="rgb8",
                        help="raw image encoding: rgb8 (default), bgr8, rgba8, bgra8, mono8, mono16, 32FC1, 32FC3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start-time", type=float, default=DEFAULT_START_TIME,
                        help="stamp of the first frame in seconds (e.g. 0 for a simulator's clock)")
    parser.add_argument("--storage", choices=STORAGES, default="mcap")
    parser.set_defaults(run=_run_make)


def _run_make(args) -> int:
    from .flight import make_flight

    info = make_flight(args.out, schedule=args.schedule, rate_hz=args.rate, cameras=args.cameras, size=args.size,
                       image_format=args.format, encoding=args.encoding, seed=args.seed, start_time=args.start_time,
                       storage=args.storage)
    print(f"wrote {info.path}: {info.frames_per_camera} frames x {len(args.cameras)} camera(s), "
          f"{info.duration_s:.1f} s; segments: {', '.join(info.segments)}")
    for topic, msgtype in info.topics.items():
        print(f"  {topic}  [{msgtype}]")
    return 0


def _add_replay(tools) -> None:
    parser = tools.add_parser("replay", help="publish a bag's image topics with recorded timing; record outputs",
                              description="Publish a bag (any sensor_msgs/Image or CompressedImage topics) into "
                                          "the ROS graph with its recorded timing, optionally with /clock, and "
                                          "record chosen output topics into a new bag.")
    parser.add_argument("bag", help="input bag (directory, .mcap or .db3)")
    parser.add_argument("--topics", nargs="+", help="bag topics to publish (default: every image topic)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="rename published topics")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    parser.add_argument("--start-offset", type=float, default=0.0, help="seconds into the bag to start at")
    loop = parser.add_mutually_exclusive_group()
    loop.add_argument("--loop", action="store_true", help="repeat until interrupted")
    loop.add_argument("--loops", type=int, default=1, help="play this many times (default 1)")
    parser.add_argument("--clock", action="store_true", help="publish /clock with the bag time (use_sim_time)")
    parser.add_argument("--clock-hz", type=float, default=40.0)
    parser.add_argument("--out", help="record into this new bag")
    parser.add_argument("--record", nargs="+",
                        help="topics to record (default with --out: <camera>/detections, <camera>/uncertainty of "
                             "each played <camera>/image topic, and /diagnostics)")
    parser.add_argument("--storage", choices=STORAGES, default="mcap")
    parser.add_argument("--qos", choices=("reliable", "sensor_data"), default="reliable",
                        help="QoS of the image publishers")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="wait up to this many seconds for subscribers (and for publishers of recorded topics)")
    parser.add_argument("--drain", type=float, default=10.0,
                        help="after the last message, record at most this long while outputs still arrive")
    parser.set_defaults(run=_run_replay)


def _run_replay(args) -> int:
    from ..ros.dds_profile import use_large_image_profile
    from .replay import BagReplayer, ReplayOptions, parse_remap

    use_large_image_profile()  # before rclpy starts: camera-sized frames through shared memory
    options = ReplayOptions(topics=args.topics, remap=parse_remap(args.remap), rate=args.rate,
                            start_offset_s=args.start_offset, loops=0 if args.loop else args.loops,
                            clock=args.clock, clock_hz=args.clock_hz, out=args.out, record=args.record,
                            storage=args.storage, qos=args.qos, wait_s=args.wait, drain_s=args.drain)
    summary = BagReplayer(args.bag, options).run()
    for topic, count in summary.sent.items():
        print(f"published {count} messages on {topic}")
    for topic, count in summary.recorded.items():
        print(f"recorded {count} messages on {topic}")
    if summary.out:
        print(f"wrote {summary.out}")
    return 0


def _add_score(tools) -> None:
    parser = tools.add_parser("score", help="score recorded outputs against the ground truth; JSON + PNG",
                              description="Match the outputs of one or more runs to a flight's ground truth by "
                                          "frame_id and stamp; report per segment and per run.")
    parser.add_argument("runs", nargs="+", metavar="[LABEL=]BAG",
                        help="output bags of replays; LABEL defaults to the mode the node reported")
    parser.add_argument("--ground-truth", help="the flight bag (default: the input bag the replay recorded)")
    parser.add_argument("--json", default="results/bag_score.json", help="JSON output (default %(default)s)")
    parser.add_argument("--png", default="results/bag_score.png", help="plot output (default %(default)s)")
    parser.add_argument("--window", type=int, help="frames per point of the quality-over-time plot")
    parser.set_defaults(run=_run_score)


def parse_run_argument(text: str):
    label, sep, path = text.partition("=")
    if sep and label and not Path(text).exists():
        return label, path
    return None, text


def _run_score(args) -> int:
    from .score import format_tables, score_bags

    report = score_bags([parse_run_argument(r) for r in args.runs], args.ground_truth, args.json, args.png,
                        args.window)
    print(format_tables(report))
    print(f"wrote {report['json']} and {report['png']}")
    return 0
