"""One-file checkpoints: round trip, and errors that name the file and the problem."""

import pytest
import torch

from ttt_perception.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ttt_perception.model import ModelConfig, build_model


def small_config(**changes):
    return ModelConfig(**{"task": "detector", "input_size": 32, "width": 8, "groups": 4, **changes})


def test_round_trip_keeps_weights_config_and_metadata(tmp_path):
    model = build_model(small_config(), seed=1)
    path = save_checkpoint(model, tmp_path / "m.pt", {"note": "hello", "epochs": 3})
    loaded, meta = load_checkpoint(path)
    assert loaded.config == model.config
    assert meta == {"note": "hello", "epochs": 3}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(model(x)["heatmap"], loaded(x)["heatmap"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothing\.pt does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_truncated_file_is_named(tmp_path):
    path = save_checkpoint(build_model(small_config()), tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"m\.pt is not a readable checkpoint"):
        load_checkpoint(path)


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt has format None"):
        load_checkpoint(foreign)


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    path = save_checkpoint(build_model(small_config()), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["width"] = 16  # the stored weights are for width 8
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="does not match its architecture"):
        load_checkpoint(path)
    payload["config"]["task"] = "segmenter"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="invalid architecture config"):
        load_checkpoint(path)
