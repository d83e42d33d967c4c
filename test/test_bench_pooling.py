"""``bench pool-seeds``: runs over different seeds pooled into the numbers of one run over all of them."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ttt_perception.bench.accuracy import summarise
from ttt_perception.bench.pooling import join, pool
from ttt_perception.bench.report import render_results
from ttt_perception.cli import main
from ttt_perception.corruptions import CORRUPTIONS

REPO = Path(__file__).resolve().parents[1]
OFF, DEFAULTS = "joint training (off)", "TTT online (node defaults)"


def _one_seed_run(seed: int, errors: dict[str, float], command: str, corruptions=CORRUPTIONS) -> dict:
    sets = ["clean", *(f"{c}/5" for c in corruptions)]
    results = {name: {s: {"error": e + i, "ms_per_frame": 1.0, "mean_steps": 0.0} for i, s in enumerate(sets)}
               for name, e in errors.items()}
    config = {"mode": "online", "learning_rate": 0.0}
    block = {"model": "default classifier", "frames_per_set": 10, "input_size": 32, "seeds": [seed],
             "reset_frames": None, "tent_lr": {"chosen_lr": 0.001}, "features_lr": None,
             "rotation_accuracy_clean": 0.9 + seed / 100,
             "methods": {name: {"config": config, "frames_per_set": 10} for name in errors},
             "results": results, "spread": {name: {} for name in errors}}
    return {"command": command, "profile": "full", "seed": 0, "machine": "CPU test", "created": f"day {seed}",
            "split": "test", "severities": [5], "corruptions": list(corruptions), "seeds": [seed],
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


def test_a_baselines_learning_rate_must_agree_only_where_the_baseline_was_measured():
    tent = "Tent (entropy, norm affine, online)"
    for methods, refused in (({OFF: 50.0, DEFAULTS: 40.0}, False), ({OFF: 50.0, tent: 45.0}, True)):
        first, second = _one_seed_run(0, methods, "a"), _one_seed_run(1, methods, "b")
        second["tasks"]["classifier"]["tent_lr"] = {"chosen_lr": 0.01}
        if refused:
            with pytest.raises(SystemExit, match="tent_lr"):
                pool({"a.json": first, "b.json": second}, "x")
        else:
            assert pool({"a.json": first, "b.json": second}, "x")["tasks"]["classifier"]["seeds"] == [0, 1]


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


def _part(corruptions, command: str) -> dict:
    """Seed 0 of ``_one_seed_run`` restricted to ``corruptions`` (the same numbers set by set)."""
    whole = _one_seed_run(0, {OFF: 50.0, DEFAULTS: 40.0}, command)
    part = _one_seed_run(0, {OFF: 50.0, DEFAULTS: 40.0}, command, corruptions)
    block = part["tasks"]["classifier"]
    block["results"] = {name: {key: whole["tasks"]["classifier"]["results"][name][key] for key in per_set}
                        for name, per_set in block["results"].items()}
    return part


def test_parts_over_disjoint_corruptions_join_into_the_run_over_all_of_them():
    whole = _one_seed_run(0, {OFF: 50.0, DEFAULTS: 40.0}, "whole")
    block = whole["tasks"]["classifier"]
    block["by_seed"] = {name: {"0": per_set} for name, per_set in block["results"].items()}
    first, second = _part(CORRUPTIONS[8:], "second half"), _part(CORRUPTIONS[:8], "first half")
    joined = join({"accuracy_b.json": first, "accuracy_a.json": second}, "bench join-corruptions ...")
    assert joined["corruptions"] == list(CORRUPTIONS)  # the benchmark's order, whatever the files' order
    assert joined["tasks"]["classifier"]["results"] == whole["tasks"]["classifier"]["results"]
    assert summarise(joined["tasks"]["classifier"], "classifier", [5]) == summarise(
        whole["tasks"]["classifier"], "classifier", [5])
    assert [p["corruptions"] for p in joined["pooled_from"]] == [list(CORRUPTIONS[8:]), list(CORRUPTIONS[:8])]
    text = render_results({"accuracy_joined": {**joined, "summary": {}}, "accuracy_b": first})
    assert "Corruptions " + ", ".join(CORRUPTIONS[8:]) + " (seeds [0]) from `accuracy_b.json`" in text
    assert "### Accuracy under corruption: `accuracy_b.json`" not in text  # a part: the joined file's provenance


@pytest.mark.parametrize("change, message", [
    (lambda run: run.update(seeds=[1]), "seeds"),
    (lambda run: run.update(corruptions=list(CORRUPTIONS[7:])), "already in"),
    (lambda run: run["tasks"]["classifier"]["results"][OFF]["clean"].update(error=99.0), "not the same frames"),
    (lambda run: run["tasks"]["classifier"].update(frames_per_set=20), "frames_per_set"),
])
def test_parts_that_cannot_be_joined_are_refused(change, message):
    first, second = _part(CORRUPTIONS[:8], "a"), _part(CORRUPTIONS[8:], "b")
    change(second)
    with pytest.raises(SystemExit, match=message):
        join({"a.json": first, "b.json": second}, "x")
    with pytest.raises(SystemExit, match="at least two"):
        join({"a.json": first}, "x")


def test_accuracy_on_a_part_of_the_corruptions_measures_only_those(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    for cached in ("tent_lr_classifier.json", "features_lr_classifier.json"):
        shutil.copy(REPO / "results" / cached, results / cached)
    monkeypatch.setenv("TTT_PERCEPTION_RESULTS", str(results))
    common = ["bench", "accuracy", "--task", "classifier", "--frames", "4", "--methods", "off", "--reset-frames", "2"]
    assert main([*common, "--corruptions", "fog,contrast,snow", "--name", "whole"]) == 0
    assert main([*common, "--corruptions", " fog", "--name", "part_fog"]) == 0
    assert main([*common, "--corruptions", "snow,contrast", "--name", "part_rest"]) == 0
    assert main(["bench", "join-corruptions", str(results / "part_fog.json"), str(results / "part_rest.json"),
                 "--name", "joined"]) == 0
    whole, joined = (json.loads((results / f"{n}.json").read_text()) for n in ("whole", "joined"))
    assert whole["corruptions"] == joined["corruptions"] == ["snow", "fog", "contrast"]
    assert set(whole["tasks"]["classifier"]["results"][OFF]) == {"clean", "snow/5", "fog/5", "contrast/5"}
    for key, record in whole["tasks"]["classifier"]["results"][OFF].items():
        assert joined["tasks"]["classifier"]["results"][OFF][key]["error"] == pytest.approx(record["error"]), key
    assert all("over 3 of the 15 corruptions only" in t["detail"] for t in joined["targets"]
               if "rotation" not in t["target"])
    assert joined["tasks"]["classifier"]["tent_lr"] is None  # Tent was not measured: no learning rate chosen
    assert list(whole["tasks"]["classifier"]["results"]) == [OFF, f"{OFF}, first 2"]
    assert main([*common[:-1], "4", "--corruptions", "fog", "--name", "all_frames"]) == 0  # --reset-frames 4 of 4
    all_frames = json.loads((results / "all_frames.json").read_text())["tasks"]["classifier"]
    assert list(all_frames["results"]) == [OFF] and all_frames["reset_frames"] == 4  # no second, same row
    with pytest.raises(SystemExit, match="unknown"):
        main([*common, "--corruptions", "fog,haze", "--name", "bad"])
