"""Test-wide set-up: DDS on loopback and a ROS domain of this run's own."""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A domain per test run, so parallel runs on one machine never hear each other; make/CI pass one in.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
