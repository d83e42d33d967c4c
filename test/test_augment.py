"""Training augmentation: colour jitter keeps the content, the affine warp is small, neither turns an
image by a quarter (the rotation task's label) or mirrors it."""

import torch

from ttt_perception.augment import colour_jitter, random_affine
from ttt_perception.data import make_classification_frames


def _frames(count=64):
    data = make_classification_frames("val", count, size=32, seed=0)
    return torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255.0


def test_colour_jitter_changes_colours_not_shapes():
    images = _frames()
    jittered = colour_jitter(images, torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape and jittered.min() >= 0 and jittered.max() <= 1
    assert (jittered - images).abs().mean() > 0.02  # it does change the colours

    def edges(x):  # where the grey level changes: the digit's outline
        grey = x.mean(1)
        return (grey[:, 1:, :] - grey[:, :-1, :]).abs()

    # the spatial layout survives: the outline of each jittered frame correlates with its own
    a, b = edges(images).flatten(1), edges(jittered).flatten(1)
    own = torch.nn.functional.cosine_similarity(a, b)
    other = torch.nn.functional.cosine_similarity(a, b.roll(1, 0))
    assert (own > other).float().mean() > 0.9


def test_random_affine_is_a_small_warp_never_a_quarter_turn():
    images = _frames()
    warped = random_affine(images, torch.Generator().manual_seed(1))
    assert warped.shape == images.shape
    assert not torch.equal(warped, images)
    for k in (1, 2, 3):  # closer to the original than to any quarter turn of it, frame by frame
        turned = torch.rot90(images, k, dims=(2, 3))
        to_original = (warped - images).abs().flatten(1).mean(1)
        to_turned = (warped - turned).abs().flatten(1).mean(1)
        assert (to_original < to_turned).float().mean() > 0.9


def test_same_generator_state_same_augmentation():
    images = _frames(8)
    a = random_affine(colour_jitter(images, torch.Generator().manual_seed(3)), torch.Generator().manual_seed(3))
    b = random_affine(colour_jitter(images, torch.Generator().manual_seed(3)), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
