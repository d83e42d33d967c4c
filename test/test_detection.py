"""Detection targets, decoding of hand-built heatmaps, and mAP."""

import numpy as np
import torch

from ttt_perception.detection import decode_detections, encode_targets
from ttt_perception.metrics import box_iou, frame_exactly_right, matched_accuracy, mean_average_precision


def test_decoding_a_hand_built_heatmap():
    logits = torch.full((3, 8, 8), -10.0)
    logits[1, 2, 5] = 3.0  # class 1 peak at row 2, col 5
    logits[1, 2, 6] = 1.0  # its neighbour is not a peak
    logits[2, 6, 1] = 0.5  # class 2, weaker
    box = torch.zeros(4, 8, 8)
    box[:, 2, 5] = torch.tensor([np.log(2.0), np.log(3.0), 0.5, 0.25])
    dets = decode_detections(logits, box, stride=4, score_threshold=0.5, max_detections=10)
    assert list(dets.class_ids) == [1, 2]
    np.testing.assert_allclose(dets.scores, torch.sigmoid(torch.tensor([3.0, 0.5])).numpy(), rtol=1e-6)
    cx, cy, w, h = (5 + 0.5) * 4, (2 + 0.25) * 4, 2 * 4, 3 * 4
    np.testing.assert_allclose(dets.boxes[0], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)
    assert dets.class_probs.shape == (2, 3) and np.argmax(dets.class_probs[0]) == 1
    assert len(decode_detections(logits, box, 4, score_threshold=0.9, max_detections=10)) == 1
    assert len(decode_detections(logits, box, 4, score_threshold=0.0, max_detections=1)) == 1


def test_encoded_targets_decode_back_to_the_boxes():
    boxes = np.array([[10, 12, 30, 40], [50, 8, 70, 20]], np.float32)
    labels = np.array([3, 7])
    heatmap, box, mask = encode_targets(boxes, labels, num_classes=10, grid=24, stride=4)
    assert mask.sum() == 2 and heatmap.max() == 1.0
    logits = torch.logit(torch.from_numpy(heatmap).clamp(1e-4, 1 - 1e-4))
    dets = decode_detections(logits, torch.from_numpy(box), 4, score_threshold=0.9, max_detections=5)
    order = np.argsort(dets.class_ids)
    np.testing.assert_allclose(dets.boxes[order], boxes, atol=1e-3)
    assert list(dets.class_ids[order]) == [3, 7]


def test_map_and_matched_accuracy():
    gt_boxes, gt_labels = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]])], [np.array([0, 1])]
    perfect = mean_average_precision([gt_boxes[0]], [np.array([0.9, 0.8])], [np.array([0, 1])], gt_boxes, gt_labels, 2)
    assert perfect == 1.0
    wrong_class = mean_average_precision([gt_boxes[0]], [np.array([0.9, 0.8])], [np.array([1, 0])], gt_boxes,
                                         gt_labels, 2)
    assert wrong_class == 0.0
    half = mean_average_precision([np.array([[0, 0, 10, 10], [100, 100, 110, 110]])], [np.array([0.9, 0.8])],
                                  [np.array([0, 1])], gt_boxes, gt_labels, 2)
    assert half == 0.5
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == 1 / 3
    assert matched_accuracy(gt_boxes[0], np.array([1, 1]), gt_boxes[0], gt_labels[0]) == (1, 2)


def test_a_frame_is_exactly_right_only_with_each_object_found_once_and_nothing_else():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 1])
    boxes, scores = np.array([[20, 21, 30, 30], [0, 0, 10, 11]], np.float32), np.array([0.9, 0.8])
    assert frame_exactly_right(boxes, scores, np.array([1, 0]), *truth, score_threshold=0.3)
    assert not frame_exactly_right(boxes, scores, np.array([0, 1]), *truth, score_threshold=0.3)  # classes swapped
    assert not frame_exactly_right(boxes[:1], scores[:1], np.array([1]), *truth, score_threshold=0.3)  # one missed
    extra = np.concatenate([boxes, [[50, 50, 60, 60]]]), np.array([0.9, 0.8, 0.5]), np.array([1, 0, 1])
    assert not frame_exactly_right(*extra, *truth, score_threshold=0.3)
    assert frame_exactly_right(*extra, *truth, score_threshold=0.6)  # below what is published: not counted
    assert not frame_exactly_right(boxes, scores, np.array([1, 0]), *truth, score_threshold=0.85)  # 0.8 not published
    shifted = boxes + np.array([6, 0, 6, 0], np.float32)  # IoU 0.25 with its object
    assert not frame_exactly_right(shifted, scores, np.array([1, 0]), *truth, score_threshold=0.3)
    nothing = np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64)
    assert frame_exactly_right(*nothing, np.zeros((0, 4)), np.zeros(0, np.int64), score_threshold=0.3)
    assert not frame_exactly_right(*nothing, *truth, score_threshold=0.3)
