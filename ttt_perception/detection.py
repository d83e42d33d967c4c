"""Dense anchor-free detection: target encoding, loss and peak-picking decoder.

Each object is a peak on its class heatmap at the cell holding its box centre (a Gaussian bump for
the neighbours, as in CenterNet, Zhou et al. 2019), plus log box size and sub-cell offset there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Detections:
    """Boxes of one image: xyxy float32 (k, 4) in pixels, scores (k,), class ids (k,), class probs (k, C)."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    class_probs: np.ndarray

    @classmethod
    def empty(cls, num_classes: int) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                   np.zeros((0, num_classes), np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def scaled(self, scale_x: float, scale_y: float) -> Detections:
        factors = np.array([scale_x, scale_y, scale_x, scale_y], np.float32)
        return Detections(self.boxes * factors, self.scores, self.class_ids, self.class_probs)


def encode_targets(boxes: np.ndarray, labels: np.ndarray, num_classes: int, grid: int, stride: int):
    """Heatmap (C, G, G), box targets (4, G, G) and a mask (G, G) of cells that own an object."""
    heatmap = np.zeros((num_classes, grid, grid), np.float32)
    box = np.zeros((4, grid, grid), np.float32)
    mask = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes, np.float32).reshape(-1, 4), labels):
        w, h = (x2 - x1) / stride, (y2 - y1) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sigma_x, sigma_y = max(w / 6, 0.5), max(h / 6, 0.5)
        bump = np.exp(-((xs - col) ** 2) / (2 * sigma_x**2) - ((ys - row) ** 2) / (2 * sigma_y**2))
        heatmap[label] = np.maximum(heatmap[label], bump)
        box[:, row, col] = (np.log(w), np.log(h), cx - col, cy - row)
        mask[row, col] = 1.0
    return heatmap, box, mask


def detection_loss(output: dict[str, torch.Tensor], heatmap: torch.Tensor, box: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Penalty-reduced focal loss on the heatmaps plus L1 on size and offset at object centres."""
    prob = torch.sigmoid(output["heatmap"]).clamp(1e-4, 1 - 1e-4)
    positive = heatmap.eq(1.0).float()
    pos_loss = -(torch.log(prob) * (1 - prob) ** 2 * positive).sum()
    neg_loss = -(torch.log(1 - prob) * prob**2 * (1 - heatmap) ** 4 * (1 - positive)).sum()
    num_objects = positive.sum().clamp(min=1.0)
    box_loss = (F.l1_loss(output["box"], box, reduction="none").sum(1) * mask).sum()
    return (pos_loss + neg_loss + box_loss) / num_objects


def decode_detections(heatmap_logits: torch.Tensor, box: torch.Tensor, stride: int, score_threshold: float,
                      max_detections: int) -> Detections:
    """Peaks of one image's heatmaps (C, G, G) -> Detections in input pixels."""
    num_classes, grid, _ = heatmap_logits.shape
    heat = torch.sigmoid(heatmap_logits.float())
    peaks = heat * (F.max_pool2d(heat[None], 3, 1, 1)[0] == heat)
    k = min(max_detections, peaks.numel())
    if k <= 0:
        return Detections.empty(num_classes)
    scores, flat = peaks.flatten().topk(k)
    keep = scores >= score_threshold
    scores, flat = scores[keep], flat[keep]
    class_ids = flat // (grid * grid)
    rows, cols = (flat % (grid * grid)) // grid, flat % grid
    log_w, log_h, dx, dy = box.float()[:, rows, cols]
    cx, cy = (cols + dx) * stride, (rows + dy) * stride
    w, h = torch.exp(log_w.clamp(max=8)) * stride, torch.exp(log_h.clamp(max=8)) * stride
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    cell_probs = heat[:, rows, cols].T
    class_probs = cell_probs / cell_probs.sum(dim=1, keepdim=True).clamp(min=1e-8)
    return Detections(boxes.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32),
                      class_ids.cpu().numpy().astype(np.int64), class_probs.cpu().numpy().astype(np.float32))


def frame_class_probs(heatmap_logits: torch.Tensor) -> torch.Tensor:
    """Class distribution at the strongest cell: a frame-level summary when nothing passes the threshold."""
    heat = torch.sigmoid(heatmap_logits.float())
    num_classes = heat.shape[0]
    cell = heat.reshape(num_classes, -1).max(dim=0).values.argmax()
    probs = heat.reshape(num_classes, -1)[:, cell]
    return probs / probs.sum().clamp(min=1e-8)
