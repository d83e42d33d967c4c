"""Rosbag tools: synthetic flights (``flight``), scoring of recorded outputs (``score``), the demo.

Everything here reads and writes real rosbag2 files (MCAP or sqlite3) with the ``rosbags`` library and
needs no rclpy. Replaying a bag into a running ROS graph is in ``ttt_perception.ros.replay``.
"""
