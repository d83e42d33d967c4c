"""The package as users get it: colcon build into a workspace, and the command-line tool."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "__pycache__", "*.egg-info",
                                 ".pytest_cache", "results", "*.mcap", "*.db3")


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")
    if colcon is None:
        pytest.fail("colcon is not installed (make test installs colcon-common-extensions)")
    workspace = tmp_path_factory.mktemp("ws")
    shutil.copytree(REPO, workspace / "src" / "ttt_perception", ignore=IGNORED)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([colcon, "build", "--event-handlers", "console_direct-"], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return workspace / "install" / "ttt_perception"


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
