"""The package as users get it: colcon build into a workspace, and the command-line tool."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ros_helpers import colcon_install as colcon_build

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    return colcon_build(tmp_path_factory.mktemp("ws"))


@pytest.mark.slow
def test_colcon_build_puts_executables_where_ros2_run_looks(colcon_install):
    for name in ("ttt_perception_node", "ttt-perception"):
        script = colcon_install / "lib" / "ttt_perception" / name
        assert script.is_file() and os.access(script, os.X_OK), script


@pytest.mark.slow
def test_colcon_build_installs_launch_config_and_models(colcon_install):
    share = colcon_install / "share" / "ttt_perception"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "ttt_perception.launch.py").is_file()
    assert (share / "config" / "ttt_perception.yaml").is_file()
    assert (share / "config" / "noisy_camera.yaml").is_file()  # the profile, next to the YAML for ros2 launch
    assert (colcon_install / "share" / "ament_index" / "resource_index" / "packages" / "ttt_perception").is_file()
    models = list(colcon_install.glob("lib/python3*/site-packages/ttt_perception/models/*.pt"))
    assert {m.name for m in models} >= {"detector.pt", "classifier.pt"}
    assert list(colcon_install.glob("lib/python3*/site-packages/ttt_perception/profiles/noisy_camera.yaml"))


def test_package_xml_has_no_dependency_that_rosdep_installs_with_pip():
    """`rosdep install` runs `sudo pip install` for *-pip keys (python3-pytorch-pip: an unpinned torch,
    refused under PEP 668); torch comes from pip by hand, as the README says."""
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(REPO / "package.xml").getroot()
    keys = [element.text.strip() for element in root if element.tag.endswith("depend")]
    assert "rclpy" in keys and "python3-numpy" in keys
    assert [key for key in keys if key.endswith("-pip") or "torch" in key] == []
    readme = (REPO / "README.md").read_text()
    assert "pip install torch==" in readme and "# not in rosdep" in readme


@pytest.mark.parametrize("args", [[], ["train"], ["bench"], ["bench", "accuracy"]])
def test_every_subcommand_has_help(args):
    done = subprocess.run([sys.executable, "-m", "ttt_perception.cli", *args, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage: ttt-perception" in done.stdout


def test_learning_core_imports_without_rclpy():
    code = ("import sys, importlib, pkgutil, ttt_perception\n"
            "names = [m.name for m in pkgutil.walk_packages(ttt_perception.__path__, 'ttt_perception.')\n"
            "         if '.ros' not in m.name]\n"
            "for name in names: importlib.import_module(name)\n"
            "assert 'rclpy' not in sys.modules, [n for n in names]\n"
            "print(len(names))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 15
