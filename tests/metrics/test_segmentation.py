"""Tests for visionbench/metrics/segmentation.py.

Oracles: scikit-learn's ``confusion_matrix(labels=range(K))``, ``jaccard_score`` /
``f1_score`` (``average=None``, ``"macro"``, ``"weighted"`` with ``labels`` = the classes that are
not absent), ``accuracy_score`` and ``balanced_accuracy_score`` on the flattened pixels with the
ignored ones removed, compared with ``==`` (same formulas, same floating-point operations); a
slow per-pixel loop; torchmetrics' ``MeanIoU`` / ``mean_iou`` for the per-image mIoU (float32
there, so to 1e-6). Inputs: hypothesis-generated masks (ignore pixels, classes absent from either
side or both, a single class, all-ignored images). Properties: both counting kernels agree,
batched == one matrix at a time, k streamed updates == one call, merging halves == the whole,
DDP sync over two gloo processes == one process, seeded bootstrap reproducible.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from visionbench.metrics.classification import UndefinedMetricWarning
from visionbench.metrics.segmentation import (
    SEGMENTATION_HIGHER_IS_BETTER,
    SegmentationAccumulator,
    _index_masks,
    _per_image_counts_torch,
    absent_classes,
    frequency_weighted_iou,
    mean_class_accuracy,
    mean_dice,
    mean_iou,
    per_class_accuracy,
    per_class_dice,
    per_class_iou,
    per_image_confusion,
    per_image_mean_iou,
    pixel_accuracy,
    segmentation_confusion,
    segmentation_metric_tensors,
)

FAST = settings(max_examples=20, deadline=None)
IGNORE = 255
SCALARS = ("mIoU", "fwIoU", "pixel_accuracy", "mean_class_accuracy", "dice_mean")


# --------------------------------------------------------------------------------------------
# Inputs and oracles
# --------------------------------------------------------------------------------------------


@st.composite
def masks(draw: st.DrawFn, max_images: int = 3) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(preds [N, H, W], target [N, H, W], K)``: each side drawn from its own subset of the
    classes (so some are absent from one side or both), some pixels ignored, sometimes a whole
    image ignored, predictions often right."""
    k = draw(st.integers(1, 6))
    n, h, w = draw(st.integers(1, max_images)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    size = n * h * w
    target_classes = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    pred_classes = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=k, unique=True))
    with_ignore = draw(st.booleans())
    target = draw(st.lists(st.sampled_from(target_classes + ([IGNORE] if with_ignore else [])), min_size=size,
                           max_size=size))
    guesses = draw(st.lists(st.sampled_from(pred_classes), min_size=size, max_size=size))
    correct = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    preds = [t if c and t != IGNORE else g for t, g, c in zip(target, guesses, correct, strict=True)]
    target_t = torch.tensor(target, dtype=torch.int64).reshape(n, h, w)
    if draw(st.booleans()):
        target_t[draw(st.integers(0, n - 1))] = IGNORE  # an image with no counted pixel
    return torch.tensor(preds, dtype=torch.int64).reshape(n, h, w), target_t, k


def loop_confusion(preds: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """Slow oracle: one pixel at a time."""
    cm = torch.zeros(k, k, dtype=torch.int64)
    for p, t in zip(preds.reshape(-1).tolist(), target.reshape(-1).tolist(), strict=True):
        if t != IGNORE:
            cm[t, p] += 1
    return cm


def kept(preds: torch.Tensor, target: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Flattened ``(y_true, y_pred)`` of the counted pixels, as scikit-learn takes them."""
    keep = target != IGNORE
    return target[keep].numpy(), preds[keep].numpy()


def loop_scalars(cm: torch.Tensor) -> dict[str, float]:
    """Slow oracle of the definitions, class by class in plain Python."""
    k = cm.shape[0]
    tp = [int(cm[c, c]) for c in range(k)]
    support = [int(cm[c].sum()) for c in range(k)]
    predicted = [int(cm[:, c].sum()) for c in range(k)]
    present = [c for c in range(k) if support[c] + predicted[c] > 0]
    if not present:
        return dict.fromkeys(SCALARS, math.nan)
    iou = {c: tp[c] / (support[c] + predicted[c] - tp[c]) for c in present}
    dice = {c: 2 * tp[c] / (support[c] + predicted[c]) for c in present}
    with_target = [c for c in range(k) if support[c] > 0]
    return {
        "mIoU": sum(iou.values()) / len(present),
        "fwIoU": sum(support[c] * iou[c] for c in present) / sum(support),
        "pixel_accuracy": sum(tp) / sum(support),
        "mean_class_accuracy": sum(tp[c] / support[c] for c in with_target) / len(with_target),
        "dice_mean": sum(dice.values()) / len(present),
    }


def assert_same(a: float, b: float) -> None:
    """Equal, NaN included."""
    assert (math.isnan(a) and math.isnan(b)) or a == b, (a, b)


def assert_intervals_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert_same(a[name][0], b[name][0])
        assert_same(a[name][1], b[name][1])


def assert_results_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if isinstance(a[name], float):
            assert_same(a[name], b[name])
        else:
            assert a[name] == b[name], name


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


@FAST
@given(masks())
def test_confusion_matches_sklearn_loop_and_both_kernels(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    per_image = per_image_confusion(preds, target, k)
    assert per_image.dtype == torch.int64 and per_image.shape == (preds.shape[0], k, k)
    for i in range(preds.shape[0]):
        assert torch.equal(per_image[i], loop_confusion(preds[i], target[i], k))
    y_true, y_pred = kept(preds, target)
    # scikit-learn refuses empty inputs: a wholly ignored batch counts nothing.
    expected = skm.confusion_matrix(y_true, y_pred, labels=np.arange(k)) if y_true.size else np.zeros((k, k))
    assert np.array_equal(segmentation_confusion(preds, target, k).numpy(), expected)
    # The accelerator kernel (run here on CPU tensors) counts the same.
    flat_preds, flat_target = _index_masks(preds, target, k)
    assert torch.equal(_per_image_counts_torch(flat_preds, flat_target, k, IGNORE), per_image)


@FAST
@given(masks(), st.sampled_from([torch.uint8, torch.int16, torch.int32]))
def test_small_dtypes_and_single_image_count_the_same(
    data: tuple[torch.Tensor, torch.Tensor, int], dtype: torch.dtype
) -> None:
    preds, target, k = data
    expected = segmentation_confusion(preds, target, k)
    assert torch.equal(segmentation_confusion(preds.to(dtype), target.to(dtype), k), expected)
    assert torch.equal(segmentation_confusion(preds[0], target[0], k), per_image_confusion(preds, target, k)[0])


def test_ignore_index_conventions() -> None:
    g = torch.Generator().manual_seed(3)
    preds, target = torch.randint(0, 4, (2, 9, 7), generator=g), torch.randint(0, 4, (2, 9, 7), generator=g)
    void = torch.rand(2, 9, 7, generator=g) < 0.3
    expected = skm.confusion_matrix(target[~void].numpy(), preds[~void].numpy(), labels=np.arange(4))
    # Void as 255 (the default), as a negative label (remapped path), and as a large label.
    for ignore in (255, -100, 40_000):
        got = segmentation_confusion(preds, torch.where(void, ignore, target), 4, ignore_index=ignore)
        assert np.array_equal(got.numpy(), expected), ignore
    # ignore_index inside [0, K): that class's target pixels are dropped, its predictions count.
    keep = target != 2
    expected_2 = skm.confusion_matrix(target[keep].numpy(), preds[keep].numpy(), labels=np.arange(4))
    assert np.array_equal(segmentation_confusion(preds, target, 4, ignore_index=2).numpy(), expected_2)
    # None: every pixel counts, and 255 is then a bad label.
    assert int(segmentation_confusion(preds, target, 4, ignore_index=None).sum()) == target.numel()
    with pytest.raises(ValueError, match=r"255 \(\d+ px\)"):
        segmentation_confusion(preds, torch.where(void, 255, target), 4, ignore_index=None)


@pytest.mark.parametrize("k", [130, 200, 300])
def test_many_classes_use_wider_codes(k: int) -> None:
    """K > 128 (int32 codes) and K > 255 (ignore remapped to row K) count the same."""
    g = torch.Generator().manual_seed(k)
    target = torch.randint(0, k, (2, 40, 30), generator=g)
    preds = torch.where(torch.rand(2, 40, 30, generator=g) < 0.5, target, torch.randint(0, k, (2, 40, 30), generator=g))
    target[:, :3] = IGNORE if k <= IGNORE else -1
    ignore = IGNORE if k <= IGNORE else -1
    keep = target != ignore
    expected = skm.confusion_matrix(target[keep].numpy(), preds[keep].numpy(), labels=np.arange(k))
    assert np.array_equal(segmentation_confusion(preds, target, k, ignore_index=ignore).numpy(), expected)


def test_predictions_at_ignored_pixels_are_not_read() -> None:
    target = torch.tensor([[0, 1, IGNORE], [1, IGNORE, 0]])
    preds = torch.tensor([[0, 0, 77], [1, -5, 1]])
    assert segmentation_confusion(preds, target, 2).tolist() == [[1, 1], [1, 1]]


@FAST
@given(masks())
def test_logits_equal_their_argmax(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    logits = torch.nn.functional.one_hot(preds, k).permute(0, 3, 1, 2).float() * 3.0 + 0.1  # (N, K, H, W)
    assert torch.equal(segmentation_confusion(logits, target, k), segmentation_confusion(preds, target, k))
    assert torch.equal(segmentation_confusion(logits[0], target[0], k), segmentation_confusion(preds[0], target[0], k))


# --------------------------------------------------------------------------------------------
# Metrics of the matrix
# --------------------------------------------------------------------------------------------


@FAST
@given(masks())
def test_metrics_equal_sklearn_exactly(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    cm = segmentation_confusion(preds, target, k)
    y_true, y_pred = kept(preds, target)
    present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
    assert absent_classes(cm) == [c for c in range(k) if c not in present]
    iou, dice = per_class_iou(cm), per_class_dice(cm)
    assert torch.isnan(iou[absent_classes(cm)]).all() and torch.isnan(dice[absent_classes(cm)]).all()
    scalars = {name: float(v) for name, v in segmentation_metric_tensors(cm).items()}
    if not present:  # every pixel ignored: nothing is defined
        assert all(math.isnan(v) for v in scalars.values())
        return
    assert np.array_equal(iou[present].numpy(), skm.jaccard_score(y_true, y_pred, labels=present, average=None))
    assert float(mean_iou(cm)) == scalars["mIoU"] == skm.jaccard_score(y_true, y_pred, labels=present, average="macro")
    assert scalars["fwIoU"] == skm.jaccard_score(y_true, y_pred, labels=present, average="weighted")
    assert float(frequency_weighted_iou(cm)) == scalars["fwIoU"]
    assert np.array_equal(dice[present].numpy(), skm.f1_score(y_true, y_pred, labels=present, average=None))
    assert float(mean_dice(cm)) == scalars["dice_mean"] == skm.f1_score(y_true, y_pred, labels=present, average="macro")
    assert float(pixel_accuracy(cm)) == scalars["pixel_accuracy"] == skm.accuracy_score(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = skm.balanced_accuracy_score(y_true, y_pred)
    assert float(mean_class_accuracy(cm)) == scalars["mean_class_accuracy"] == balanced
    # Prediction-only classes: IoU 0 and Dice 0 (in the means), accuracy undefined.
    for c in set(y_pred.tolist()) - set(y_true.tolist()):
        assert iou[c] == 0 and dice[c] == 0 and torch.isnan(per_class_accuracy(cm)[c])


@FAST
@given(masks())
def test_metrics_match_the_slow_definitions(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    cm = loop_confusion(preds, target, k)
    got = {name: float(v) for name, v in segmentation_metric_tensors(cm).items()}
    for name, expected in loop_scalars(cm).items():
        assert (math.isnan(got[name]) and math.isnan(expected)) or got[name] == pytest.approx(expected, rel=1e-12)


@FAST
@given(masks())
def test_batched_matrices_equal_one_at_a_time(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    matrices = per_image_confusion(preds, target, k).reshape(-1, 1, k, k)  # (N, 1, K, K): two batch axes
    functions = (per_class_iou, per_class_dice, per_class_accuracy, mean_iou, frequency_weighted_iou, mean_dice,
                 pixel_accuracy, mean_class_accuracy)
    for fn in functions:
        batched = fn(matrices)
        assert batched.shape[:2] == (matrices.shape[0], 1)
        for i in range(matrices.shape[0]):
            assert torch.equal(batched[i, 0].nan_to_num(-1.0), fn(matrices[i, 0]).nan_to_num(-1.0)), fn.__name__


def test_absent_and_prediction_only_classes_by_hand() -> None:
    # Class 0: 2 right, 1 predicted as 1. Class 1: 1 right. Class 2: predicted once, never true.
    # Class 3: absent from both.
    cm = torch.tensor([[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert absent_classes(cm) == [3]
    iou = per_class_iou(cm)
    assert iou[:3].tolist() == [2 / 3, 1 / 3, 0.0] and torch.isnan(iou[3])
    assert float(mean_iou(cm)) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert float(frequency_weighted_iou(cm)) == pytest.approx((3 * 2 / 3 + 2 * 1 / 3) / 5)
    assert float(mean_class_accuracy(cm)) == pytest.approx((2 / 3 + 1 / 2) / 2)  # class 2 has no target pixels
    assert float(pixel_accuracy(cm)) == pytest.approx(3 / 5)
    assert float(mean_dice(cm)) == pytest.approx((4 / 5 + 2 / 4 + 0) / 3)


# --------------------------------------------------------------------------------------------
# Per-image mIoU and torchmetrics
# --------------------------------------------------------------------------------------------


@FAST
@given(masks())
def test_per_image_miou_matches_sklearn_per_image(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    image_mious, ious = [], []
    for i in range(preds.shape[0]):
        y_true, y_pred = kept(preds[i], target[i])
        present = sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        if present:  # images with no counted pixel have no mIoU
            image_mious.append(skm.jaccard_score(y_true, y_pred, labels=present, average="macro"))
            ious.extend(skm.jaccard_score(y_true, y_pred, labels=present, average=None).tolist())
    matrices = per_image_confusion(preds, target, k)
    assert_same(float(per_image_mean_iou(matrices)), float(np.mean(image_mious)) if image_mious else math.nan)
    assert_same(float(per_image_mean_iou(matrices, average="pair")), float(np.mean(ious)) if ious else math.nan)


def _realistic_batch(seed: int, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of 24x20 with 2 to k classes each (others absent from the image), errors to the
    next class, ignored top rows and one all-ignored image."""
    g = torch.Generator().manual_seed(seed)
    n = 7
    coarse = torch.randint(0, k, (n, 6, 5), generator=g) % (2 + torch.arange(n) % (k - 1)).reshape(n, 1, 1)
    target = coarse.repeat_interleave(4, 1).repeat_interleave(4, 2)  # blocky regions of 2 to k classes
    preds = torch.where(torch.rand(target.shape, generator=g) < 0.8, target, (target + 1) % k)
    target[:, :2] = IGNORE
    target[3] = IGNORE
    return preds, target


def _torchmetrics_index_inputs(preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torchmetrics has no ignore_index: shift classes by one, send void pixels to class 0 on
    both sides, and drop class 0 with include_background=False. Then intersection and union of
    every real class run over the counted pixels only, as ours."""
    void = target == IGNORE
    return torch.where(void, 0, preds + 1), torch.where(void, 0, target + 1)


def test_per_image_miou_relation_to_torchmetrics() -> None:
    """``MeanIoU(per_class=False)`` pools IoUs over (image, class) pairs: our ``average="pair"``.
    The functional ``mean_iou`` returns each image's mIoU: its nanmean is our ``"image"``."""
    from torchmetrics.functional.segmentation import mean_iou as tm_mean_iou
    from torchmetrics.segmentation import MeanIoU

    k = 5
    metric = MeanIoU(num_classes=k + 1, include_background=False, per_class=False, input_format="index")
    ours = {"image": SegmentationAccumulator(k), "pair": SegmentationAccumulator(k, per_image_average="pair")}
    per_image = []
    for seed in range(3):
        preds, target = _realistic_batch(seed, k)
        tm_preds, tm_target = _torchmetrics_index_inputs(preds, target)
        metric.update(tm_preds, tm_target)
        per_image.append(tm_mean_iou(tm_preds, tm_target, num_classes=k + 1, include_background=False,
                                     input_format="index"))
        for accumulator in ours.values():
            accumulator.update(preds, target)
    pair, image = ours["pair"].compute()["mIoU_per_image"], ours["image"].compute()["mIoU_per_image"]
    assert pair == pytest.approx(float(metric.compute()), rel=1e-6, abs=0)  # float32 in torchmetrics
    assert image == pytest.approx(float(torch.cat(per_image).double().nanmean()), rel=1e-6, abs=0)
    # Three different numbers: dataset-level mIoU, mean of image mIoUs, and the pair mean.
    dataset = ours["image"].compute()["mIoU"]
    assert len({round(dataset, 6), round(image, 6), round(pair, 6)}) == 3


# --------------------------------------------------------------------------------------------
# Accumulator: streaming, merge, DDP, bootstrap
# --------------------------------------------------------------------------------------------


@FAST
@given(masks(max_images=4), st.lists(st.integers(0, 4), max_size=3))
def test_streaming_updates_equal_one_call(data: tuple[torch.Tensor, torch.Tensor, int], cuts: list[int]) -> None:
    preds, target, k = data
    whole = SegmentationAccumulator(k)
    whole.update(preds, target)
    streamed = SegmentationAccumulator(k)
    bounds = [0, *sorted(min(c, preds.shape[0]) for c in cuts), preds.shape[0]]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        streamed.update(preds[start:stop], target[start:stop])  # empty batches included
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert_results_equal(streamed.compute(), whole.compute())
    assert torch.equal(streamed.matrix, segmentation_confusion(preds, target, k))
    assert_intervals_equal(streamed.intervals(resamples=50, seed=1), whole.intervals(resamples=50, seed=1))


@FAST
@given(masks(max_images=4))
def test_update_from_confusion_matrices_equals_update(data: tuple[torch.Tensor, torch.Tensor, int]) -> None:
    preds, target, k = data
    direct = SegmentationAccumulator(k)
    direct.update(preds, target)
    given_matrices = SegmentationAccumulator(k)
    given_matrices.update_confusions(per_image_confusion(preds, target, k))
    assert torch.equal(given_matrices.matrix, direct.matrix)
    assert torch.equal(given_matrices.image_stats, direct.image_stats)
    with pytest.raises(ValueError, match=f"integer \\[N, {k}, {k}\\]"):
        given_matrices.update_confusions(torch.zeros(1, k, k + 1, dtype=torch.int64))


@FAST
@given(masks(max_images=4), st.integers(0, 4))
def test_merging_halves_equals_whole(data: tuple[torch.Tensor, torch.Tensor, int], cut: int) -> None:
    preds, target, k = data
    whole, first, second = SegmentationAccumulator(k), SegmentationAccumulator(k), SegmentationAccumulator(k)
    whole.update(preds, target)
    first.update(preds[:cut], target[:cut])
    second.update(preds[cut:], target[cut:])
    merged = first.merge(second)
    assert torch.equal(merged.matrix, whole.matrix) and torch.equal(merged.image_stats, whole.image_stats)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert_results_equal(merged.compute(), whole.compute())
    assert_intervals_equal(merged.intervals(resamples=50, seed=2), whole.intervals(resamples=50, seed=2))


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)  # forked: no OpenMP pool inherited from the parent is touched
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    preds, target = _realistic_batch(11)
    shard = slice(0, 2) if rank == 0 else slice(2, None)  # unequal shards, each image once
    accumulator = SegmentationAccumulator(5)
    accumulator.update(preds[shard], target[shard])
    accumulator.sync()
    torch.save({"matrix": accumulator.matrix, "stats": accumulator.image_stats}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_sync_over_two_processes_equals_one_process(tmp_path: Path) -> None:
    # Forked, not spawned: a fresh interpreter imports torch and visionbench again (seconds each).
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    preds, target = _realistic_batch(11)
    expected = SegmentationAccumulator(5)
    expected.update(preds, target)
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert torch.equal(state["matrix"], expected.matrix) and torch.equal(state["stats"], expected.image_stats)


def test_sync_without_process_group_is_a_no_op() -> None:
    accumulator = SegmentationAccumulator(3)
    accumulator.update(torch.tensor([[0, 1]]), torch.tensor([[0, 2]]))
    before = accumulator.compute()
    assert_results_equal(accumulator.sync().compute(), before)


def test_bootstrap_intervals_reproducible_and_contain_the_estimate() -> None:
    accumulator = SegmentationAccumulator(5)
    for seed in range(4):
        accumulator.update(*_realistic_batch(seed))
    values = accumulator.compute()
    first = accumulator.intervals(resamples=400, seed=7)
    assert first == accumulator.intervals(resamples=400, seed=7)
    assert first != accumulator.intervals(resamples=400, seed=8)
    assert set(first) == set(SEGMENTATION_HIGHER_IS_BETTER)
    for name, (low, high) in first.items():
        assert low <= values[name] <= high and low < high, name


def test_bootstrap_resample_counts_equal_recounting_the_images() -> None:
    """A resample's counts (counts @ per-image stats) equal the matrix of its images counted again."""
    from visionbench.metrics.stats import bootstrap_index_blocks

    preds, target = _realistic_batch(5)
    accumulator = SegmentationAccumulator(5)
    accumulator.update(preds, target)
    draws = next(bootstrap_index_blocks(preds.shape[0], resamples=3, seed=0))
    for row in draws:
        counts = torch.bincount(row, minlength=preds.shape[0]).double()
        tp, support, predicted = (counts @ accumulator.image_stats.reshape(preds.shape[0], -1).double()).reshape(3, 5)
        cm = segmentation_confusion(preds[row], target[row], 5)
        assert tp.tolist() == cm.diagonal().double().tolist()
        assert support.tolist() == cm.sum(1).double().tolist() and predicted.tolist() == cm.sum(0).double().tolist()


def test_empty_accumulator_is_nan_with_a_warning() -> None:
    accumulator = SegmentationAccumulator(3)
    with pytest.warns(UndefinedMetricWarning, match="No counted pixel"):
        result = accumulator.compute()
    assert all(math.isnan(result[name]) for name in SEGMENTATION_HIGHER_IS_BETTER)
    assert result["absent_classes"] == [0, 1, 2] and result["num_images"] == 0
    assert all(math.isnan(low) for low, _ in accumulator.intervals(resamples=10).values())


def test_compute_output_layout() -> None:
    accumulator = SegmentationAccumulator(4)
    accumulator.update(torch.tensor([[[0, 1], [1, 2]]]), torch.tensor([[[0, 1], [IGNORE, 0]]]))
    result = accumulator.compute()
    assert result["absent_classes"] == [3]
    assert result["per_class"]["iou"] == [0.5, 1.0, 0.0, None]
    assert result["per_class"]["accuracy"] == [0.5, 1.0, None, None]
    assert result["per_class"]["support"] == [2, 1, 0, 0] and result["per_class"]["predicted"] == [1, 1, 1, 0]
    assert result["confusion_matrix"] == [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert result["mIoU"] == 0.5 and result["num_images"] == 1


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preds", "target", "error", "match"),
    [
        (torch.zeros(2, 3, dtype=torch.long), torch.tensor([[0, 7, 7], [9, 255, 0]]), ValueError,
         r"target values must be in \[0, 3\) or ignore_index=255; got 3 pixels outside: 7 \(2 px\), 9 \(1 px\)"),
        (torch.tensor([[0, 5], [-1, 0]]), torch.zeros(2, 2, dtype=torch.long), ValueError,
         r"preds values must be in \[0, 3\) at counted pixels; got 2 pixels outside: -1 \(1 px\), 5 \(1 px\)"),
        (torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 5, dtype=torch.long), ValueError,
         r"same shape; got preds \(2, 4, 4\) and target \(2, 4, 5\)"),
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), TypeError, "float logits with a class axis"),
        (torch.zeros(2, 5, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), ValueError, "num_classes=3 channels"),
        (torch.zeros(2, 4, 4, dtype=torch.long), torch.zeros(2, 4, 4), TypeError, "target must be an integer tensor"),
        (torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long), ValueError, r"\[H, W\] or \[N, H, W\]"),
        (np.zeros((2, 2), dtype=np.int64), torch.zeros(2, 2, dtype=torch.long), TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_input_gets_a_clear_error(preds: object, target: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        segmentation_confusion(preds, target, 3)
    accumulator = SegmentationAccumulator(3)
    with pytest.raises(error, match=match):
        accumulator.update(preds, target)
    assert int(accumulator.matrix.sum()) == 0 and accumulator.image_stats.shape[0] == 0  # nothing half-added


def test_bad_values_are_reported_by_the_accelerator_kernel_too() -> None:
    preds, target = _index_masks(torch.zeros(2, 3, dtype=torch.long), torch.tensor([[0, 7, 7], [9, 255, 0]]), 3)
    with pytest.raises(ValueError, match=r"7 \(2 px\), 9 \(1 px\)"):
        _per_image_counts_torch(preds, target, 3, IGNORE)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({"num_classes": 0}, ValueError), ({"num_classes": 2.0}, ValueError), ({"num_classes": 3, "ignore_index": 1.5},
                                                                           TypeError),
     ({"num_classes": 3, "per_image_average": "mean"}, ValueError)],
)
def test_bad_options(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        SegmentationAccumulator(**kwargs)


def test_merge_rejects_other_classes() -> None:
    with pytest.raises(ValueError, match="same num_classes"):
        SegmentationAccumulator(3).merge(SegmentationAccumulator(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_counts_equal_cpu() -> None:
    preds, target = _realistic_batch(2)
    cpu = per_image_confusion(preds, target, 5)
    assert torch.equal(per_image_confusion(preds.cuda(), target.cuda(), 5).cpu(), cpu)
    logits = torch.randn(3, 5, 16, 16, device="cuda")
    labels = torch.randint(0, 5, (3, 16, 16), device="cuda")
    assert torch.equal(segmentation_confusion(logits, labels, 5).cpu(), segmentation_confusion(logits.cpu(), labels.cpu(), 5))
