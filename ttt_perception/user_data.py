"""A user's own data: a folder of images per class, or detection boxes in a COCO JSON file.

Both loaders resize every image to ``size`` x ``size`` RGB uint8 (the aspect ratio is not kept,
the same as the model's input) and return the sets of ``ttt_perception.data``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .data import ClassificationSet, DetectionSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _read_rgb(path: Path) -> np.ndarray:
    """Decode an image file as RGB uint8 (H,W,3); grey, palette, alpha and 16-bit images included."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                # 16-bit / float grey: PIL's convert("RGB") would clip, so rescale to 8 bits here.
                pixels = np.asarray(image, dtype=np.float64)
                peak = 65535.0 if image.mode.startswith("I") else max(float(pixels.max()), 1.0)
                grey = np.clip(np.rint(pixels / peak * 255.0), 0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error


def _resize(pixels: np.ndarray, size: int) -> np.ndarray:
    if pixels.shape[:2] == (size, size):
        return pixels
    image = Image.fromarray(pixels)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def load_image_folder(root: str | Path, size: int) -> tuple[ClassificationSet, list[str]]:
    """Load ``root/<class name>/*.png|jpg|jpeg`` as a ClassificationSet.

    Class names are the sub-folder names in sorted order; label ``k`` is ``class_names[k]``.
    Hidden entries (starting with ".") and files of other types are ignored.
    """
    _check_size(size)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ValueError(f"image folder {root} has no class sub-folders "
                         "(expected one sub-folder of images per class)")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.iterdir()
                       if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"class folder {class_dir} contains no images "
                             f"({', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            images.append(_resize(_read_rgb(path), size))
            labels.append(label)
    dataset = ClassificationSet(images=np.stack(images), labels=np.array(labels, dtype=np.int64))
    return dataset, [p.name for p in class_dirs]


def _malformed(path: Path, what: str) -> ValueError:
    return ValueError(f"malformed COCO file {path}: {what}")


def _read_coco(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as stream:
            coco = json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"COCO annotation file {path} is not valid JSON: {error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"COCO annotation file {path} is not UTF-8 text: {error}") from error
    if not isinstance(coco, dict):
        raise _malformed(path, "the top level must be an object")
    for key in ("images", "categories"):
        if not isinstance(coco.get(key), list):
            raise _malformed(path, f'"{key}" must be a list')
    if not isinstance(coco.get("annotations", []), list):
        raise _malformed(path, '"annotations" must be a list')
    return coco


def _category_map(coco: dict, path: Path) -> tuple[dict[int, int], list[str]]:
    """COCO category ids -> contiguous labels 0..K-1 in sorted id order, and the class names."""
    names_by_id: dict[int, str] = {}
    for category in coco["categories"]:
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            raise _malformed(path, f"category {category!r} needs an integer \"id\"")
        if category["id"] in names_by_id:
            raise _malformed(path, f"category id {category['id']} appears twice")
        names_by_id[category["id"]] = str(category.get("name", category["id"]))
    ids = sorted(names_by_id)
    return {cid: label for label, cid in enumerate(ids)}, [names_by_id[cid] for cid in ids]


def _scaled_box(bbox, width: int, height: int, size: int) -> np.ndarray | None:
    """COCO [x, y, w, h] in source pixels -> xyxy in the resized frame; None if it has no area."""
    x, y, w, h = (float(v) for v in bbox)
    x1, x2 = np.clip([x, x + w], 0, width)
    y1, y2 = np.clip([y, y + h], 0, height)
    if x2 <= x1 or y2 <= y1:
        return None
    sx, sy = size / width, size / height
    return np.array([x1 * sx, y1 * sy, x2 * sx, y2 * sy], dtype=np.float32)


def load_coco(annotation_json: str | Path, image_dir: str | Path | None = None,
              size: int = 96) -> tuple[DetectionSet, list[str]]:
    """Load COCO detection annotations as a DetectionSet, images in the order of ``"images"``.

    ``image_dir`` defaults to the JSON file's folder. Category ids become labels 0..K-1 in sorted
    id order (class names follow the same order). Images without annotations are kept with no
    boxes. Crowd annotations (``iscrowd`` 1) and boxes with no area inside the image are dropped.
    """
    _check_size(size)
    path = Path(annotation_json)
    coco = _read_coco(path)
    image_dir = path.parent if image_dir is None else Path(image_dir)
    label_of, class_names = _category_map(coco, path)

    entries = {}
    for entry in coco["images"]:
        if not isinstance(entry, dict) or "id" not in entry or not isinstance(entry.get("file_name"), str):
            raise _malformed(path, f'image entry {entry!r} needs "id" and "file_name"')
        if entry["id"] in entries:
            raise _malformed(path, f"image id {entry['id']!r} appears twice")
        entries[entry["id"]] = entry
    annotations_of: dict = {image_id: [] for image_id in entries}
    for ann in coco.get("annotations", []):
        if not isinstance(ann, dict):
            raise _malformed(path, f"annotation {ann!r} is not an object")
        if ann.get("image_id") not in entries:
            raise _malformed(path, f"annotation {ann.get('id')!r} refers to unknown image id "
                                   f"{ann.get('image_id')!r}")
        if ann.get("category_id") not in label_of:
            raise _malformed(path, f"annotation {ann.get('id')!r} refers to unknown category id "
                                   f"{ann.get('category_id')!r}")
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
            raise _malformed(path, f"annotation {ann.get('id')!r} needs \"bbox\" as [x, y, w, h], "
                                   f"got {bbox!r}")
        annotations_of[ann["image_id"]].append(ann)

    images, all_boxes, all_labels = [], [], []
    for image_id, entry in entries.items():
        file = image_dir / entry["file_name"]
        if not file.is_file():
            raise FileNotFoundError(f"image {file} listed in {path} does not exist")
        pixels = _read_rgb(file)
        height, width = pixels.shape[:2]
        declared = (entry.get("width", width), entry.get("height", height))
        if declared != (width, height):
            raise ValueError(f"image {file} is {width}x{height} pixels but {path} declares "
                             f"{declared[0]}x{declared[1]}")
        boxes, labels = [], []
        for ann in annotations_of[image_id]:
            if ann.get("iscrowd", 0):
                continue
            box = _scaled_box(ann["bbox"], width, height, size)
            if box is not None:
                boxes.append(box)
                labels.append(label_of[ann["category_id"]])
        images.append(_resize(pixels, size))
        all_boxes.append(np.stack(boxes) if boxes else np.zeros((0, 4), dtype=np.float32))
        all_labels.append(np.array(labels, dtype=np.int64))
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    return DetectionSet(images=stacked, boxes=all_boxes, labels=all_labels), class_names


def hold_out(data, fraction: float):
    """(training part, held-out part): every ``round(1 / fraction)``-th frame is held out (at least one,
    and at least one left to train on), for the reference levels stored with the trained model."""
    count = len(data)
    if count < 2:
        raise ValueError(f"need at least 2 images to hold one out, got {count}")
    step = max(2, int(round(1 / fraction)))
    held = np.zeros(count, dtype=bool)
    held[step - 1::step] = True
    if not held.any():
        held[-1] = True

    def subset(mask):
        index = np.flatnonzero(mask)
        if isinstance(data, ClassificationSet):
            return ClassificationSet(data.images[index], np.asarray(data.labels)[index])
        return DetectionSet(data.images[index], [data.boxes[i] for i in index], [data.labels[i] for i in index])

    return subset(~held), subset(held)
