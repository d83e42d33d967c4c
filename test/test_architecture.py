"""The codebase's shape: one-way layers, and one home for each choice list and default.

Layers, bottom up: the learning core (``ttt_perception/*.py``), the ROS layer (``ros/``), the
tools (``bag/``, ``bench/``, ``cli.py``). A module imports its own layer or lower ones, never a
higher one; imports inside functions count too.
"""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from ttt_perception import choices

PACKAGE = Path(__file__).resolve().parents[1] / "ttt_perception"
CHOICE_LISTS = {name: getattr(choices, name)
                for name in ("MODES", "OBJECTIVES", "PARAMETER_SETS", "POLICIES", "STOP_REASONS")}


CORE, ROS, TOOLS = 0, 1, 2
LAYER_NAMES = ("learning core", "ROS layer", "tools")
ROS_ONLY = ("rclpy", "rcl_interfaces", "rosgraph_msgs", "lifecycle_msgs", "builtin_interfaces")


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "ttt_perception" or len(parts) == 1:
        return CORE
    if parts[1] in ("bag", "bench", "cli"):
        return TOOLS
    return ROS if parts[1] == "ros" else CORE


def _imports(path: Path):
    """(line, absolute module name) of every import in the file, function bodies included."""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base)
                if node.module:
                    yield node.lineno, f"{prefix}.{node.module}"
                else:  # from . import name: name may be a module
                    yield from ((node.lineno, f"{prefix}.{alias.name}") for alias in node.names)
            else:
                yield node.lineno, node.module


def test_the_layer_of_a_module_is_its_folder():
    assert _layer("ttt_perception.adapter") == _layer("ttt_perception.choices") == CORE
    assert _layer("ttt_perception.ros.node") == ROS
    assert {_layer(m) for m in ("ttt_perception.cli", "ttt_perception.bag.replay",
                                "ttt_perception.bench.latency")} == {TOOLS}
    imports = dict(_imports(PACKAGE / "bag" / "demo.py"))
    assert "ttt_perception.choices" in imports.values()  # relative, top of the file
    assert "ttt_perception.bag.replay" in imports.values()  # relative, inside a function


def test_imports_only_go_down_the_layers():
    upward = []
    for path in _modules():
        here = _module_name(path)
        for line, target in _imports(path):
            if target.startswith("ttt_perception") and _layer(target) > _layer(here):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} ({LAYER_NAMES[_layer(here)]}) "
                              f"imports {target} ({LAYER_NAMES[_layer(target)]})")
    assert upward == []


def test_the_learning_core_imports_no_ros_package_and_the_ros_layer_no_rosbag_io():
    found = []
    for path in _modules():
        layer = _layer(_module_name(path))
        for line, target in _imports(path):
            top = target.split(".")[0]
            if layer == CORE and (top in ROS_ONLY or top.endswith("_msgs") or top == "rosbags"):
                found.append(f"{path.relative_to(PACKAGE)}:{line} {target}")
            if layer == ROS and (top == "rosbags" or target.startswith("ttt_perception.bag")):
                found.append(f"{path.relative_to(PACKAGE)}:{line} {target}")
    assert found == []


def test_choice_lists_are_written_only_in_the_choices_module():
    copies = []
    for path in _modules():
        if path.name == "choices.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Tuple) and node.elts and all(
                    isinstance(e, ast.Constant) for e in node.elts):
                values = tuple(e.value for e in node.elts)
                copies += [f"{path.relative_to(PACKAGE)}:{node.lineno} {name}"
                           for name, choice in CHOICE_LISTS.items() if values == choice]
    assert copies == []


def test_adaptation_config_defaults_are_the_choices_modules():
    from ttt_perception.adaptation_config import AdaptationConfig

    fields = {f.name: f.default for f in dataclasses.fields(AdaptationConfig)}
    assert fields == dict(choices.ADAPTATION_DEFAULTS)
    assert AdaptationConfig().budget_ms == 0.0  # the node's 100 ms is its parameter default
    assert choices.NODE_BUDGET_MS == 100.0


def test_choices_and_node_parameters_import_without_torch_or_rclpy():
    code = ("import sys, ttt_perception.choices, ttt_perception.ros.parameters\n"
            "print(sorted({'torch', 'rclpy'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
