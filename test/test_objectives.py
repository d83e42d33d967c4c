"""The self-supervised batch and the parameter sets a test-time step may change."""

import torch
import torch.nn.functional as F

from ttt_perception.default_models import RECIPES
from ttt_perception.model import build_model
from ttt_perception.objectives import adaptable_parameters, augmented_copies, rotation_batch


def test_copies_are_shifted_crops_never_mirrored():
    image = torch.rand(3, 16, 16)
    copies = augmented_copies(image, 64, torch.Generator().manual_seed(0))
    assert torch.equal(copies[0], image)
    padded = F.pad(image[None], (4, 4, 4, 4), mode="reflect")[0]
    crops = [padded[:, dy:dy + 16, dx:dx + 16] for dy in range(9) for dx in range(9)]
    for copy in copies[1:]:
        assert any(torch.equal(copy, crop) for crop in crops)  # a mirrored copy would match none
    assert len({tuple(c.flatten()[:8].tolist()) for c in copies}) > 10  # and they do differ


def test_rotation_batch_starts_with_the_plain_frame_at_four_rotations():
    image = torch.rand(3, 8, 8)
    images, labels = rotation_batch(image, 8, torch.Generator().manual_seed(0))
    assert labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    for k in range(4):
        assert torch.equal(images[k], torch.rot90(image, k, dims=(1, 2)))


def test_parameter_sets():
    model = build_model(RECIPES["detector"].model)
    extractor = adaptable_parameters(model, "rotation")
    stem = adaptable_parameters(model, "rotation", "stem")
    norm = adaptable_parameters(model, "entropy")
    assert set(extractor) == {f"extractor.{n}" for n, _ in model.extractor.named_parameters()}
    assert set(stem) == {"extractor.0.weight", "extractor.1.weight", "extractor.1.bias"}  # conv, GroupNorm
    assert set(stem) < set(extractor)
    assert norm and all(".weight" in n or ".bias" in n for n in norm) and not set(norm) <= set(stem)


def test_stem_profile_adapts_only_the_stem():
    import numpy as np

    from ttt_perception.adaptation_config import AdaptationConfig
    from ttt_perception.adapter import TestTimeAdapter

    model = build_model(RECIPES["detector"].model)
    adapter = TestTimeAdapter(model, AdaptationConfig(parameters="stem", learning_rate=0.01), "cpu")
    frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    adapter.process(frame, stream="cam")
    adapted = adapter.stream_parameters("cam")
    assert set(adapted) == {"extractor.0.weight", "extractor.1.weight", "extractor.1.bias"}
    assert not torch.equal(adapted["extractor.0.weight"], model.extractor[0].weight)
    later = dict(adapter.model.named_parameters())
    for name, param in model.named_parameters():
        if name not in adapted:
            assert torch.equal(later[name], param), name
