"""Rosbag tools: synthetic flights (``flight``), replay into a running graph (``replay``), scoring of
recorded outputs (``score``), the node in a process of its own (``node_process``), the demo.

Bags are real rosbag2 files (MCAP or sqlite3), read and written with the ``rosbags`` library; only
``replay`` (and the demo that uses it) needs rclpy.
"""
