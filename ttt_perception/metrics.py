"""Detection quality: IoU, mAP@0.5 (VOC-style all-point interpolation), matched-box accuracy, and whether
one frame's detections are exactly its objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (n, 4) and b (m, 4) -> (n, m)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


def mean_average_precision(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray],
                           pred_labels: Sequence[np.ndarray], true_boxes: Sequence[np.ndarray],
                           true_labels: Sequence[np.ndarray], num_classes: int, iou_threshold: float = 0.5) -> float:
    """mAP over the classes that occur in the ground truth."""
    aps = []
    for cls in range(num_classes):
        num_true = sum(int(np.sum(np.asarray(t) == cls)) for t in true_labels)
        if num_true == 0:
            continue
        records = []  # (score, is_true_positive)
        for boxes, scores, labels, gt_boxes, gt_labels in zip(pred_boxes, pred_scores, pred_labels, true_boxes,
                                                              true_labels):
            mine = np.asarray(labels) == cls
            gt = np.asarray(gt_boxes).reshape(-1, 4)[np.asarray(gt_labels) == cls]
            taken = np.zeros(len(gt), bool)
            order = np.argsort(-np.asarray(scores)[mine], kind="stable")
            cls_boxes, cls_scores = np.asarray(boxes).reshape(-1, 4)[mine][order], np.asarray(scores)[mine][order]
            ious = box_iou(cls_boxes, gt)
            for i, score in enumerate(cls_scores):
                best = int(np.argmax(ious[i])) if len(gt) else -1
                hit = best >= 0 and ious[i, best] >= iou_threshold and not taken[best]
                if hit:
                    taken[best] = True
                records.append((float(score), hit))
        if not records:
            aps.append(0.0)
            continue
        records.sort(key=lambda r: -r[0])
        hits = np.array([r[1] for r in records], float)
        tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
        aps.append(_average_precision(tp / num_true, tp / np.maximum(tp + fp, 1e-12)))
    return float(np.mean(aps)) if aps else 0.0


def matched_accuracy(pred_boxes: np.ndarray, pred_labels: np.ndarray, true_boxes: np.ndarray,
                     true_labels: np.ndarray, iou_threshold: float = 0.5) -> tuple[int, int]:
    """(correct, matched): greedy IoU matching regardless of class, then whether the class agrees."""
    ious = box_iou(pred_boxes, true_boxes)
    correct = matched = 0
    while ious.size and ious.max() >= iou_threshold:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        matched += 1
        correct += int(np.asarray(pred_labels)[i] == np.asarray(true_labels)[j])
        ious[i, :] = -1
        ious[:, j] = -1
    return correct, matched


def frame_exactly_right(pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_labels: np.ndarray,
                        true_boxes: np.ndarray, true_labels: np.ndarray, score_threshold: float,
                        iou_threshold: float = 0.5) -> bool:
    """One frame's detections at ``score_threshold`` (what a node publishes) are exactly its objects: each
    found once with its class at IoU >= ``iou_threshold``, and nothing else. A per-frame yes/no, so two
    methods can be compared frame by frame (mAP is a property of a whole set)."""
    keep = np.asarray(pred_scores, np.float64).reshape(-1) >= score_threshold
    boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)[keep]
    labels = np.asarray(pred_labels).reshape(-1)[keep]
    true_count = len(np.asarray(true_labels).reshape(-1))
    if len(labels) != true_count:
        return False
    correct, _ = matched_accuracy(boxes, labels, true_boxes, true_labels, iou_threshold)
    return correct == true_count
