"""tiny_fcos' selectable box loss (``--box-loss``): each registered box loss trains a step with
finite losses equal to the loss function applied directly to the same positives, the default is
GIoU, and detectors that keep their own loss refuse the option."""

from __future__ import annotations

import math

import pytest
import torch

from visionbench.losses import detection_loss_names
from visionbench.losses.detection import ciou_loss, diou_loss, giou_loss, iou_loss, sigmoid_focal_loss, smooth_l1_loss
from visionbench.models import create_model
from visionbench.models.detectors import TinyFCOS

DIRECT = {"giou": giou_loss, "diou": diou_loss, "ciou": ciou_loss, "iou": iou_loss}
K = 3


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 64, 64, generator=generator) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[5.0, 6.0, 40.0, 30.0], [30.0, 28.0, 62.0, 63.0]]), "labels": torch.tensor([1, 2])},
               {"boxes": torch.tensor([[2.0, 3.0, 21.0, 20.0]]), "labels": torch.tensor([0])}]
    return images, targets


def _expected(model: TinyFCOS, name: str, head: dict) -> dict[str, torch.Tensor]:
    """The three losses from the head outputs, with the functional losses called directly."""
    cls, box, ctr, points, strides, ranges = (head[k] for k in ("cls", "box", "ctr", "points", "strides", "ranges"))
    cls_target = torch.zeros_like(cls)
    deltas, gt_boxes, ctr_logits, pos_points, pos_strides = [], [], [], [], []
    for b, target in enumerate(head["targets"]):
        gt = model.assign(points, strides, ranges, target["boxes"])
        pos = gt >= 0
        cls_target[b, pos, target["labels"][gt[pos]]] = 1.0
        deltas.append(box[b, pos])
        gt_boxes.append(target["boxes"][gt[pos]])
        ctr_logits.append(ctr[b, pos])
        pos_points.append(points[pos])
        pos_strides.append(strides[pos])
    deltas, gt_boxes, pts, st = torch.cat(deltas), torch.cat(gt_boxes), torch.cat(pos_points), torch.cat(pos_strides)
    x, y = pts[:, 0], pts[:, 1]
    left, top, right, bottom = x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y
    # FCOS centerness (eq. 3), the weight of each positive's box loss.
    centerness = torch.sqrt(torch.minimum(left, right) / torch.maximum(left, right)
                            * torch.minimum(top, bottom) / torch.maximum(top, bottom))
    if name == "smooth_l1":  # on the log-distances the head regresses, beta 1/9
        encoded = torch.log(torch.stack([left, top, right, bottom], 1) / st[:, None])
        per_box = smooth_l1_loss(deltas, encoded, beta=1 / 9, reduction="none").sum(1)
    else:
        dist = deltas.exp() * st[:, None]
        decoded = torch.stack([x - dist[:, 0], y - dist[:, 1], x + dist[:, 2], y + dist[:, 3]], 1)
        per_box = DIRECT[name](decoded, gt_boxes, reduction="none")
    return {
        "classification": sigmoid_focal_loss(cls, cls_target, alpha=0.25, gamma=2.0, reduction="sum") / len(deltas),
        f"box_{name}": (per_box * centerness).sum() / centerness.sum(),
        "centerness": torch.nn.functional.binary_cross_entropy_with_logits(torch.cat(ctr_logits), centerness),
    }


@pytest.mark.parametrize("name", detection_loss_names("box"))
def test_each_box_loss_trains_a_step_with_the_loss_applied_directly(name: str) -> None:
    torch.manual_seed(0)
    model = TinyFCOS(K, box_loss=name).train()
    head: dict = {}
    loss = model.loss

    def recording_loss(cls, box, ctr, points, strides, ranges, targets):  # type: ignore[no-untyped-def]
        head.update(cls=cls, box=box, ctr=ctr, points=points, strides=strides, ranges=ranges, targets=targets)
        return loss(cls, box, ctr, points, strides, ranges, targets)

    model.loss = recording_loss  # type: ignore[method-assign]
    images, targets = _batch()
    losses = model(images, targets)
    expected = _expected(model, name, head)
    assert set(losses) == set(expected) == {"classification", f"box_{name}", "centerness"}
    for key, value in losses.items():
        assert math.isfinite(float(value.detach())), (key, value)
        torch.testing.assert_close(value, expected[key], rtol=1e-5, atol=1e-6, msg=key)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    after = model(images, targets)
    assert all(math.isfinite(float(v.detach())) for v in after.values())


def test_the_default_box_loss_is_giou_and_adds_nothing_to_the_state_dict() -> None:
    default = create_model("tiny_fcos", num_classes=K, image_size=64)
    smooth = create_model("tiny_fcos", num_classes=K, image_size=64, box_loss="smooth_l1")
    assert default.box_loss.name == "giou" and smooth.box_loss.name == "smooth_l1"
    # Checkpoints of runs with different box losses load into one another.
    assert default.state_dict().keys() == smooth.state_dict().keys()


def test_tiny_fcos_refuses_a_classification_loss_as_box_loss() -> None:
    with pytest.raises(ValueError, match=r"box loss must be one of \['ciou', 'diou', 'giou', 'iou', 'smooth_l1'\]; "
                                         r"got 'sigmoid_focal', a classification loss"):
        TinyFCOS(K, box_loss="sigmoid_focal")
    with pytest.raises(ValueError, match="unknown detection loss 'gio'. Did you mean 'giou'"):
        TinyFCOS(K, box_loss="gio")


@pytest.mark.parametrize("name", ["fasterrcnn_mobilenet_v3_large_fpn", "fcos_resnet50_fpn", "cnn-small"])
def test_models_that_keep_their_own_loss_refuse_a_box_loss(name: str) -> None:
    # Refused before anything is built: the check reads the registry's options only.
    with pytest.raises(ValueError, match=rf"box_loss must be auto for model '{name}', which keeps its own; got "
                                         r"'giou'.*--box-loss applies to tiny_fcos"):
        create_model(name, num_classes=K, image_size=64, box_loss="giou")
