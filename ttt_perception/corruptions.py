"""The 15 ImageNet-C / CIFAR-10-C corruptions (Hendrycks & Dietterich), through ``corrupt-tta``.

``corrupt_tta`` draws its randomness from numpy's global generator. To make a corruption
reproducible without disturbing anyone else's random numbers, each call seeds the global generator
and restores its previous state afterwards, under a lock so that concurrent calls of this module do
not interleave. (Other threads that use ``np.random`` at the same moment are not protected.)
"""

from __future__ import annotations

import threading

import numpy as np

# In the order of the benchmark's tables (noise, blur, weather, digital).
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)

# Salt-and-pepper amount per severity, the benchmark's impulse_noise setting.
_IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)

_GLOBAL_RNG_LOCK = threading.Lock()


def _check_arguments(name: str, severity: int) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; valid names: {', '.join(CORRUPTIONS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        described = (f"{image.dtype} array of shape {image.shape}"
                     if isinstance(image, np.ndarray) else type(image).__name__)
        raise ValueError(f"image must be a uint8 array of shape (H, W, 3), got {described}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {image.shape[:2]}")


def _impulse_noise(image: np.ndarray, severity: int, seed: np.uint32) -> np.ndarray:
    """Salt-and-pepper noise as in the benchmark.

    Done here rather than in corrupt_tta, which calls ``skimage.util.random_noise`` without a
    generator, so its output cannot be made reproducible through numpy's global state.
    """
    from skimage.util import random_noise

    noisy = random_noise(image / 255.0, mode="s&p", amount=_IMPULSE_AMOUNT[severity - 1],
                         rng=np.random.default_rng(seed))
    return noisy * 255.0


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _corrupt_seeded(image: np.ndarray, name: str, severity: int, legacy_seed: np.uint32) -> np.ndarray:
    if name == "impulse_noise":
        return _to_uint8(_impulse_noise(image, severity, legacy_seed))
    import corrupt_tta  # imported here: it loads OpenCV and its frost textures

    with _GLOBAL_RNG_LOCK:
        saved = np.random.get_state()
        try:
            np.random.seed(legacy_seed)
            result = corrupt_tta.corrupt(image, corruption_name=name, severity=int(severity))
        finally:
            np.random.set_state(saved)
    return _to_uint8(result)


def _legacy_seed(*entropy: int) -> np.uint32:
    """A 32-bit seed for ``np.random.seed`` from any non-negative integers."""
    return np.random.SeedSequence(list(entropy)).generate_state(1)[0]


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` 1..5 to an RGB uint8 (H,W,3) image.

    Returns a new uint8 image of the same shape; the same ``seed`` gives the same result, and the
    caller's ``np.random`` state is left as it was.
    """
    _check_arguments(name, severity)
    _check_image(image)
    return _corrupt_seeded(image, name, severity, _legacy_seed(seed))


def corrupt_batch(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Corrupt every image of a uint8 (N,H,W,3) batch; image ``i`` gets its own random stream
    derived from ``(seed, i)``, so frames of a batch are not corrupted identically."""
    _check_arguments(name, severity)
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        shape = getattr(images, "shape", type(images).__name__)
        raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got {shape}")
    out = np.empty_like(images)
    for i, image in enumerate(images):
        _check_image(image)
        out[i] = _corrupt_seeded(image, name, severity, _legacy_seed(seed, i))
    return out
