"""The parity check: the exported file against the run's own PyTorch model, on the run's test split.

Both models get the same preprocessed batches of the test split (the run's evaluation
preprocessing, as ``visionbench evaluate`` feeds it). For each batch:

* classify and segment: the largest absolute difference of the logits, and the predicted classes
  (per image or per pixel) compared;
* detect: the detections of each image matched one to one (same class, box and score within the
  tolerance), the largest box and score differences over the matched pairs.

**The rule.** Parity holds when every difference is within the tolerance — ``tolerance`` (1e-3) ×
``max(1, largest |reference value|)`` of that output, so 1e-3 on scores in [0, 1] and 0.128 px on
boxes of a 128-pixel image — and every prediction is identical except where the float difference
cannot decide it (*ties*, counted and reported):

* a class (of an image or a pixel) whose two best logits are within twice the tolerance;
* a detection kept on one side only whose score is within the tolerance of the score threshold,
  or of an equal-scored detection of its class kept on the other side only (NMS' order of equal
  scores), or at most the lowest score of a full set of detections on the other side (pushed past
  the limit by a detection kept there);
* a detection suppressed on one side by one of its class scoring at least as high, at an overlap
  within :data:`IOU_TOLERANCE` of NMS' IoU threshold (which side of the threshold is rounding:
  the run's own model changes such decisions between batch sizes), or by one kept on that side
  only (itself a difference, explained or not).

A failed check raises :class:`ParityError`: an exported file that computes something else is an
error, never a warning.

Latency (:func:`latency_ms`) is the median of timed calls on batches of 1 and 32 images after
warm-up calls, as milliseconds per image, on the CPU threads the run uses.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torchvision.ops import box_iou

TOLERANCE = 1e-3
IOU_TOLERANCE = 1e-3  # overlaps this close to NMS' threshold are decided by rounding
LATENCY_BATCHES = (1, 32)


class ParityError(ValueError):
    """The exported model's outputs differ from the run's model beyond the stated tolerance."""


def _scale(values: Tensor) -> float:
    """``max(1, largest |value|)``: what the relative tolerance multiplies."""
    return max(1.0, float(values.abs().max())) if values.numel() else 1.0


class ParityCheck:
    """Accumulates the comparison of one task's outputs over batches (see the module docstring).

    Args:
        task: ``classify``, ``segment`` or ``detect``.
        tolerance: relative tolerance of every output (default :data:`TOLERANCE`).
        score_threshold: detect: the detector's own score threshold (ties at it are allowed).
        rows: detect: the most detections per image (ties at the last of a full set are allowed).
        nms_iou: detect: the detector's NMS overlap threshold (decisions at it are allowed).
    """

    def __init__(self, task: str, *, tolerance: float = TOLERANCE, score_threshold: float = 0.0,
                 rows: int | None = None, nms_iou: float | None = None) -> None:
        self.task, self.tolerance = task, tolerance
        self.score_threshold, self.rows, self.nms_iou = score_threshold, rows, nms_iou
        self.samples = 0
        self.max_diff: dict[str, float] = {}
        self.max_allowed: dict[str, float] = {}
        self.compared = 0  # predictions compared: images, pixels or detections
        self.ties = 0
        self.mismatches = 0
        self.example: str | None = None

    def _track(self, name: str, reference: Tensor, exported: Tensor) -> float:
        """Record the largest difference of one output; returns its allowed difference."""
        allowed = self.tolerance * _scale(reference)
        diff = float((reference.float() - exported.float()).abs().max()) if reference.numel() else 0.0
        self.max_diff[name] = max(self.max_diff.get(name, 0.0), diff)
        self.max_allowed[name] = max(self.max_allowed.get(name, 0.0), allowed)
        if diff > allowed and self.example is None:
            self.example = f"{name} differ by {diff:.3g} (allowed {allowed:.3g}) in a batch of {self.samples}+ images"
        return allowed

    def update(self, reference: Any, exported: Any) -> None:
        """Compare one batch's outputs: logits tensors, or lists of detection dicts."""
        if self.task == "detect":
            for ref, exp in zip(reference, exported, strict=True):
                self._update_detections(ref, exp)
                self.samples += 1
            return
        if reference.shape != exported.shape:
            raise ParityError(f"the exported model's logits must have the shape of the run's model's "
                              f"{tuple(reference.shape)}; got {tuple(exported.shape)}. Export the run again.")
        allowed = self._track("logits", reference, exported)
        top2 = reference.float().topk(min(2, reference.shape[1]), dim=1).values
        margin = top2[:, 0] - top2[:, -1]
        differ = reference.argmax(1) != exported.argmax(1)
        at_tie = differ & (margin <= 2 * allowed)
        self.compared += differ.numel()
        self.ties += int(at_tie.sum())
        self.mismatches += int((differ & ~at_tie).sum())
        self.samples += reference.shape[0]

    def _update_detections(self, ref: dict[str, Tensor], exp: dict[str, Tensor]) -> None:
        """Match one image's detections; count ties and real mismatches."""
        box_allowed = self.tolerance * _scale(torch.cat([ref["boxes"].flatten(), exp["boxes"].flatten()]))
        score_allowed = self.tolerance
        self.max_allowed["boxes"] = max(self.max_allowed.get("boxes", 0.0), box_allowed)
        self.max_allowed["scores"] = score_allowed
        n_ref, n_exp = len(ref["scores"]), len(exp["scores"])
        self.compared += max(n_ref, n_exp)
        if n_ref == n_exp and torch.equal(ref["labels"], exp["labels"]):
            box_diff = (ref["boxes"] - exp["boxes"]).abs().amax(1) if n_ref else torch.zeros(0)
            score_diff = (ref["scores"] - exp["scores"]).abs()
            if bool((box_diff <= box_allowed).all()) and bool((score_diff <= score_allowed).all()):
                self._record_pairs(box_diff, score_diff)
                return
        unmatched_ref, unmatched_exp = self._match(ref, exp, box_allowed, score_allowed)
        for side, other, unmatched, partner in (
                (ref, exp, unmatched_ref, unmatched_exp), (exp, ref, unmatched_exp, unmatched_ref)):
            for i in unmatched:
                if self._explained(side, i, other, partner, score_allowed):
                    self.ties += 1
                else:
                    self.mismatches += 1
                    if self.example is None:
                        self.example = (f"image {self.samples} of the test split: a {side['labels'][i].item()}-class "
                                        f"detection of score {float(side['scores'][i]):.4f} has no counterpart")

    def _record_pairs(self, box_diff: Tensor, score_diff: Tensor) -> None:
        """Keep the largest box and score differences of matched detections."""
        for name, diff in (("boxes", box_diff), ("scores", score_diff)):
            if diff.numel():
                self.max_diff[name] = max(self.max_diff.get(name, 0.0), float(diff.max()))

    def _match(self, ref: dict[str, Tensor], exp: dict[str, Tensor], box_allowed: float, score_allowed: float
               ) -> tuple[list[int], list[int]]:
        """Greedy one-to-one matching in the reference's score order; the unmatched of each side."""
        if not len(ref["scores"]) or not len(exp["scores"]):
            return list(range(len(ref["scores"]))), list(range(len(exp["scores"])))
        box_diff = (ref["boxes"][:, None, :] - exp["boxes"][None, :, :]).abs().amax(-1)
        score_diff = (ref["scores"][:, None] - exp["scores"][None, :]).abs()
        close = (ref["labels"][:, None] == exp["labels"][None, :]) & (box_diff <= box_allowed) & (
            score_diff <= score_allowed)
        taken: set[int] = set()
        unmatched_ref = []
        for i in range(close.shape[0]):
            candidates = [j for j in torch.nonzero(close[i]).flatten().tolist() if j not in taken]
            if not candidates:
                unmatched_ref.append(i)
                continue
            j = min(candidates, key=lambda c: float(box_diff[i, c]))
            taken.add(j)
            self._record_pairs(box_diff[i, j:j + 1], score_diff[i, j:j + 1])
        return unmatched_ref, [j for j in range(close.shape[1]) if j not in taken]

    def _explained(self, side: dict[str, Tensor], i: int, other: dict[str, Tensor], partner: list[int],
                   score_allowed: float) -> bool:
        """Whether a detection of ``side`` missing from ``other`` is an NMS decision the float
        tolerance cannot decide (the rules of the module docstring)."""
        score, label = float(side["scores"][i]), int(side["labels"][i])
        if abs(score - self.score_threshold) <= score_allowed:  # at the score threshold
            return True
        same = other["labels"] == label
        if any(same[j] and abs(float(other["scores"][j]) - score) <= score_allowed for j in partner):
            return True  # an equal score kept first on one side, the other on the other side
        full = self.rows is not None and len(other["scores"]) >= self.rows
        if full and score <= float(other["scores"].min()) + score_allowed:
            return True  # pushed past the last of a full set of detections
        if self.nms_iou is None or not bool(same.any()):
            return False
        # Suppressed on the other side by a detection of its class scoring at least as high: at an
        # overlap within IOU_TOLERANCE of NMS' threshold (rounding decides), or by one that the other
        # side alone kept (itself counted as a difference, explained or not).
        iou = box_iou(side["boxes"][i:i + 1].float(), other["boxes"].float())[0]
        higher = same & (other["scores"] >= score - score_allowed)
        borderline = higher & ((iou - self.nms_iou).abs() <= IOU_TOLERANCE)
        only_there = torch.zeros_like(higher)
        only_there[partner] = True
        cascade = higher & only_there & (iou > self.nms_iou - IOU_TOLERANCE)
        return bool((borderline | cascade).any())

    def result(self) -> dict[str, Any]:
        """The ``parity`` record of ``export.json`` (see the module docstring)."""
        within = all(self.max_diff.get(name, 0.0) <= allowed for name, allowed in self.max_allowed.items())
        kind = {"classify": "classes", "segment": "masks", "detect": "detections"}[self.task]
        return {
            "split": "test", "samples": self.samples, "tolerance": self.tolerance,
            "max_abs_diff": dict(self.max_diff), "allowed_abs_diff": dict(self.max_allowed),
            "compared": {kind: self.compared}, f"identical_{kind}": self.ties == 0 and self.mismatches == 0,
            "differences_at_ties": self.ties, "differences": self.mismatches,
            "passed": within and self.mismatches == 0 and self.samples > 0,
        }

    def check(self, file: str) -> dict[str, Any]:
        """:meth:`result`, or :class:`ParityError` naming ``file`` and what differs."""
        result = self.result()
        if result["passed"]:
            return result
        if self.samples == 0:
            raise ParityError(f"the parity check of {file!r} needs test images; the run's test split has none. "
                              "Export a run whose data has a test split.")
        worst = ", ".join(f"{name} {diff:.3g} (allowed {self.max_allowed.get(name, 0.0):.3g})"
                          for name, diff in self.max_diff.items())
        raise ParityError(
            f"the exported model {file!r} must give the run's outputs on its test split within the tolerance; got "
            f"largest differences {worst} and {self.mismatches} differing prediction(s) that are not ties "
            f"({self.example or 'no example'}). The file does not compute what the run's model computes: try another "
            "--format, and report it with export.json (which records this check).")


def reference_detections(model: Callable[[list[Tensor]], list[dict[str, Tensor]]], images: list[Tensor]
                         ) -> list[dict[str, Tensor]]:
    """The run's detector on ``images`` in groups of one size, as the exported graph runs them
    (a batch of mixed sizes would be padded together, which the exported batch never is)."""
    results: list[dict[str, Tensor] | None] = [None] * len(images)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape[-2:]), []).append(index)
    for indices in groups.values():
        for index, out in zip(indices, model([images[i] for i in indices]), strict=True):
            results[index] = out
    return [r for r in results if r is not None]


def latency_ms(call: Callable[[Tensor], Any], images: Tensor, *, repeats: int = 10,
               batches: tuple[int, ...] = LATENCY_BATCHES) -> dict[str, float]:
    """Milliseconds per image of ``call`` on batches of ``batches`` images (median of ``repeats``
    timed calls after two warm-up calls), images repeated from ``images`` to fill a batch."""
    result = {}
    for size in batches:
        index = torch.arange(size) % images.shape[0]
        batch = images[index]
        for _ in range(2):
            call(batch)
        times = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            call(batch)
            if batch.device.type == "cuda":
                torch.cuda.synchronize(batch.device)
            times.append(time.perf_counter() - start)
        result[f"batch_{size}"] = 1000.0 * statistics.median(times) / size
    return result


__all__ = ["IOU_TOLERANCE", "LATENCY_BATCHES", "TOLERANCE", "ParityCheck", "ParityError", "latency_ms", "reference_detections"]
