"""Test-wide set-up: DDS on loopback and a ROS domain of this run's own."""

import os

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A domain per test run, so parallel runs on one machine never hear each other; make/CI pass one in.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
# Camera-sized frames through shared memory (config/fastdds_large_images.xml), as `make` does.
for _name in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
    os.environ.setdefault(_name, os.path.join(os.path.dirname(__file__), "..", "config", "fastdds_large_images.xml"))
