"""The codebase's shape: one home for each choice list and default."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from ttt_perception import choices

PACKAGE = Path(__file__).resolve().parents[1] / "ttt_perception"
CHOICE_LISTS = {name: getattr(choices, name)
                for name in ("MODES", "OBJECTIVES", "PARAMETER_SETS", "POLICIES", "STOP_REASONS")}


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_choice_lists_are_written_only_in_the_choices_module():
    copies = []
    for path in _modules():
        if path.name == "choices.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Tuple) and node.elts and all(isinstance(e, ast.Constant) for e in node.elts):
                values = tuple(e.value for e in node.elts)
                copies += [f"{path.relative_to(PACKAGE)}:{node.lineno} {name}"
                           for name, choice in CHOICE_LISTS.items() if values == choice]
    assert copies == []


def test_adaptation_config_defaults_are_the_choices_modules():
    from ttt_perception.adapter import AdaptationConfig

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
