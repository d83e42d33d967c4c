"""Loading a user's own data: an image folder per class and a COCO JSON file, with real files."""

import json

import numpy as np
import pytest
from PIL import Image

from ttt_perception.data import make_classification_frames
from ttt_perception.user_data import load_coco, load_image_folder


def _save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def photos():
    return make_classification_frames("val", 6, size=40, seed=0).images


# ---------------------------------------------------------------------------------------------
# Image folder


def test_image_folder_round_trip(tmp_path, photos):
    _save(tmp_path / "cat" / "a.png", photos[0])
    _save(tmp_path / "cat" / "b.JPG", photos[1])
    _save(tmp_path / "dog" / "c.jpeg", photos[2])
    _save(tmp_path / "dog" / "grey.png", photos[3][:, :, 0])          # single channel
    rgba = np.concatenate([photos[4], np.full((40, 40, 1), 255, np.uint8)], axis=2)
    _save(tmp_path / "dog" / "alpha.png", rgba)                      # with alpha
    (tmp_path / "dog" / "notes.txt").write_text("not an image")      # ignored
    (tmp_path / ".cache").mkdir()                                    # hidden: ignored

    dataset, names = load_image_folder(tmp_path, size=24)
    assert names == ["cat", "dog"]
    assert dataset.images.shape == (5, 24, 24, 3) and dataset.images.dtype == np.uint8
    assert dataset.labels.tolist() == [0, 0, 1, 1, 1]
    assert dataset.labels.dtype == np.int64
    # The PNG survives losslessly apart from the resize.
    same_size, _ = load_image_folder(tmp_path, size=40)
    np.testing.assert_array_equal(same_size.images[0], photos[0])
    grey = same_size.images[4]   # dog/grey.png sorts after dog/c.jpeg and dog/alpha.png
    np.testing.assert_array_equal(grey[:, :, 0], grey[:, :, 2])


def test_image_folder_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_image_folder(tmp_path / "nowhere", size=32)


def test_image_folder_without_class_folders(tmp_path, photos):
    _save(tmp_path / "loose.png", photos[0])
    with pytest.raises(ValueError, match="sub-folder"):
        load_image_folder(tmp_path, size=32)


def test_image_folder_empty_class(tmp_path, photos):
    _save(tmp_path / "cat" / "a.png", photos[0])
    (tmp_path / "dog").mkdir()
    with pytest.raises(ValueError, match="dog.*no images"):
        load_image_folder(tmp_path, size=32)


def test_image_folder_unreadable_image(tmp_path, photos):
    _save(tmp_path / "cat" / "a.png", photos[0])
    (tmp_path / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path, size=32)


def test_image_folder_bad_size(tmp_path):
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, size=0)


# ---------------------------------------------------------------------------------------------
# COCO


def _coco_dataset(tmp_path, photos):
    """Two 80x40 images with boxes, one 40x40 without; category ids 7 and 3 (out of order)."""
    wide = np.concatenate([photos[0], photos[1]], axis=1)
    _save(tmp_path / "img" / "wide.png", wide)
    _save(tmp_path / "img" / "wide2.jpg", wide)
    _save(tmp_path / "img" / "empty.png", photos[2])
    coco = {
        "images": [
            {"id": 10, "file_name": "wide.png", "width": 80, "height": 40},
            {"id": 11, "file_name": "empty.png"},
            {"id": 12, "file_name": "wide2.jpg", "width": 80, "height": 40},
        ],
        "categories": [{"id": 7, "name": "person"}, {"id": 3, "name": "bicycle"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [8, 4, 40, 20], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [60.5, 10, 19.5, 30]},
            {"id": 3, "image_id": 12, "category_id": 3, "bbox": [0, 0, 80, 40]},
            {"id": 4, "image_id": 12, "category_id": 7, "bbox": [0, 0, 10, 10], "iscrowd": 1},
            {"id": 5, "image_id": 12, "category_id": 7, "bbox": [70, 30, 30, 30]},  # leaves the image
        ],
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    return path, coco


def test_coco_round_trip(tmp_path, photos):
    path, _ = _coco_dataset(tmp_path, photos)
    dataset, names = load_coco(path, image_dir=tmp_path / "img", size=96)
    assert names == ["bicycle", "person"]  # sorted category id: 3, 7
    assert len(dataset) == 3
    assert dataset.images.shape == (3, 96, 96, 3) and dataset.images.dtype == np.uint8

    boxes, labels = dataset.boxes[0], dataset.labels[0]
    assert boxes.dtype == np.float32 and labels.dtype == np.int64
    # x scaled by 96/80 = 1.2, y by 96/40 = 2.4.
    np.testing.assert_allclose(boxes, [[9.6, 9.6, 57.6, 57.6], [72.6, 24.0, 96.0, 96.0]], rtol=1e-6)
    assert labels.tolist() == [1, 0]

    assert dataset.boxes[1].shape == (0, 4) and dataset.labels[1].shape == (0,)

    # Crowd annotation dropped; the box leaving the image clipped to it.
    np.testing.assert_allclose(dataset.boxes[2], [[0, 0, 96, 96], [84, 72, 96, 96]], rtol=1e-6)
    assert dataset.labels[2].tolist() == [0, 1]


def test_coco_image_dir_defaults_to_json_folder(tmp_path, photos):
    _save(tmp_path / "only.png", photos[0])
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "only.png"}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]}],
    }))
    dataset, names = load_coco(path, size=40)
    assert names == ["thing"]
    np.testing.assert_array_equal(dataset.images[0], photos[0])
    np.testing.assert_allclose(dataset.boxes[0], [[10, 10, 30, 30]])


def test_coco_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_coco(tmp_path / "missing.json")


def test_coco_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        load_coco(path)


@pytest.mark.parametrize("content, message", [
    ([], "top level"),
    ({"categories": []}, '"images"'),
    ({"images": [], "categories": [{"name": "x"}]}, "integer \"id\""),
    ({"images": [{"id": 1}], "categories": []}, "file_name"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}],
      "annotations": [{"id": 9, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]},
     "unknown image id 2"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}],
      "annotations": [{"id": 9, "image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1]}]},
     "unknown category id 5"),
    ({"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1}],
      "annotations": [{"id": 9, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]},
     "bbox"),
])
def test_coco_malformed(tmp_path, content, message):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        load_coco(path)
    assert "coco.json" in str(info.value)


def test_coco_missing_image(tmp_path):
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "gone.png"}], "categories": []}))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load_coco(path)


def test_coco_size_mismatch(tmp_path, photos):
    _save(tmp_path / "a.png", photos[0])
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 40}],
                                "categories": []}))
    with pytest.raises(ValueError, match="a.png is 40x40"):
        load_coco(path)


def test_coco_unreadable_image(tmp_path):
    (tmp_path / "a.png").write_bytes(b"garbage")
    path = tmp_path / "coco.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "categories": []}))
    with pytest.raises(ValueError, match="cannot read image .*a.png"):
        load_coco(path)
