"""Boxes and labels drawn on a copy of the frame, for the optional ``<camera>/debug_image`` topic.

Boxes are drawn with numpy (2-pixel outlines in a colour per class); the label ("<class> <score>") is
written with PIL's built-in bitmap font above the box, or inside it at the top edge of the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_PALETTE = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
], dtype=np.uint8)


def class_colour(class_id: int) -> np.ndarray:
    return _PALETTE[int(class_id) % len(_PALETTE)]


def draw_detections(rgb: np.ndarray, detections, class_names: Sequence[str], thickness: int = 2) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3 uint8) with each detection's box and label drawn."""
    canvas = np.array(rgb, dtype=np.uint8, copy=True)
    height, width = canvas.shape[:2]
    labels = []
    for box, score, class_id in zip(np.asarray(detections.boxes).reshape(-1, 4), np.asarray(detections.scores),
                                    np.asarray(detections.class_ids)):
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        x0, x1 = max(0, min(x0, width - 1)), max(0, min(x1, width - 1))
        y0, y1 = max(0, min(y0, height - 1)), max(0, min(y1, height - 1))
        if x1 < x0 or y1 < y0:
            continue
        colour = class_colour(int(class_id))
        t = max(1, int(thickness))
        canvas[y0:min(y0 + t, y1 + 1), x0:x1 + 1] = colour
        canvas[max(y1 - t + 1, y0):y1 + 1, x0:x1 + 1] = colour
        canvas[y0:y1 + 1, x0:min(x0 + t, x1 + 1)] = colour
        canvas[y0:y1 + 1, max(x1 - t + 1, x0):x1 + 1] = colour
        index = int(class_id)
        name = class_names[index] if 0 <= index < len(class_names) else str(index)
        labels.append((x0, y0, f"{name} {float(score):.2f}", tuple(int(c) for c in colour)))
    if labels:
        canvas = _write_labels(canvas, labels)
    return canvas


def _write_labels(canvas: np.ndarray, labels) -> np.ndarray:
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # boxes without labels
        return canvas
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for x0, y0, text, colour in labels:
        left, top, right, bottom = draw.textbbox((0, 0), text)
        text_h = bottom - top
        y = y0 - text_h - 2 if y0 - text_h - 2 >= 0 else y0 + 2
        draw.rectangle((x0, y, x0 + right - left + 2, y + text_h + 1), fill=colour)
        draw.text((x0 + 1, y - top), text, fill=(0, 0, 0))
    return np.asarray(image, dtype=np.uint8).copy()
