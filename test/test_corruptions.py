"""The 15 benchmark corruptions on real frames: shapes, strength, determinism, RNG hygiene."""

import numpy as np
import pytest

from ttt_perception.corruptions import CORRUPTIONS, corrupt, corrupt_batch
from ttt_perception.data import make_detection_frames


@pytest.fixture(scope="module")
def frames():
    return make_detection_frames("test", 3, size=64, seed=0).images


def _mean_change(a, b):
    return float(np.abs(a.astype(np.int16) - b).mean())


def test_names_in_benchmark_order():
    assert CORRUPTIONS == (
        "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
        "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
        "elastic_transform", "pixelate", "jpeg_compression",
    )


@pytest.mark.parametrize("name", CORRUPTIONS)
@pytest.mark.parametrize("severity", [1, 5])
def test_every_corruption_gives_uint8_of_same_shape(frames, name, severity):
    image = frames[0]
    before = image.copy()
    out = corrupt(image, name, severity)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not np.array_equal(out, image), f"{name} left the image unchanged"
    np.testing.assert_array_equal(image, before)  # input not modified


def test_non_square_image(frames):
    image = np.ascontiguousarray(frames[0][:40])
    for name in CORRUPTIONS:
        assert corrupt(image, name, 3).shape == (40, 64, 3)


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise"])
def test_noise_grows_with_severity(frames, name):
    image = frames[1]
    assert _mean_change(corrupt(image, name, 5), image) > 1.5 * _mean_change(corrupt(image, name, 1), image)


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_deterministic_given_seed(frames, name):
    image = frames[2]
    np.testing.assert_array_equal(corrupt(image, name, 3, seed=11), corrupt(image, name, 3, seed=11))


def test_seed_changes_random_corruptions(frames):
    image = frames[0]
    for name in ("gaussian_noise", "impulse_noise", "glass_blur", "snow", "frost", "fog"):
        assert not np.array_equal(corrupt(image, name, 3, seed=0), corrupt(image, name, 3, seed=1)), name


def test_callers_global_rng_untouched(frames):
    np.random.seed(1234)
    expected = np.random.random(5)
    np.random.seed(1234)
    for name in CORRUPTIONS:
        corrupt(frames[0], name, 2, seed=5)
    corrupt_batch(frames, "gaussian_noise", 2)
    np.testing.assert_array_equal(np.random.random(5), expected)


def test_batch(frames):
    out = corrupt_batch(frames, "shot_noise", 4, seed=2)
    assert out.shape == frames.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt_batch(frames, "shot_noise", 4, seed=2))
    # Each frame gets its own noise, not one pattern repeated.
    same = np.repeat(frames[:1], 2, axis=0)
    twins = corrupt_batch(same, "gaussian_noise", 3)
    assert not np.array_equal(twins[0], twins[1])


@pytest.mark.parametrize("severity", [0, 6, 2.0, True, "3"])
def test_bad_severity(frames, severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(frames[0], "fog", severity)


def test_bad_name_lists_valid_names(frames):
    with pytest.raises(ValueError, match="gaussian_noise") as info:
        corrupt(frames[0], "speckle", 3)
    assert "speckle" in str(info.value)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt_batch(frames, "rain", 3)


@pytest.mark.parametrize("image", [
    np.zeros((16, 16, 3), dtype=np.float32),
    np.zeros((16, 16), dtype=np.uint8),
    np.zeros((16, 16, 4), dtype=np.uint8),
    np.zeros((1, 16, 3), dtype=np.uint8),
])
def test_bad_image(image):
    with pytest.raises(ValueError, match="image"):
        corrupt(image, "contrast", 1)


def test_bad_batch():
    with pytest.raises(ValueError, match="images"):
        corrupt_batch(np.zeros((16, 16, 3), dtype=np.uint8), "contrast", 1)
