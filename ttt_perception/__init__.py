"""ttt_perception: test-time training for ROS 2 perception.

The learning core (everything outside ``ttt_perception.ros``) never imports rclpy.
"""

__version__ = "0.1.0"
