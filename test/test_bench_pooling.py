"""``bench pool-seeds``: runs over different seeds pooled into the numbers of one run over all of them."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ttt_perception.bench.accuracy import summarise
from ttt_perception.bench.pooling import pool
from ttt_perception.bench.report import render_results
from ttt_perception.cli import main
from ttt_perception.corruptions import CORRUPTIONS

REPO = Path(__file__).resolve().parents[1]
OFF, DEFAULTS = "joint training (off)", "TTT online (node defaults)"


def _one_seed_run(seed: int, errors: dict[str, float], command: str) -> dict:
    sets = ["clean", *(f"{c}/5" for c in CORRUPTIONS)]
    results = {name: {s: {"error": e + i, "ms_per_frame": 1.0, "mean_steps": 0.0} for i, s in enumerate(sets)}
               for name, e in errors.items()}
    config = {"mode": "online", "learning_rate": 0.0}
    block = {"model": "default classifier", "frames_per_set": 10, "input_size": 32, "seeds": [seed],
             "reset_frames": None, "tent_lr": {"chosen_lr": 0.001}, "features_lr": None,
             "rotation_accuracy_clean": 0.9 + seed / 100,
             "methods": {name: {"config": config, "frames_per_set": 10} for name in errors},
             "results": results, "spread": {name: {} for name in errors}}
    return {"command": command, "profile": "full", "seed": 0, "machine": "CPU test", "created": f"day {seed}",
            "split": "test", "severities": [5], "corruptions": list(CORRUPTIONS), "seeds": [seed],
            "tasks": {"classifier": block}, "summary": {}, "targets": []}


def test_pooled_means_and_spreads_are_those_of_each_seeds_numbers():
    runs = {f"seed{s}.json": _one_seed_run(s, {OFF: 50.0 + s, DEFAULTS: 40.0 + 2 * s}, f"run seed {s}")
            for s in (0, 1, 2)}
    pooled = pool(runs, "ttt-perception bench pool-seeds ...")
    block = pooled["tasks"]["classifier"]
    assert pooled["seeds"] == block["seeds"] == [0, 1, 2]
    assert block["results"][DEFAULTS]["fog/5"]["error"] == pytest.approx(np.mean([40 + 2 * s for s in range(3)]) + 10)
    assert block["spread"][DEFAULTS]["fog/5"]["error"] == pytest.approx(np.std([0.0, 2.0, 4.0]))
    assert block["rotation_accuracy_clean"] == pytest.approx(0.91)
    assert sorted(block["by_seed"][OFF]) == ["0", "1", "2"]
    summary = summarise(block, "classifier", [5])[DEFAULTS]
    assert summary["mean_by_severity"]["5"] == pytest.approx(42.0 + 8.0)  # sets 1..15 add 1..15: 8 on average
    assert summary["spread_by_severity"]["5"] == pytest.approx(np.std([40.0, 42.0, 44.0]))  # of the seeds' means
    assert "error_last_tenth_by_severity" not in summary  # runs that did not measure it
    assert [p["command"] for p in pooled["pooled_from"]] == ["run seed 0", "run seed 1", "run seed 2"]
    # a pooled result pools again with a further seed
    again = pool({"pooled.json": pooled, "seed3.json": _one_seed_run(3, {OFF: 53.0, DEFAULTS: 46.0}, "s3")}, "x")
    assert again["tasks"]["classifier"]["seeds"] == [0, 1, 2, 3]
    assert again["tasks"]["classifier"]["results"][OFF]["clean"]["error"] == pytest.approx(51.5)


def test_summary_gives_the_error_in_the_first_and_last_tenth_of_the_streams_when_measured():
    run = _one_seed_run(0, {OFF: 50.0, DEFAULTS: 40.0}, "run")
    block = run["tasks"]["classifier"]
    for i, record in enumerate(block["results"][DEFAULTS].values()):
        record.update(error_first_tenth=45.0 + i, error_last_tenth=30.0 + i)
    block["by_seed"] = {name: {"0": per_set} for name, per_set in block["results"].items()}
    summary = summarise(block, "classifier", [5])
    assert summary[DEFAULTS]["error_first_tenth_by_severity"]["5"] == pytest.approx(45.0 + 8.0)  # sets 1..15
    assert summary[DEFAULTS]["error_last_tenth_by_severity"]["5"] == pytest.approx(30.0 + 8.0)
    assert "error_first_tenth_by_severity" not in summary[OFF]


@pytest.mark.parametrize("change, message", [
    (lambda run: run["tasks"]["classifier"].update(frames_per_set=20), "frames_per_set"),
    (lambda run: run.update(split="val"), "split"),
    (lambda run: run["tasks"]["classifier"]["methods"][DEFAULTS].update(config={"mode": "reset"}), "mode"),
    (lambda run: run["tasks"]["classifier"].update(tent_lr={"chosen_lr": 0.01}), "tent_lr"),
    (lambda run: run["tasks"]["classifier"].update(seeds=[0]), r"seed\(s\) \['0'\]"),
    (lambda run: run["tasks"]["classifier"].update(seeds=[1, 2]), "without each seed's own numbers"),
])
def test_runs_that_did_not_measure_the_same_thing_are_refused(change, message):
    first = _one_seed_run(0, {OFF: 50.0, DEFAULTS: 40.0}, "a")
    second = _one_seed_run(1, {OFF: 50.0, DEFAULTS: 40.0}, "b")
    change(second)
    with pytest.raises(SystemExit, match=message):
        pool({"a.json": first, "b.json": copy.deepcopy(second)}, "x")
    with pytest.raises(SystemExit, match="at least two"):
        pool({"a.json": first}, "x")


def test_seeds_run_apart_and_pooled_equal_one_parallel_run_over_both(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    for cached in ("tent_lr_classifier.json", "features_lr_classifier.json"):  # the val choices, not searched again
        shutil.copy(REPO / "results" / cached, results / cached)
    monkeypatch.setenv("TTT_PERCEPTION_RESULTS", str(results))
    common = ["bench", "accuracy", "--task", "classifier", "--frames", "4", "--methods", "off,tent",
              "--reset-frames", "2"]
    # both seeds in one run, in two worker processes; each seed alone in this process
    assert main([*common, "--seeds", "0,1", "--jobs", "2", "--name", "accuracy_both"]) == 0
    for seed in (0, 1):
        assert main([*common, "--seeds", str(seed), "--name", f"accuracy_seed{seed}"]) == 0
    assert main(["bench", "pool-seeds", str(results / "accuracy_seed0.json"), str(results / "accuracy_seed1.json"),
                 "--name", "pooled"]) == 0
    together, pooled = (json.loads((results / f"{n}.json").read_text()) for n in ("accuracy_both", "pooled"))
    assert (results / "pooled.png").is_file()
    for name, per_set in together["tasks"]["classifier"]["results"].items():
        for key, record in per_set.items():
            mine = pooled["tasks"]["classifier"]["results"][name][key]
            assert mine["error"] == pytest.approx(record["error"]), (name, key)
            assert mine["nll"] == pytest.approx(record["nll"]), (name, key)
            assert pooled["tasks"]["classifier"]["spread"][name][key]["error"] == pytest.approx(
                together["tasks"]["classifier"]["spread"][name][key]["error"])
    tent = "Tent (entropy, norm affine, online)"  # adapts on every frame: each seed's run must reproduce
    assert pooled["summary"]["classifier"][tent]["mean_steps"] == 1.0
    assert pooled["summary"]["classifier"][tent]["mean_by_severity"] == pytest.approx(
        together["summary"]["classifier"][tent]["mean_by_severity"])
    assert [t["detail"] for t in pooled["targets"]] == [t["detail"] for t in together["targets"]]
    seed0 = json.loads((results / "accuracy_seed0.json").read_text())
    heading = "### Accuracy under corruption: `accuracy_seed0.json`"
    assert heading in render_results({"accuracy_seed0": seed0})
    text = render_results({"accuracy_pooled": pooled, "accuracy_seed0": seed0})
    assert heading not in text  # a run pooled into another file is shown as that file's provenance only
    assert f"Seeds [0] from `{results / 'accuracy_seed0.json'}`" in text
    assert f"Seeds [1] from `{results / 'accuracy_seed1.json'}`" in text
