"""What an exported graph computes, per task: a module of tensors in and tensors out.

Exporters (``torch.export``, ``torch.jit.trace``) need a forward that takes one tensor and returns
tensors of shapes that do not depend on the data. The classifiers and segmenters already are
such modules; the detectors are not (``model(list_of_images) -> list[dict]``, with a number of
boxes per image that depends on the scores), so :class:`DetectorOutputs` re-expresses
:class:`~visionbench.models.detectors.TinyFCOS`' inference as fixed-size tensors:

* input ``images`` float ``[N, C, H, W]`` in ``[0, 1]`` (TinyFCOS normalises inside);
* ``boxes`` float ``[N, D, 4]`` XYXY pixels, ``scores`` float ``[N, D]``, ``labels`` int64
  ``[N, D]`` (``0..K-1``), best first, ``D = detections_per_image`` (100); rows past
  ``num_detections`` int64 ``[N]`` are zeros.

**NMS stays inside the graph**, so an exported file alone gives the run's detections; a separate
NMS step would make every consumer re-implement TinyFCOS' decoding. To be exportable (no
data-dependent Python branches, a dynamic batch axis), the wrapper differs from
:meth:`TinyFCOS.postprocess` only in how it gets the same detections:

* the best ``min(topk_candidates, locations x K)`` candidates of each level are taken with
  ``torch.sym_min`` (no branch on the image size), those above ``score_threshold`` go to NMS: the
  same boxes as postprocess' "threshold, then the best ``topk_candidates``", unless more than
  ``topk_candidates`` of a level pass the threshold with ties at the cut;
* NMS runs per (image, class) for the whole batch at once. In ONNX it is one ``NonMaxSuppression``
  whose batch axis is the images and whose classes are the classes (:func:`nms_per_image`, a
  registered op with its own ONNX translation), so its cost grows with each image's candidates,
  not the batch's. ``.pt2`` and TorchScript files keep ``torchvision.ops.nms``, which any torch
  with torchvision loads, over the whole batch with boxes shifted per (image, class) group
  (``batched_nms``' coordinate trick); its cost grows with the square of the batch's candidates;
* the survivors are ordered by image and score (one sort of a float64 key) and scattered into
  each image's ``D`` rows.

Only ``tiny_fcos`` is supported: torchvision's detectors resize inside their own transform and
return lists of dicts; exporting them is left to torchvision's own ONNX recipes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, nms

INPUT_NAME = "images"
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "classify": ("logits",),
    "segment": ("logits",),
    "detect": ("boxes", "scores", "labels", "num_detections"),
}


class DetectorOutputs(nn.Module):
    """TinyFCOS inference as fixed-size tensors (see the module docstring for the layout).

    Args:
        detector: a trained :class:`~visionbench.models.detectors.TinyFCOS` in eval mode.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.rows = int(detector.detections_per_image)
        # True while exporting to ONNX: NMS as the registered op that becomes one ONNX
        # NonMaxSuppression over images and classes (per image, as fast at batch 32 as at 1).
        self.native_nms = False
        # Smallest side the exported graph takes: its coarsest feature map must be at least 2x2
        # (torch.export specialises sizes 0 and 1).
        self.min_side = int(detector.strides[-1]) + 1

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(boxes, scores, labels, num_detections)`` of a batch of same-sized images."""
        d = self.detector
        height, width = images.shape[-2], images.shape[-1]
        multiple = d.strides[-1]  # TinyFCOS pads bottom-right to a multiple of its largest stride
        batch = F.pad(images, (0, -width % multiple, 0, -height % multiple))
        features = d.backbone((batch - 0.5) / 0.25)
        maps = d.fpn([features[i] for i in d.levels])
        cls, box, ctr = d.head(maps)
        points, strides, _ = d._locations(maps)  # the detector's own location grid, not a copy of it
        scores = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[..., None])  # (N, P, K)
        boxes, scores, labels = self._candidates(scores, box, points, strides, maps)
        boxes = torch.stack([boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                             boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], -1)
        return self._nms_rows(boxes.float(), scores.float(), labels)

    def _candidates(self, scores: Tensor, box: Tensor, points: Tensor, strides: Tensor, maps: list[Tensor]
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """The best candidates of every level: boxes ``(N, M, 4)``, scores ``(N, M)``, labels ``(N, M)``."""
        d = self.detector
        classes = d.num_classes
        found_boxes, found_scores, found_labels = [], [], []
        start = 0
        for fmap in maps:
            count = fmap.shape[-2] * fmap.shape[-1]
            level = scores[:, start:start + count].flatten(1)  # (N, count * K), location-major as postprocess
            top, index = level.topk(_at_most(d.topk_candidates, count * classes), dim=1)
            location = index // classes + start
            deltas = torch.gather(box, 1, location[..., None].expand(-1, -1, 4))
            decoded = d.decode(deltas.reshape(-1, 4), points[location].reshape(-1, 2), strides[location].reshape(-1))
            found_boxes.append(decoded.reshape_as(deltas))
            found_scores.append(top)
            found_labels.append(index % classes)
            start += count
        return torch.cat(found_boxes, 1), torch.cat(found_scores, 1), torch.cat(found_labels, 1)

    def _nms_rows(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The threshold and per-(image, class) NMS, then each image's survivors, best first, in
        its fixed rows."""
        d = self.detector
        # Sizes stay symbolic (no int()): torch.jit.trace then keeps the batch axis dynamic too.
        n, m = scores.shape[0], scores.shape[1]
        if self.native_nms:
            kept = torch.ops.visionbench.nms_per_image(boxes, scores, labels, d.num_classes, float(d.nms_iou),
                                                       float(d.score_threshold))
            image, flat = kept[:, 0], kept[:, 0] * m + kept[:, 1]
        else:
            image, flat = self._shifted_nms(boxes, scores, labels)
        # Image by image, best first: one sort on image x 2 + (1 - score) in float64, whose 52-bit
        # mantissa keeps float32 scores apart up to 2 ** 20 images (the ONNX exporter has no stable sort).
        key = image.to(torch.float64) * 2 + (1 - scores.reshape(-1)[flat].to(torch.float64))
        order = torch.argsort(key)
        image, flat = image[order], flat[order]
        per_image = (image[:, None] == torch.arange(n, device=scores.device)[None, :]).to(torch.int64)
        counts = per_image.sum(0)
        rank = torch.arange(image.shape[0], device=scores.device) - (counts.cumsum(0) - counts)[image]
        valid = rank < self.rows
        image, flat, rank = image[valid], flat[valid], rank[valid]
        out_boxes = boxes.new_zeros((n, self.rows, 4))
        out_scores = scores.new_zeros((n, self.rows))
        out_labels = labels.new_zeros((n, self.rows))
        out_boxes[image, rank] = boxes.reshape(-1, 4)[flat]
        out_scores[image, rank] = scores.reshape(-1)[flat]
        out_labels[image, rank] = labels.reshape(-1)[flat]
        return out_boxes, out_scores, out_labels, torch.clamp(counts, max=self.rows)

    def _shifted_nms(self, boxes: Tensor, scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """One ``torchvision.ops.nms`` over the whole batch, boxes shifted per (image, class)
        group (``batched_nms``' coordinate trick), so groups never overlap: the survivors' images
        and flat candidate indices. Its cost grows with the square of the batch's candidates."""
        d = self.detector
        image = torch.arange(scores.shape[0], device=scores.device)[:, None].expand_as(scores).reshape(-1)
        flat_boxes, flat_scores, flat_labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
        unit = flat_boxes.max() + 1  # over every candidate, so it exists when none passes the threshold
        above = torch.nonzero(flat_scores > d.score_threshold).squeeze(1)  # as postprocess: threshold first
        group = (image[above] * d.num_classes + flat_labels[above]).to(flat_boxes.dtype)
        keep = nms(flat_boxes[above] + (group * unit)[:, None], flat_scores[above], d.nms_iou)
        return image[above][keep], above[keep]


@torch.library.custom_op("visionbench::nms_per_image", mutates_args=())
def nms_per_image(boxes: Tensor, scores: Tensor, labels: Tensor, num_classes: int, iou_threshold: float,
                  score_threshold: float) -> Tensor:
    """Per-(image, class) NMS of candidates scoring above ``score_threshold``: ``int64 [S, 2]`` of
    (image, candidate index) of the survivors. The ONNX file writes it as one ONNX
    ``NonMaxSuppression`` over images and classes (:func:`visionbench.export.formats`); eagerly it
    is ``torchvision.ops.batched_nms`` image by image.

    Args:
        boxes: ``[N, M, 4]`` XYXY. scores: ``[N, M]``. labels: ``int64 [N, M]`` in ``0..num_classes-1``.
    """
    kept = [boxes.new_zeros((0, 2), dtype=torch.int64)]
    for i in range(boxes.shape[0]):
        above = torch.nonzero(scores[i] > score_threshold).squeeze(1)
        keep = above[batched_nms(boxes[i, above], scores[i, above], labels[i, above], iou_threshold)]
        kept.append(torch.stack([torch.full_like(keep, i), keep], 1))
    return torch.cat(kept)


@nms_per_image.register_fake
def _nms_per_image_shape(boxes: Tensor, scores: Tensor, labels: Tensor, num_classes: int, iou_threshold: float,
                         score_threshold: float) -> Tensor:
    """The survivors' count depends on the data: an unbacked size for torch.export."""
    return boxes.new_empty((torch.library.get_ctx().new_dynamic_size(), 2), dtype=torch.int64)


def _at_most(limit: int, count: Any) -> Any:
    """``min(limit, count)`` without a branch on ``count``, so torch.export keeps the image size
    symbolic (``sym_min``); a TorchScript trace, which fixes the size anyway, gets an int."""
    if torch.jit.is_tracing():
        return min(limit, int(count))
    return torch.sym_min(limit, count)


def export_module(task: str, model: nn.Module, model_name: str) -> nn.Module:
    """The module to export for a run's ``model`` (eval mode): the model itself for classifiers
    and segmenters (logits), :class:`DetectorOutputs` for ``tiny_fcos``.

    Raises:
        ValueError: a detector other than ``tiny_fcos``.
    """
    from visionbench.models.detectors import TinyFCOS

    if task != "detect":
        return model.eval()
    if not isinstance(model, TinyFCOS):
        raise ValueError(f"export of detectors must be for 'tiny_fcos'; got {model_name!r}, a torchvision detector "
                         "whose resizing transform and list-of-dict outputs have no fixed-size form here. "
                         "Train a run with --model tiny_fcos to export it, or use torchvision's own ONNX export.")
    return DetectorOutputs(model.eval()).eval()


def output_shapes(task: str, num_classes: int, rows: int | None) -> dict[str, list[int | str]]:
    """Each output's shape with the named axes of :func:`visionbench.export.formats` (``batch``,
    ``height``, ``width``), for ``export.json``."""
    if task == "classify":
        return {"logits": ["batch", num_classes]}
    if task == "segment":
        return {"logits": ["batch", num_classes, "height", "width"]}
    assert rows is not None
    return {"boxes": ["batch", rows, 4], "scores": ["batch", rows], "labels": ["batch", rows],
            "num_detections": ["batch"]}


__all__ = ["INPUT_NAME", "OUTPUT_NAMES", "DetectorOutputs", "export_module", "output_shapes"]
