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


# ---- bench: arguments checked before the measurements ----------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    (["--rates", "10,0"], "--rates must be > 0 Hz, got 10,0"),
    (["--rates", "-30"], "--rates must be > 0 Hz"),
    (["--rates", "10,fast"], "--rates '10,fast': give numbers separated by commas"),
    (["--budgets", "1.2,-3"], "--budgets must be >= 0"),
    (["--budgets", "1.2,,3"], "--budgets '1.2,,3': give numbers separated by commas"),
    (["--budgets", "nan"], "--budgets 'nan': give finite numbers"),
    (["--frames", "-1"], "--frames must be >= 1"),
    (["--methods", "off,fast"], "--methods: unknown fast; choose from off, tent, reset"),
    (["--methods", ","], "--methods: unknown ','"),
])
def test_bench_realtime_checks_rates_and_budgets_first(argv, message, tmp_path, capsys):
    err = _refused(["bench", "realtime", "--quick", *argv], capsys)
    assert err.startswith(f"ttt-perception bench: error: {message}")
    assert not (tmp_path / "results").exists()  # nothing measured, nothing written


def test_bench_realtime_takes_the_profiles_rates_and_budgets_or_the_given_ones():
    from ttt_perception.bench.realtime import PROFILES, checked_rates_and_budgets
    from ttt_perception.cli import build_parser

    quick = build_parser().parse_args(["bench", "realtime", "--quick"])
    assert checked_rates_and_budgets(quick, PROFILES["quick"]) == (PROFILES["quick"]["rates"],
                                                                   PROFILES["quick"]["budgets"])
    given = build_parser().parse_args(["bench", "realtime", "--rates", "15", "--budgets", "2.5,0"])
    assert checked_rates_and_budgets(given, PROFILES["full"]) == ((15.0,), (2.5, 0.0))


def test_bench_realtime_methods_keep_the_runs_order_whatever_the_order_given():
    from ttt_perception.bench.evaluation import JOINT
    from ttt_perception.bench.realtime import ADAPT_AFTER, COLD, METHOD_KEYS, parse_methods, realtime_methods

    assert parse_methods("adapt-after, off") == [JOINT, ADAPT_AFTER]
    assert parse_methods("adapt-after-cold") == [ADAPT_AFTER + COLD]
    assert parse_methods(None) == list(realtime_methods(1e-3)) == list(METHOD_KEYS.values())


def test_bench_tune_takes_corruptions_space_or_comma_separated():
    from ttt_perception.bench.tune import chosen_corruptions
    from ttt_perception.cli import build_parser
    from ttt_perception.corruptions import CORRUPTIONS

    def chosen(*words):
        return chosen_corruptions(build_parser().parse_args(["bench", "tune", *words]))

    assert chosen("--corruptions", "contrast", "fog") == chosen("--corruptions", "contrast,fog") == ("fog", "contrast")
    assert chosen("--corruptions", "fog,", "snow") == ("snow", "fog")
    assert chosen() == CORRUPTIONS


def test_bench_tune_refuses_an_unknown_corruption_before_making_frames(tmp_path):
    with pytest.raises(SystemExit, match=r"--corruptions: unknown \['fgo'\]"):
        main(["bench", "tune", "--task", "classifier", "--corruptions", "fog,fgo"])
    assert not (tmp_path / "results").exists()


def test_bench_tune_says_how_many_corruptions_it_averaged(tmp_path, capsys):
    argv = ["bench", "tune", "--task", "classifier", "--frames", "4", "--seeds", "0", "--device", "cpu",
            "--corruptions", "contrast,fog", "--candidate", "defaults", "--name", "tune_two"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mean error (2)" in out and "(15)" not in out
    payload = json.loads((tmp_path / "results" / "tune_two.json").read_text())
    assert payload["corruptions"] == ["fog", "contrast"]
    assert set(payload["results"]["off"]) == {"clean", "fog/5", "contrast/5"}
    assert "--corruptions fog contrast" in payload["command"]


def _tiny_checkpoint(path: Path, task: str) -> Path:
    from ttt_perception.checkpoint import save_checkpoint
    from ttt_perception.model import ModelConfig, build_model

    return save_checkpoint(build_model(ModelConfig(task=task, input_size=32, width=8)), path)


def test_a_benchmark_refuses_a_checkpoint_of_the_other_task_as_soon_as_it_is_loaded(tmp_path, capsys):
    import torch

    from ttt_perception.bench.common import load_model

    detector = _tiny_checkpoint(tmp_path / "detector.pt", "detector")
    with pytest.raises(ValueError, match=f"{detector} is a detector checkpoint; this benchmark needs a classifier"):
        load_model("classifier", str(detector), torch.device("cpu"))
    model, description = load_model("detector", str(detector), torch.device("cpu"))
    assert model.config.task == "detector" and description == f"checkpoint {detector}"
    for bench in ("realtime", "gradual"):
        err = _refused(["bench", bench, "--quick", "--device", "cpu", "--model", str(detector)], capsys)
        assert err.strip().splitlines()[-1] == (f"ttt-perception bench: error: {detector} is a detector checkpoint; "
                                                "this benchmark needs a classifier")
    classifier = _tiny_checkpoint(tmp_path / "classifier.pt", "classifier")
    argv = ["bench", "realtime", "--quick", "--task", "detector", "--device", "cpu", "--model", str(classifier)]
    err = _refused(argv, capsys)
    assert err.strip().splitlines()[-1] == (f"ttt-perception bench: error: {classifier} is a classifier checkpoint; "
                                            "this benchmark needs a detector")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--sizes", "96x96", "640x48O"], "--sizes '640x48O': give WIDTHxHEIGHT in pixels, e.g. 640x480"),
    (["--sizes", "96x96", "640"], "--sizes '640': give WIDTHxHEIGHT"),
    (["--sizes", "0x480"], "--sizes '0x480': width and height must be >= 1"),
    (["--cameras", "1", "0"], "--cameras >= 1"),
    (["--model", "no_such.pt"], "model file no_such.pt does not exist"),
])
def test_bench_latency_checks_every_size_and_the_model_before_the_first_node(argv, message, tmp_path, capsys):
    out = tmp_path / "latency.json"
    err = _refused(["bench", "latency", *argv, "--out", str(out)], capsys)
    assert err.startswith("ttt-perception bench: error: ") and message in err
    assert not out.exists()


def test_bench_latency_sizes_are_width_by_height():
    from ttt_perception.bench.latency import parse_size

    assert parse_size("640x480") == parse_size("640X480") == (640, 480)


# ---- train: refused before the training starts ---------------------------------------------------


def _usage_error(argv: list[str], capsys) -> str:
    """argparse's error line of a command refused as a usage error (exit status 2)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("extra", [["--epochs", "1"], ["--rotation-weight", "0"], ["--coco", "a.json"],
                                   ["--image-folder", "classes"]])
def test_train_default_takes_no_option_that_changes_the_recipe(extra, capsys):
    packaged = REPO / "ttt_perception" / "models" / "detector.pt"
    before = packaged.stat().st_mtime_ns
    line = _usage_error(["train", "--task", "detector", "--default", *extra], capsys)
    assert line.startswith("ttt-perception train: error: --default retrains the packaged model with its exact recipe")
    assert extra[0] in line and "--out" in line
    assert packaged.stat().st_mtime_ns == before


@pytest.mark.parametrize(("argv", "message"), [
    (["--task", "detector", "--coco", "a.json", "--image-folder", "classes"], "exclude each other"),
    (["--task", "classifier", "--coco", "a.json"], "--coco trains a detector: use --task detector"),
    (["--image-folder", "classes"], "--image-folder trains a classifier: add --task classifier"),
    (["--images", "pictures"], "--images is the image folder of --coco"),
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--rotation-weight", "-1"], "--rotation-weight must be >= 0, got -1"),
])
def test_train_refuses_data_and_numbers_that_cannot_work(argv, message, tmp_path, capsys):
    line = _usage_error(["train", *argv, "--out", str(tmp_path / "mine.pt")], capsys)
    assert line.startswith("ttt-perception train: error: ") and message in line
    assert list(tmp_path.iterdir()) == []


def test_train_checks_where_the_checkpoint_goes_before_training(tmp_path, capsys):
    line = _usage_error(["train", "--out", str(tmp_path)], capsys)
    assert line == f"ttt-perception train: error: --out {tmp_path} is a directory; give the checkpoint's file name"
    out = tmp_path / "no_such_folder" / "mine.pt"
    line = _usage_error(["train", "--out", str(out)], capsys)
    assert line == f"ttt-perception train: error: --out {out}: the folder {out.parent} does not exist"
    assert not out.parent.exists()


def test_train_with_a_valid_combination_still_trains_and_a_missing_folder_is_one_line(tmp_path, capsys):
    from PIL import Image

    from ttt_perception.checkpoint import load_checkpoint
    from ttt_perception.data import make_classification_frames

    frames = make_classification_frames("val", 60, size=32, seed=0)  # 3 held out for the source statistics
    for index, (image, label) in enumerate(zip(frames.images, frames.labels)):
        folder = tmp_path / "classes" / ("odd" if label % 2 else "even")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")
    out = tmp_path / "mine.pt"
    argv = ["train", "--task", "classifier", "--image-folder", str(tmp_path / "classes"), "--epochs", "1",
            "--device", "cpu", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    model, meta = load_checkpoint(out)
    assert model.config.task == "classifier" and model.config.class_names == ("even", "odd")
    assert meta["train_config"]["epochs"] == 1
    capsys.readouterr()  # the progress bars
    missing = tmp_path / "nowhere"
    err = _refused([*argv[:4], str(missing), *argv[5:]], capsys)
    assert err.startswith("ttt-perception train: error: ") and str(missing) in err


# ---- demo: checks everything first, deletes only its own outputs ----------------------------------


def _earlier_demo(out_dir: Path) -> None:
    """What a demo leaves in ``out_dir`` (empty stand-ins), marked as its own."""
    from ttt_perception.bag.demo import prepare_out_dir

    prepare_out_dir(out_dir)
    for folder in ("flight", "run_off", "run_online+noisy_camera"):
        (out_dir / folder).mkdir()
        (out_dir / folder / "data.mcap").write_bytes(b"bag")
    for name in ("node_off.log", "score.json", "quality_over_time.png"):
        (out_dir / name).write_text("old")


def test_demo_refuses_a_folder_it_did_not_write_and_deletes_nothing(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "flight").mkdir()  # a user's bag that happens to share a name with the demo's
    before = sorted(tmp_path.rglob("*"))
    err = _refused(["demo", "--out-dir", str(tmp_path)], capsys)
    assert err.startswith(f"ttt-perception demo: error: --out-dir {tmp_path} is not empty and was not written by "
                          "the demo (no .ttt_perception_demo in it)")
    assert sorted(tmp_path.rglob("*")) == before
    (tmp_path / "file").write_text("x")
    assert "is a file" in _refused(["demo", "--out-dir", str(tmp_path / "file")], capsys)


@pytest.mark.parametrize(("argv", "message"), [
    (["--schedule", "clear:5,fgo@3:5"], "unknown condition 'fgo'"),
    (["--rate", "0"], "rate must be > 0 Hz"),
    (["--profiles", "no_such_profile"], "no profile 'no_such_profile'"),
    (["--budget-ms", "-5"], "--budget-ms must be >= 0"),
    (["--model", "no_such.pt"], "--model no_such.pt does not exist"),
])
def test_demo_checks_its_arguments_before_it_touches_the_earlier_output(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "demo"
    _earlier_demo(out_dir)
    before = {path: path.read_bytes() for path in out_dir.rglob("*") if path.is_file()}
    err = _refused(["demo", "--out-dir", str(out_dir), *argv], capsys)
    assert err.startswith("ttt-perception demo: error: ") and message in err
    assert {path: path.read_bytes() for path in out_dir.rglob("*") if path.is_file()} == before


def test_demo_replaces_only_its_own_outputs_in_a_folder_it_wrote(tmp_path):
    from ttt_perception.bag.demo import MARKER, prepare_out_dir

    out_dir = tmp_path / "demo"
    _earlier_demo(out_dir)
    (out_dir / "notes.txt").write_text("mine")
    (out_dir / "analysis").mkdir()
    prepare_out_dir(out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([MARKER, "notes.txt", "analysis"])
    assert (out_dir / "notes.txt").read_text() == "mine"
    old = tmp_path / "before_the_marker"  # a demo's output from before the marker: its own, cleared
    _earlier_demo(old)
    (old / MARKER).unlink()
    prepare_out_dir(old)
    assert [p.name for p in old.iterdir()] == [MARKER]
    lone = tmp_path / "lone"  # a user's bag that shares the demo's name, without a node log: refused
    (lone / "flight").mkdir(parents=True)
    with pytest.raises(ValueError, match="not empty and was not written by the demo"):
        prepare_out_dir(lone)
    new = tmp_path / "new" / "demo"
    prepare_out_dir(new)  # a new folder, parents included, is made and marked
    assert [p.name for p in new.iterdir()] == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_out_dir(empty)
    assert [p.name for p in empty.iterdir()] == [MARKER]


@pytest.mark.ros
def test_demo_runs_again_into_its_own_folder_and_keeps_what_it_did_not_write(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    short = ["demo", "--out-dir", str(out_dir), "--schedule", "clear:1,fog@3:1", "--rate", "5", "--profiles"]
    assert main([*short, "--modes", "off"]) == 0
    (out_dir / "notes.txt").write_text("mine")
    assert main([*short, "--modes", "online"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([
        ".ttt_perception_demo", "flight", "run_online", "node_online.log", "score.json", "quality_over_time.png",
        "notes.txt"])  # the first run's run_off and its log are gone, the user's file is not
    assert list(json.loads((out_dir / "score.json").read_text())["runs"]) == ["online"]
