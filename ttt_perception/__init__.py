"""ttt_perception: test-time training for ROS 2 perception.

The learning core (the modules directly in this package) never imports rclpy; ``ros`` is the node,
``bag`` and ``bench`` are the tools on top (docs/architecture.md).
"""

__version__ = "0.1.0"
