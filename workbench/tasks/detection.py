"""Detection: decode, class-wise NMS, then the share of FP32's detections the variant still finds.

An output cosine near 1 can hide lost detections (a few points of score moved across the
confidence threshold, boxes nudged off their match), so a detector is judged the way its users
judge it: detections kept at IoU >= 0.5 with the same class, and mAP@0.5 against labels.

Two output layouts are read: YOLO-style ``[N, 4 + classes, anchors]`` (either orientation, boxes as
centre x, y, width, height), and separate boxes ``[N, K, 4]`` (x1, y1, x2, y2) with scores
``[N, K]`` or ``[N, K, classes]`` and optional classes ``[N, K]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.tasks.base import Outputs
from workbench.tasks.evidence import Evidence

CONFIDENCE = 0.25
NMS_IOU = 0.45
MATCH_IOU = 0.5
MAX_DETECTIONS = 300


@dataclass
class Detections:
    """One image's detections after NMS: boxes x1, y1, x2, y2."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of x1, y1, x2, y2 boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by class-wise greedy NMS, best score first (classes offset so they never suppress each other)."""
    order = np.argsort(-scores, kind="stable")
    span = float(np.abs(boxes).max()) + 1 if len(boxes) else 1.0
    shifted = boxes + (classes.astype(np.float64) * span)[:, None]
    keep: list[int] = []
    while len(order) and len(keep) < MAX_DETECTIONS:
        best = order[0]
        keep.append(int(best))
        overlaps = iou_matrix(shifted[best : best + 1], shifted[order[1:]])[0]
        order = order[1:][overlaps <= iou]
    return np.asarray(keep, dtype=np.int64)


def _select(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> Detections:
    confident = scores >= CONFIDENCE
    boxes, scores, classes = boxes[confident], scores[confident], classes[confident]
    kept = nms(boxes, scores, classes)
    return Detections(boxes[kept], scores[kept], classes[kept])


def yolo_output(outputs: Outputs) -> np.ndarray | None:
    """The ``[N, 4 + classes, anchors]`` array in channels-first order, or None."""
    for array in outputs.values():
        if array.ndim == 3 and min(array.shape[1:]) >= 5:
            return array if array.shape[1] < array.shape[2] else np.swapaxes(array, 1, 2)
    return None


def split_outputs(outputs: Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Boxes ``[N, K, 4]``, scores and classes from separate outputs, found by shape (and name where needed)."""
    boxes = next((a for a in outputs.values() if a.ndim == 3 and a.shape[2] == 4), None)
    if boxes is None:
        return None
    others = [(name, a) for name, a in outputs.items() if a is not boxes and a.shape[:2] == boxes.shape[:2]]
    scores = next((a for name, a in others if "score" in name.lower() or "conf" in name.lower()), None)
    if scores is None:
        scores = next((a for _, a in others if a.ndim == 3 or np.issubdtype(a.dtype, np.floating)), None)
    if scores is None:
        return None
    classes = next((a for _, a in others if a is not scores and a.ndim == 2), None)
    return boxes, scores, classes


def decode(outputs: Outputs) -> list[Detections]:
    """Per-image detections after confidence filtering and class-wise NMS."""
    yolo = yolo_output(outputs)
    if yolo is not None:
        result = []
        for image in yolo.astype(np.float64):
            cx, cy, w, h = image[:4]
            cls_scores = image[4:]
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
            result.append(_select(boxes, cls_scores.max(axis=0), cls_scores.argmax(axis=0)))
        return result
    split = split_outputs(outputs)
    if split is None:
        raise ValueError("no detection outputs ([N, 4+classes, anchors] or boxes [N, K, 4] with scores)")
    boxes, scores, classes = split
    result = []
    for index in range(len(boxes)):
        image_scores = scores[index].astype(np.float64)
        if image_scores.ndim == 2:
            image_classes, image_scores = image_scores.argmax(axis=1), image_scores.max(axis=1)
        else:
            image_classes = classes[index].astype(np.int64) if classes is not None else np.zeros(len(image_scores))
        result.append(_select(boxes[index].astype(np.float64), image_scores, image_classes))
    return result


def matched(reference: Detections, variant: Detections, iou: float = MATCH_IOU) -> int:
    """How many reference detections the variant finds again: same class, IoU >= ``iou``, one-to-one."""
    if len(reference.boxes) == 0 or len(variant.boxes) == 0:
        return 0
    overlaps = iou_matrix(reference.boxes, variant.boxes)
    overlaps[reference.classes[:, None] != variant.classes[None, :]] = 0
    used = np.zeros(len(variant.boxes), dtype=bool)
    found = 0
    for row in np.argsort(-reference.scores, kind="stable"):
        candidates = np.where(~used & (overlaps[row] >= iou), overlaps[row], -1)
        best = int(candidates.argmax())
        if candidates[best] >= iou:
            used[best] = True
            found += 1
    return found


def average_precision(detections: list[Detections], truth: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """mAP@0.5 (all-point interpolated AP per class, averaged over the classes in the labels)."""
    classes = sorted({int(c) for _, cls in truth for c in cls})
    aps = []
    for cls in classes:
        scored, positives = [], 0
        for dets, (boxes, labels) in zip(detections, truth, strict=True):
            gt = boxes[labels == cls]
            positives += len(gt)
            mine = dets.classes == cls
            overlaps = iou_matrix(dets.boxes[mine], gt)
            used = np.zeros(len(gt), dtype=bool)
            for row in np.argsort(-dets.scores[mine], kind="stable"):
                hit = False
                if len(gt):
                    best = int(np.where(used, -1, overlaps[row]).argmax())
                    if overlaps[row, best] >= MATCH_IOU and not used[best]:
                        used[best] = hit = True
                scored.append((float(dets.scores[mine][row]), hit))
        if positives == 0:
            continue
        scored.sort(key=lambda item: -item[0])
        hits = np.array([hit for _, hit in scored], dtype=np.float64)
        tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
        recall = np.concatenate([[0], tp / positives, [1]]) if len(hits) else np.array([0.0, 1.0])
        precision = np.concatenate([[1], tp / np.maximum(tp + fp, 1), [0]]) if len(hits) else np.array([1.0, 0.0])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        aps.append(float(np.sum((recall[1:] - recall[:-1]) * precision[1:])))
    return float(np.mean(aps)) if aps else float("nan")


def _truth(labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Labels ``[N, M, 5]`` rows (class, x1, y1, x2, y2), rows with class < 0 are padding."""
    return [(image[image[:, 0] >= 0, 1:5], image[image[:, 0] >= 0, 0].astype(np.int64)) for image in labels]


class DetectionMeter:
    def __init__(self) -> None:
        self.reference = self.kept = self.variant = 0
        self.kept_each: list[int] = []
        self.reference_each: list[int] = []
        self.ref_dets: list[Detections] = []
        self.var_dets: list[Detections] = []
        self.truth: list[tuple[np.ndarray, np.ndarray]] = []

    def update(self, reference: Outputs, variant: Outputs, labels: np.ndarray | None, inputs: Outputs) -> None:
        ref, var = decode(reference), decode(variant)
        for r, v in zip(ref, var, strict=True):
            self.reference += len(r.boxes)
            self.variant += len(v.boxes)
            found = matched(r, v)
            self.kept += found
            self.kept_each.append(found)
            self.reference_each.append(len(r.boxes))
        if labels is not None and labels.ndim == 3 and labels.shape[2] >= 5:
            self.ref_dets += ref
            self.var_dets += var
            self.truth += _truth(labels)

    def evidence(self) -> Evidence:
        """Per image: FP32's detections and how many the variant kept (the share counts detections)."""
        return Evidence.share(np.asarray(self.kept_each), np.asarray(self.reference_each), unit="detections")

    def figures(self) -> dict:
        kept = self.kept / self.reference if self.reference else 1.0
        figures = {"metric": "detections_kept", "value": kept, "detections_kept": kept,
                   "reference_detections": self.reference, "variant_detections": self.variant,
                   "map50": None, "reference_map50": None}
        if self.truth:
            figures.update(map50=average_precision(self.var_dets, self.truth),
                           reference_map50=average_precision(self.ref_dets, self.truth))
        return figures
