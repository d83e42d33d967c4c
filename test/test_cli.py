"""``ttt-perception``: a refused input is one line on stderr and exit status 2, checked before the work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ttt_perception.cli import DEBUG_ENV, main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _results_in_tmp(tmp_path, monkeypatch):
    """Whatever a command writes under results/ goes to the test's own folder."""
    monkeypatch.setenv("TTT_PERCEPTION_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _refused(argv: list[str], capsys) -> str:
    """The error line of a command that must be refused with exit status 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ---- errors: one line, or the traceback on request ------------------------------------------------


def test_pool_seeds_refuses_a_result_of_another_benchmark_in_one_line(capsys):
    realtime = str(REPO / "results" / "realtime_quick.json")
    accuracy = str(REPO / "results" / "accuracy_full_test_classifier_seed0.json")
    err = _refused(["bench", "pool-seeds", accuracy, realtime, "--name", "pooled"], capsys)
    assert err.startswith(f"ttt-perception bench: error: {realtime} is not a result of bench accuracy")
    assert "tasks" in err and "split" in err  # what it lacks


def test_debug_flag_and_environment_variable_give_the_traceback(monkeypatch):
    argv = ["bench", "pool-seeds", str(REPO / "results" / "realtime_quick.json"),
            str(REPO / "results" / "realtime_200.json"), "--name", "pooled"]
    with pytest.raises(ValueError, match="not a result of bench accuracy"):
        main(["--debug", *argv])
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(ValueError, match="not a result of bench accuracy"):
        main(argv)


def test_a_missing_model_file_is_the_last_line_of_a_failed_process(tmp_path):
    missing = tmp_path / "no_such.pt"
    done = subprocess.run([sys.executable, "-m", "ttt_perception.cli", "bench", "realtime", "--quick",
                           "--model", str(missing)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == f"ttt-perception bench: error: model file {missing} does not exist"
    assert "Traceback" not in done.stderr


def test_json_that_is_not_an_object_is_refused_too(tmp_path, capsys):
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([1, 2]))
    err = _refused(["bench", "join-corruptions", str(listing), str(listing), "--name", "joined"], capsys)
    assert f"{listing} is not a result of bench accuracy" in err
