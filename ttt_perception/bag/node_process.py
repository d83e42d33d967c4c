"""The perception node in a process of its own (``python -m ttt_perception.ros.node``).

The one way the demo, the benchmarks and the tests start a node. The child inherits the environment
(ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE, RMW_IMPLEMENTATION), so it lives in the same ROS graph
as its parent. Parameters are passed as ``--ros-args -p`` (after ``--params-file``, so they win);
``ros_args`` adds arguments as typed on a command line, ``env`` variables; ``torch_threads`` sets the node's
parameter ``model.threads`` (the environment's thread settings are left alone, as ``ros2 launch`` leaves them).
The node logs to stdout only (no ROS log files), which goes to ``log_path``; without one, to a temporary file
removed at ``stop()`` unless TTT_KEEP_NODE_LOGS is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding ttt_perception/


def ros_argument(name: str, value: Any) -> str:
    """``name:=value`` in the YAML form ``--ros-args -p`` expects."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        text = "[" + ",".join(f"'{v}'" for v in value) + "]"
    elif isinstance(value, str):
        text = f"'{value}'" if value else "''"
    elif isinstance(value, float):
        text = repr(float(value))
    else:
        text = str(value)
    return f"{name}:={text}"


class NodeProcess:
    """Start with ``start()`` (or as a context manager); ``stop()`` sends SIGINT, then kills after a grace time.

    ``large_image_profile``: give the child the Fast DDS profile for camera-sized frames where the
    environment names none (``ros/dds_profile.py``); the parent should then use it too.
    """

    def __init__(self, parameters: dict[str, Any] | None = None, namespace: str = "",
                 node_name: str = "ttt_perception", log_path: str | None = None, use_sim_time: bool = False,
                 torch_threads: int | None = None, params_file: str | None = None,
                 large_image_profile: bool = True, ros_args: Sequence[str] = (),
                 env: dict[str, str] | None = None):
        self.parameters = dict(parameters or {})
        if torch_threads is not None:
            self.parameters["model.threads"] = int(torch_threads)
        self.ros_args = list(ros_args)
        self.env = dict(env or {})  # on top of this process's environment
        if use_sim_time:
            self.parameters["use_sim_time"] = True
        self.namespace = namespace
        self.node_name = node_name
        self.params_file = params_file
        self.large_image_profile = large_image_profile
        self._temporary_log = not log_path
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="ttt_node_", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    @property
    def fully_qualified_name(self) -> str:
        prefix = "/" + self.namespace.strip("/") if self.namespace.strip("/") else ""
        return f"{prefix}/{self.node_name}"

    def command(self) -> list:
        args = [sys.executable, "-m", "ttt_perception.ros.node", "--ros-args", "-r", f"__node:={self.node_name}",
                "--disable-external-lib-logs"]  # no log files: the log is stdout, in log_path
        if self.namespace.strip("/"):
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        if self.params_file:
            args += ["--params-file", str(self.params_file)]
        for name, value in self.parameters.items():
            args += ["-p", ros_argument(name, value)]
        return args + self.ros_args

    def start(self) -> NodeProcess:
        from ..ros.dds_profile import use_large_image_profile

        env = {**os.environ, **self.env}
        if self.large_image_profile:
            use_large_image_profile(env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
        env.setdefault("ROS_LOG_DIR", str(Path(tempfile.gettempdir()) / "ttt_perception_ros_logs"))
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        try:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()  # the child holds its own descriptor
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._temporary_log and not os.environ.get("TTT_KEEP_NODE_LOGS"):
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
