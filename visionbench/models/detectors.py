"""Registered detectors: torchvision's (random init) behind one wrapper, and :class:`TinyFCOS`.

**One interface for every detector** (torchvision's convention, with *our* labels):

* eval mode: ``model(images) -> list[{"boxes": float [n, 4] XYXY pixels, "scores": float [n] in
  [0, 1], "labels": int64 [n] in 0..K-1}]``, one dict per image, at most ``detections_per_image``
  boxes, highest score first (after NMS);
* train mode: ``model(images, targets) -> dict[str, Tensor]`` of scalar losses (sum them to train),
  where ``targets[i] = {"boxes": float [g, 4] XYXY pixels, "labels": int64 [g] in 0..K-1}`` (other
  keys such as ``masks``, ``iscrowd``, ``area``, ``image_id`` are ignored; ``g`` may be 0).

``images`` is a list of ``float`` tensors ``[C, H, W]`` in ``[0, 1]`` (sizes may differ).

**Label mapping.** Faster R-CNN and SSD reserve class index 0 for the background (softmax over
``K + 1`` classes; torchvision's ``roi_heads.postprocess_detections`` and
``SSD.postprocess_detections`` loop over ``range(1, num_classes)``), so they are built with
``num_classes = K + 1`` and our label ``c`` is their label ``c + 1`` (shifted on the way in and back
on the way out). RetinaNet and FCOS use per-class sigmoids without a background column (their heads
one-hot the labels directly: ``RetinaNetClassificationHead.compute_loss``,
``FCOSClassificationHead.compute_loss``), so they are built with ``num_classes = K`` and labels
pass unchanged.

**Sizes.** Faster R-CNN, RetinaNet and FCOS resize inputs in their ``GeneralizedRCNNTransform``
(800 px by default); here ``min_size = max_size = image_size``, so the image's longer side becomes
``image_size`` pixels and boxes come back in input pixels. SSD300 and SSDlite320 always resize to
their fixed 300 / 320 squares (torchvision ignores ``size``). Weights are never downloaded
(``weights=None, weights_backbone=None``); without pretrained weights torchvision trains every
backbone layer with ordinary (not frozen) batch norm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision.models.detection as tvd
from torch import Tensor, nn
from torchvision.ops import batched_nms

from visionbench.losses import create_detection_loss

__all__ = ["DETECTORS", "TinyFCOS", "TorchvisionDetector", "detector_builder", "tiny_fcos"]

Detections = list[dict[str, Tensor]]


# --------------------------------------------------------------------------------------------
# Shared input checks
# --------------------------------------------------------------------------------------------


def _check_images(images: Sequence[Tensor], in_channels: int) -> None:
    if isinstance(images, Tensor) and images.dim() == 3:
        raise TypeError("images must be a list of [C, H, W] tensors; got one tensor of shape "
                        f"{tuple(images.shape)!r}. Wrap it: model([image]).")
    if len(images) == 0:
        raise ValueError("images must hold at least one image; got an empty list. Pass [image, ...].")
    for i, image in enumerate(images):
        if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != in_channels:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"images[{i}] must be a [{in_channels}, H, W] tensor; got {shape!r}. "
                             "Give one image per list entry, channels first.")
        if not image.is_floating_point():
            raise TypeError(f"images[{i}] must be a float tensor in [0, 1]; got dtype {image.dtype}. "
                            "Convert uint8 images with image.float() / 255.")


def _plain_targets(targets: Sequence[Mapping[str, Any]] | None, n_images: int, *, label_offset: int,
                   num_classes: int) -> list[dict[str, Tensor]]:
    """Our targets as plain ``{"boxes": float32 [g, 4], "labels": int64 [g] + offset}`` dicts."""
    if targets is None:
        raise ValueError("targets must be given in train mode; got None. Call model.eval() to predict, or pass "
                         "one {'boxes', 'labels'} dict per image.")
    if len(targets) != n_images:
        raise ValueError(f"targets must have one entry per image; got {len(targets)} for {n_images} images.")
    plain = []
    for i, target in enumerate(targets):
        # BoundingBoxes (a tv_tensor) would otherwise carry its metadata through every op.
        boxes = torch.as_tensor(target["boxes"]).as_subclass(Tensor).to(torch.float32).reshape(-1, 4)
        labels = torch.as_tensor(target["labels"]).as_subclass(Tensor).to(torch.int64).reshape(-1)
        if labels.numel() != boxes.shape[0]:
            raise ValueError(f"targets[{i}] must have one label per box; got {labels.numel()} labels for "
                             f"{boxes.shape[0]} boxes.")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"targets[{i}]['labels'] must be in 0..{num_classes - 1}; got {labels.tolist()!r}. "
                             "Labels are 0-based class indices (no background class).")
        if boxes.numel() and not bool((boxes[:, 2:] >= boxes[:, :2]).all() & torch.isfinite(boxes).all()):
            raise ValueError(f"targets[{i}]['boxes'] must be finite XYXY with x1 <= x2 and y1 <= y2; got "
                             f"{boxes.tolist()!r}. Convert XYWH boxes with torchvision.ops.box_convert.")
        plain.append({"boxes": boxes, "labels": labels + label_offset})
    return plain


# --------------------------------------------------------------------------------------------
# torchvision detectors
# --------------------------------------------------------------------------------------------


class TorchvisionDetector(nn.Module):
    """A torchvision detector with 0-based labels on both sides (see the module docstring).

    Args:
        model: a torchvision detection model (``GeneralizedRCNN``, ``RetinaNet``, ``FCOS``, ``SSD``).
        num_classes: ``K``, the number of object classes (without background).
        label_offset: 1 where the model's class 0 is the background (Faster R-CNN, SSD), else 0.
    """

    def __init__(self, model: nn.Module, *, num_classes: int, label_offset: int) -> None:
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.label_offset = label_offset

    def forward(self, images: Sequence[Tensor], targets: Sequence[Mapping[str, Any]] | None = None
                ) -> dict[str, Tensor] | Detections:
        """Losses (train mode) or detections (eval mode); shapes in the module docstring."""
        _check_images(images, 3)
        if self.training:
            plain = _plain_targets(targets, len(images), label_offset=self.label_offset,
                                   num_classes=self.num_classes)
            return self.model(list(images), plain)
        outputs = self.model(list(images))
        return [{"boxes": o["boxes"], "scores": o["scores"], "labels": o["labels"] - self.label_offset}
                for o in outputs]


def _check_rgb(name: str, in_channels: int) -> None:
    if in_channels != 3:
        raise ValueError(f"in_channels must be 3 for {name}; got {in_channels!r}. torchvision's detectors "
                         "normalise RGB; convert the images to RGB or use 'tiny_fcos'.")


def _torchvision_detector(builder: Callable[..., nn.Module], *, background: bool, resizes: bool
                          ) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int = 3, image_size: int = 320) -> nn.Module:
        _check_rgb(builder.__name__, in_channels)
        kwargs: dict[str, Any] = {"min_size": image_size, "max_size": image_size} if resizes else {}
        model = builder(weights=None, weights_backbone=None, num_classes=num_classes + int(background), **kwargs)
        return TorchvisionDetector(model, num_classes=num_classes, label_offset=int(background))

    build.__name__ = builder.__name__
    build.__doc__ = (f"torchvision's ``{builder.__name__}`` (random init, no download) for ``num_classes`` object "
                     "classes, wrapped in :class:`TorchvisionDetector`.")
    return build


# --------------------------------------------------------------------------------------------
# TinyFCOS
# --------------------------------------------------------------------------------------------


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _Backbone(nn.Module):
    """Plain 3x3 conv-BN-ReLU stages, each halving the resolution; returns every stage's map."""

    def __init__(self, in_channels: int, widths: Sequence[int], depths: Sequence[int]) -> None:
        super().__init__()
        stages, c_in = [], in_channels
        for width, depth in zip(widths, depths, strict=True):
            stages.append(nn.Sequential(_conv_bn_relu(c_in, width, 2), *(_conv_bn_relu(width, width)
                                                                         for _ in range(depth - 1))))
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features  # stage i has stride 2 ** (i + 1)


class _FPNLite(nn.Module):
    """FPN without extra levels: 1x1 laterals, nearest top-down sum, one 3x3 conv per output level."""

    def __init__(self, in_widths: Sequence[int], width: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_widths)
        self.output = nn.ModuleList(_conv_bn_relu(width, width) for _ in in_widths)

    def forward(self, features: Sequence[Tensor]) -> list[Tensor]:
        x = self.lateral[-1](features[-1])
        outs = [self.output[-1](x)]
        for i in range(len(features) - 2, -1, -1):
            x = self.lateral[i](features[i]) + F.interpolate(x, size=features[i].shape[-2:], mode="nearest")
            outs.insert(0, self.output[i](x))
        return outs


class _Head(nn.Module):
    """FCOS head shared by all levels: class tower → K logits; box tower → 4 distances + centerness."""

    def __init__(self, width: int, num_classes: int, num_convs: int, num_levels: int, prior: float) -> None:
        super().__init__()
        self.cls_tower = nn.Sequential(*(_conv_bn_relu(width, width) for _ in range(num_convs)))
        self.box_tower = nn.Sequential(*(_conv_bn_relu(width, width) for _ in range(num_convs)))
        self.cls_logits = nn.Conv2d(width, num_classes, 3, padding=1)
        self.box_pred = nn.Conv2d(width, 4, 3, padding=1)
        self.centerness = nn.Conv2d(width, 1, 3, padding=1)
        # One learnable scale per level on the log-distances (FCOS `Scale`, fcos_head.py).
        self.scales = nn.Parameter(torch.ones(num_levels))
        for layer in (self.cls_logits, self.box_pred, self.centerness):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        # Focal-loss prior (Lin et al. 2017, §3.3): every location starts at p = prior for each class,
        # so the ~all-negative locations do not swamp the loss on the first steps.
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior) / prior))

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        cls, box, ctr = [], [], []
        for level, x in enumerate(features):
            t = self.box_tower(x)
            cls.append(self.cls_logits(self.cls_tower(x)).flatten(2))  # (B, K, h*w)
            box.append((self.box_pred(t) * self.scales[level]).flatten(2))  # (B, 4, h*w) log(distance / stride)
            ctr.append(self.centerness(t).flatten(2))  # (B, 1, h*w)
        return (torch.cat(cls, 2).transpose(1, 2), torch.cat(box, 2).transpose(1, 2),
                torch.cat(ctr, 2).transpose(1, 2)[..., 0])  # (B, P, K), (B, P, 4), (B, P)


class TinyFCOS(nn.Module):
    """A small one-stage anchor-free detector (FCOS, Tian et al. 2019) that trains on a CPU.

    A plain conv backbone (``widths``, stride 2 per stage), an FPN-lite over its last
    ``len(strides)`` stages, and a shared FCOS head: per location, ``K`` sigmoid class logits
    (sigmoid focal loss), 4 distances ``(l, t, r, b)`` to the box sides (``stride * exp(x)``; GIoU
    loss by default, any box loss of ``visionbench list losses`` with ``box_loss``) and a
    centerness logit (BCE). A location is positive for a ground-truth (GT) box when it lies inside
    the box *and* within ``center_radius * stride`` of the box centre (FCOS center sampling), and
    the box's largest side distance ``max(l, t, r, b)`` falls in that level's range (ranges split at
    ``size_splits``); when several GT qualify the smallest-area one wins (FCOS §3.2). The score is
    ``sqrt(sigmoid(class) * sigmoid(centerness))``; post-processing keeps scores above
    ``score_threshold``, the best ``topk_candidates`` per level, per-class NMS at ``nms_iou`` and
    the ``detections_per_image`` best.

    Images (``float [C, H, W]`` in ``[0, 1]``) are normalised by the fixed map ``(x - 0.5) / 0.25``
    and padded bottom-right to a multiple of the largest stride; boxes come back clipped to each
    image's own size. Interface: see the module docstring.

    The defaults (0.45 M parameters, levels at strides 8 and 16) were tuned on ``shapes`` (128 px,
    objects 8-67 px): with ``benchmarks/train_shapes_detector.py`` (AdamW 3e-3, 2 CPU threads) they
    reach COCO AP50 0.908 on its test split in 22 epochs (524 s of training).

    Args:
        num_classes: ``K`` object classes; labels are ``0..K-1``.
        in_channels: image channels.
        widths: backbone stage widths; stage ``i`` has stride ``2 ** (i + 1)``.
        depths: 3x3 convs per backbone stage (the first of each has stride 2).
        fpn_width: channels of the FPN and the head.
        head_convs: 3x3 convs in each head tower.
        strides: the FPN levels' strides (powers of two present in the backbone), ascending.
        size_splits: ``len(strides) - 1`` ascending bounds in pixels on ``max(l, t, r, b)``
            separating the levels' regression ranges.
        center_radius: center-sampling radius in strides (FCOS uses 1.5).
        score_threshold: minimal score of a kept detection.
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        topk_candidates: candidates per level kept before NMS.
        detections_per_image: at most this many detections per image.
        box_loss: the registered box loss (:func:`visionbench.losses.create_detection_loss`):
            ``"giou"`` (FCOS' own choice), ``"diou"``, ``"ciou"``, ``"iou"`` on the decoded
            boxes, or ``"smooth_l1"`` on the log-distances the head regresses.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, *, widths: Sequence[int] = (16, 32, 64, 128),
                 depths: Sequence[int] = (1, 1, 2, 2), fpn_width: int = 64, head_convs: int = 1,
                 strides: Sequence[int] = (8, 16), size_splits: Sequence[float] = (32.0,), center_radius: float = 1.5,
                 score_threshold: float = 0.05, nms_iou: float = 0.6, topk_candidates: int = 1000,
                 detections_per_image: int = 100, box_loss: str = "giou") -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}. Count the object classes.")
        levels = [int(math.log2(s)) - 1 for s in strides]
        if any(2 ** (i + 1) != s or not 0 <= i < len(widths) for i, s in zip(levels, strides, strict=True)) or (
                levels != sorted(set(levels))):
            raise ValueError(f"strides must be ascending powers of two up to 2 ** len(widths); got {strides!r}. "
                             "E.g. (8, 16) with 4 backbone widths.")
        if len(size_splits) != len(strides) - 1 or list(size_splits) != sorted(size_splits):
            raise ValueError(f"size_splits must be {len(strides) - 1} ascending bounds; got {size_splits!r}. "
                             "E.g. (32,) for 2 levels.")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.strides = tuple(int(s) for s in strides)
        self.levels = levels
        bounds = [0.0, *(float(b) for b in size_splits), math.inf]
        self.size_ranges = tuple(zip(bounds[:-1], bounds[1:], strict=True))
        self.center_radius = center_radius
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.topk_candidates = topk_candidates
        self.detections_per_image = detections_per_image
        if len(depths) != len(widths) or min(depths) < 1:
            raise ValueError(f"depths must be one positive int per backbone stage ({len(widths)}); got {depths!r}.")
        self.backbone = _Backbone(in_channels, widths[: levels[-1] + 1], depths[: levels[-1] + 1])
        self.fpn = _FPNLite([widths[i] for i in levels], fpn_width)
        self.head = _Head(fpn_width, num_classes, head_convs, len(levels), prior=0.01)
        # Parameter-free modules: the losses add nothing to the state dict, so checkpoints of
        # every box loss load into one another.
        self.box_loss = create_detection_loss(box_loss, kind="box")
        self.cls_loss = create_detection_loss("sigmoid_focal", kind="classification")

    # ---- forward ------------------------------------------------------------------------------

    def forward(self, images: Sequence[Tensor], targets: Sequence[Mapping[str, Any]] | None = None
                ) -> dict[str, Tensor] | Detections:
        """Losses (train mode) or detections (eval mode); shapes in the module docstring."""
        _check_images(images, self.in_channels)
        plain = None
        if self.training:  # checked before the network runs, so bad targets fail fast
            plain = _plain_targets(targets, len(images), label_offset=0, num_classes=self.num_classes)
        batch, sizes = self._batch(images)
        features = self.backbone((batch - 0.5) / 0.25)
        maps = self.fpn([features[i] for i in self.levels])
        cls, box, ctr = self.head(maps)
        points, strides, ranges = self._locations(maps)
        if plain is not None:
            return self.loss(cls, box, ctr, points, strides, ranges, plain)
        counts = [m.shape[-2] * m.shape[-1] for m in maps]
        return self.postprocess(cls, box, ctr, points, strides, counts, sizes)

    def _batch(self, images: Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """Pad bottom-right to a common size, a multiple of the largest stride (zeros → -2 after
        normalisation; the padding is never inside a box)."""
        sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        m = self.strides[-1]
        h = -(-max(s[0] for s in sizes) // m) * m
        w = -(-max(s[1] for s in sizes) // m) * m
        if all(s == (h, w) for s in sizes):
            return torch.stack(list(images)), sizes
        batch = images[0].new_zeros((len(images), self.in_channels, h, w))
        for i, im in enumerate(images):
            batch[i, :, : im.shape[-2], : im.shape[-1]] = im
        return batch, sizes

    def _locations(self, maps: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Location centres ``(P, 2)`` as (x, y) pixels, their strides ``(P,)`` and size ranges ``(P, 2)``."""
        points, strides, ranges = [], [], []
        for fmap, stride, (lo, hi) in zip(maps, self.strides, self.size_ranges, strict=True):
            h, w = fmap.shape[-2:]
            # The location (i, j) looks at pixel (j + 0.5, i + 0.5) * stride — the centre of its
            # receptive cell; FCOS uses stride // 2 offsets, which is the same for these strides.
            ys, xs = torch.meshgrid(torch.arange(h, device=fmap.device), torch.arange(w, device=fmap.device),
                                    indexing="ij")
            pts = (torch.stack([xs, ys], -1).reshape(-1, 2).to(fmap.dtype) + 0.5) * stride
            points.append(pts)
            strides.append(torch.full((h * w,), float(stride), device=fmap.device))
            ranges.append(torch.tensor([[lo, hi]], device=fmap.device).expand(h * w, 2))
        return torch.cat(points), torch.cat(strides), torch.cat(ranges)

    # ---- training -----------------------------------------------------------------------------

    def assign(self, points: Tensor, strides: Tensor, ranges: Tensor, boxes: Tensor) -> Tensor:
        """The GT index each location regresses, ``int64 [P]``, ``-1`` for background.

        Args:
            points: ``(P, 2)`` location centres (x, y) in pixels.
            strides: ``(P,)`` each location's stride.
            ranges: ``(P, 2)`` the ``[low, high)`` range of ``max(l, t, r, b)`` at its level.
            boxes: ``(G, 4)`` GT boxes XYXY in pixels.
        """
        if boxes.shape[0] == 0:
            return torch.full((points.shape[0],), -1, dtype=torch.int64, device=points.device)
        x, y = points[:, 0:1], points[:, 1:2]  # (P, 1)
        ltrb = torch.stack([x - boxes[:, 0], y - boxes[:, 1], boxes[:, 2] - x, boxes[:, 3] - y], -1)  # (P, G, 4)
        inside = ltrb.min(-1).values > 0
        # Center sampling (FCOS "center_sample", fcos_core/modeling/rpn/fcos/loss.py): the location
        # must also lie within radius * stride of the box centre.
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        radius = self.center_radius * strides[:, None]
        central = ((x - cx).abs() < radius) & ((y - cy).abs() < radius)
        reach = ltrb.max(-1).values
        in_range = (reach >= ranges[:, 0:1]) & (reach < ranges[:, 1:2])
        area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).expand(points.shape[0], -1)
        area = torch.where(inside & central & in_range, area, torch.full_like(area, math.inf))
        best_area, best = area.min(1)
        return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))

    def loss(self, cls: Tensor, box: Tensor, ctr: Tensor, points: Tensor, strides: Tensor, ranges: Tensor,
             targets: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
        """FCOS losses, each a scalar, as in FCOS' ``FCOSLossComputation``: ``classification``
        (sigmoid focal, α = 0.25, γ = 2, summed and divided by the number of positives),
        ``box_<name>`` (the ``box_loss`` of each positive, weighted by its centerness target; e.g.
        ``box_giou``) and ``centerness`` (BCE on positives)."""
        cls_target = torch.zeros_like(cls)
        pos_deltas, pos_box, pos_ctr_logit, pos_points, pos_strides = [], [], [], [], []
        for b, target in enumerate(targets):
            gt = self.assign(points, strides, ranges, target["boxes"])
            pos = gt >= 0
            idx = gt[pos]
            cls_target[b, pos, target["labels"][idx]] = 1.0
            pos_deltas.append(box[b, pos])
            pos_box.append(target["boxes"][idx])
            pos_ctr_logit.append(ctr[b, pos])
            pos_points.append(points[pos])
            pos_strides.append(strides[pos])
        num_pos = max(sum(p.shape[0] for p in pos_deltas), 1)
        loss_cls = self.cls_loss(cls, cls_target).sum() / num_pos
        box_key = f"box_{self.box_loss.name}"
        deltas, gt_box, ctr_logit = torch.cat(pos_deltas), torch.cat(pos_box), torch.cat(pos_ctr_logit)
        if deltas.shape[0] == 0:
            zero = box.sum() * 0.0 + ctr.sum() * 0.0  # keeps every parameter in the graph
            return {"classification": loss_cls, box_key: zero, "centerness": zero}
        pos_points_all, pos_strides_all = torch.cat(pos_points), torch.cat(pos_strides)
        ctr_target = _centerness(pos_points_all, gt_box)
        per_box = self.regression_losses(deltas, pos_points_all, pos_strides_all, gt_box)
        loss_box = (per_box * ctr_target).sum() / ctr_target.sum().clamp_min(1e-6)
        loss_ctr = F.binary_cross_entropy_with_logits(ctr_logit, ctr_target, reduction="mean")
        return {"classification": loss_cls, box_key: loss_box, "centerness": loss_ctr}

    def regression_losses(self, deltas: Tensor, points: Tensor, strides: Tensor, gt_boxes: Tensor) -> Tensor:
        """The box loss of each positive location, ``[N]``: on the decoded boxes (IoU family) or
        on the log-distances against :meth:`encode` of the GT box (Smooth L1).

        Args:
            deltas: ``(N, 4)`` the head's log-distances at the positive locations.
            points: ``(N, 2)`` their centres (x, y) in pixels.
            strides: ``(N,)`` their strides.
            gt_boxes: ``(N, 4)`` the GT box XYXY each regresses.
        """
        if self.box_loss.on == "encoded":
            return self.box_loss(deltas, self.encode(gt_boxes, points, strides))
        return self.box_loss(self.decode(deltas, points, strides), gt_boxes)

    @staticmethod
    def encode(boxes: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        """Log-distances ``(N, 4)`` ``log((l, t, r, b) / stride)`` from ``points (N, 2)`` to the sides of
        ``boxes (N, 4)``: the inverse of :meth:`decode` (points inside their box; the clamp only
        guards a point on an edge)."""
        ltrb = torch.cat([points - boxes[:, :2], boxes[:, 2:] - points], -1)
        return torch.log(ltrb.clamp_min(1e-6) / strides[:, None])

    @staticmethod
    def decode(deltas: Tensor, points: Tensor, strides: Tensor) -> Tensor:
        """Boxes XYXY ``(N, 4)`` from log-distances ``(N, 4)`` at locations ``(N, 2)`` with ``strides (N,)``."""
        # Clamp before exp so an early wild step cannot overflow (torchvision's BoxCoder clamps
        # at log(1000 / 16) for the same reason).
        dist = deltas.clamp(max=math.log(1000.0 / 8)).exp() * strides[:, None]
        return torch.cat([points - dist[:, :2], points + dist[:, 2:]], -1)

    # ---- inference ----------------------------------------------------------------------------

    @torch.no_grad()
    def postprocess(self, cls: Tensor, box: Tensor, ctr: Tensor, points: Tensor, strides: Tensor,
                    counts: Sequence[int], sizes: Sequence[tuple[int, int]]) -> Detections:
        """Detections per image from the raw head outputs (score threshold, top-k per level, per-class
        NMS, ``detections_per_image``); labels ``0..K-1``, boxes clipped to each image."""
        scores_all = torch.sqrt(torch.sigmoid(cls) * torch.sigmoid(ctr)[..., None])  # (B, P, K)
        starts = [0, *torch.tensor(list(counts)).cumsum(0).tolist()]
        results = []
        for b, (h, w) in enumerate(sizes):
            kept_boxes, kept_scores, kept_labels = [], [], []
            for lo, hi in zip(starts[:-1], starts[1:], strict=True):
                scores = scores_all[b, lo:hi].flatten()  # (p * K,) location-major
                keep = torch.nonzero(scores > self.score_threshold).squeeze(1)
                scores = scores[keep]
                if scores.numel() > self.topk_candidates:
                    scores, order = scores.topk(self.topk_candidates)
                    keep = keep[order]
                loc, label = keep // self.num_classes + lo, keep % self.num_classes
                kept_boxes.append(self.decode(box[b, loc], points[loc], strides[loc]))
                kept_scores.append(scores)
                kept_labels.append(label)
            boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
            boxes = torch.stack([boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h),
                                 boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], -1)
            keep = batched_nms(boxes, scores, labels, self.nms_iou)[: self.detections_per_image]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results


def _centerness(points: Tensor, boxes: Tensor) -> Tensor:
    """FCOS centerness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` in ``[0, 1]`` (eq. 3)."""
    left, top = points[:, 0] - boxes[:, 0], points[:, 1] - boxes[:, 1]
    right, bottom = boxes[:, 2] - points[:, 0], boxes[:, 3] - points[:, 1]
    lr = torch.minimum(left, right) / torch.maximum(left, right).clamp_min(1e-6)
    tb = torch.minimum(top, bottom) / torch.maximum(top, bottom).clamp_min(1e-6)
    return torch.sqrt((lr * tb).clamp(0.0, 1.0))


def tiny_fcos(*, num_classes: int, in_channels: int = 3, image_size: int = 128, box_loss: str = "giou") -> nn.Module:
    """:class:`TinyFCOS` with its default (tuned on ``shapes``) configuration and the registered
    ``box_loss`` (``--box-loss``); any input size (``image_size`` is accepted for the registry's
    builder signature and not needed)."""
    return TinyFCOS(num_classes, in_channels, box_loss=box_loss)


# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------

DETECTORS: dict[str, Callable[..., nn.Module]] = {
    "fasterrcnn_mobilenet_v3_large_fpn": _torchvision_detector(tvd.fasterrcnn_mobilenet_v3_large_fpn,
                                                               background=True, resizes=True),
    "fasterrcnn_resnet50_fpn": _torchvision_detector(tvd.fasterrcnn_resnet50_fpn, background=True, resizes=True),
    "retinanet_resnet50_fpn": _torchvision_detector(tvd.retinanet_resnet50_fpn, background=False, resizes=True),
    "fcos_resnet50_fpn": _torchvision_detector(tvd.fcos_resnet50_fpn, background=False, resizes=True),
    "ssd300_vgg16": _torchvision_detector(tvd.ssd300_vgg16, background=True, resizes=False),
    "ssdlite320_mobilenet_v3_large": _torchvision_detector(tvd.ssdlite320_mobilenet_v3_large, background=True,
                                                           resizes=False),
    "tiny_fcos": tiny_fcos,
}
"""Name → builder ``(*, num_classes, in_channels=3, image_size) -> nn.Module`` (detector interface above)."""


def detector_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of detector ``name``: the catalogue's factory for detectors (names, descriptions
    and sizes live in :mod:`visionbench.models.catalog`, so listing them does not import this module)."""
    return DETECTORS[name]
