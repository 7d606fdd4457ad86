"""Compare runs evaluated on the same test samples: read their predictions, align them by sample
id, and test every pair (exact McNemar on correctness, paired bootstrap of each metric, Holm's
correction across pairs when there are three runs or more).

The statistics are pure functions in :mod:`visionbench.metrics.significance`; this module only
reads run directories (``predictions.csv``, and ``metrics.json`` for class names) and shapes the
result. :func:`visionbench.api.compare` writes it to a run directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from visionbench.data.predictions import read_predictions_file
from visionbench.engine import rundir
from visionbench.metrics import HIGHER_IS_BETTER
from visionbench.metrics.significance import holm, mcnemar_exact, paired_bootstrap

DEFAULT_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro")
ALPHA = 0.05  # significance level of the verdicts (two-sided)
_EXAMPLES = 3  # ids shown per side in a mismatch error


class RunPredictions(NamedTuple):
    """One run's per-sample predictions, in file order.

    Attributes:
        ids: sample ids ``[N]``. labels: ``int64 [N]`` true classes. preds: ``int64 [N]``
        predicted classes. probs: ``float32 [N, K]`` class probabilities, or ``None`` when the
        file has no ``prob_*`` columns. classes: the K class names (from ``metrics.json``, else
        ``"0" … "K-1"``).
    """

    ids: list[str]
    labels: torch.Tensor
    preds: torch.Tensor
    probs: torch.Tensor | None
    classes: list[str]


def _read_class_names(run_dir: Path) -> list[str] | None:
    """Class names from ``metrics.json`` (``"classes"``), or ``None`` when absent."""
    path = run_dir / rundir.METRICS
    if not path.is_file():
        return None
    try:
        classes = json.loads(path.read_text()).get("classes")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError) as error:
        raise ValueError(f"metrics.json must be a JSON object; got unreadable content in {path}: {error}. "
                         "Re-run `visionbench evaluate` to rewrite it, or delete it.") from None
    if classes is None:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"\"classes\" must be a list of names; got {classes!r} in {path}. "
                         "Re-run `visionbench evaluate` to rewrite it.")
    return classes


def read_predictions(run_dir: str | Path) -> RunPredictions:
    """Read a run's ``predictions.csv`` (and class names from its ``metrics.json``, if any).

    Args:
        run_dir: a run directory made by ``visionbench train`` or ``evaluate``.

    Returns:
        :class:`RunPredictions` ``(ids, labels, preds, probs, classes)``, in file order.

    Raises:
        ValueError: when the directory has no ``predictions.csv``, or (naming the file and line,
            see :func:`visionbench.data.predictions.read_predictions_file`) a malformed row.

    Example:
        >>> ids, labels, preds, probs, classes = read_predictions("runs/digits-mlp-001")  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    path = run_dir / rundir.PREDICTIONS
    if not path.is_file():
        why = "does not exist" if not run_dir.exists() else f"is not a run with predictions (no {rundir.PREDICTIONS})"
        raise ValueError(f"{str(run_dir)!r} {why}. Give run directories made by `visionbench train` or "
                         "`visionbench evaluate`, e.g. runs/digits-cnn-small-001.")
    classes = _read_class_names(run_dir)
    table = read_predictions_file(path, num_classes=len(classes) if classes is not None else None)
    return RunPredictions(
        ids=table.ids, labels=table.labels, preds=table.preds,
        probs=table.probs.float() if table.probs is not None else None,
        classes=classes if classes is not None else [str(k) for k in range(table.num_classes)],
    )


def _examples(ids: set[str]) -> str:
    """A few of ``ids``, sorted, for an error message."""
    shown = sorted(ids)[:_EXAMPLES]
    return ", ".join(repr(i) for i in shown) + (", …" if len(ids) > _EXAMPLES else "")


def _check_same_samples(first: RunPredictions, other: RunPredictions, first_dir: Path, other_dir: Path) -> None:
    """Raise unless both runs hold the same set of ids and the same number of classes."""
    first_ids, other_ids = set(first.ids), set(other.ids)
    if first_ids != other_ids:
        only_first, only_other = first_ids - other_ids, other_ids - first_ids
        raise ValueError(
            f"runs must have {rundir.PREDICTIONS} for the same sample ids; got {len(only_first)} ids only in {first_dir}"
            f"{' (' + _examples(only_first) + ')' if only_first else ''} and {len(only_other)} only in {other_dir}"
            f"{' (' + _examples(only_other) + ')' if only_other else ''}. "
            "Compare runs evaluated on the same test split (same --data, --test-fraction and --split-seed)."
        )
    if len(first.classes) != len(other.classes):
        raise ValueError(f"runs must have the same number of classes; got {len(first.classes)} in {first_dir} and "
                         f"{len(other.classes)} in {other_dir}. Compare runs trained on the same classes.")


def _aligned(run: RunPredictions, order: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels, preds)`` of ``run`` in the order of the ids ``order``."""
    position = {sample_id: index for index, sample_id in enumerate(run.ids)}
    index = torch.tensor([position[sample_id] for sample_id in order], dtype=torch.int64)
    return run.labels[index], run.preds[index]


def _check_same_labels(labels: torch.Tensor, other: torch.Tensor, order: list[str], first_dir: Path,
                       other_dir: Path) -> None:
    """Raise, naming one id, unless both runs give every sample the same true label."""
    differ = torch.nonzero(labels != other).flatten()
    if differ.numel():
        i = int(differ[0])
        raise ValueError(
            f"each sample's label must be the same in every run; got label {int(labels[i])} in {first_dir} and "
            f"{int(other[i])} in {other_dir} for id {order[i]!r} in {rundir.PREDICTIONS} ({differ.numel()} of "
            f"{len(order)} ids differ). Compare runs evaluated on the same test data."
        )


def _points(value: float) -> str:
    """A difference of fractions as signed percentage points, e.g. ``+1.20``."""
    return f"{100 * value:+.2f}"


def _verdict(a: str, b: str, metric: str, entry: dict[str, Any], mcnemar: dict[str, Any] | None,
             holm_used: bool) -> str:
    """One line: which run is better on ``metric``, by how much, and the test behind it."""
    use_mcnemar = metric == "accuracy" and mcnemar is not None  # McNemar tests correctness, i.e. accuracy, exactly
    p = (mcnemar if use_mcnemar else entry)["p_value_holm" if holm_used else "p_value"]
    test = ("McNemar" if use_mcnemar else "bootstrap") + (" Holm-adjusted" if holm_used else "") + f" p={p:.3g}"
    diff, (low, high) = entry["diff"], entry["ci95"]
    if p < ALPHA and diff != 0:
        better_b = (diff > 0) == HIGHER_IS_BETTER.get(metric, True)
        winner, loser, sign = (b, a, 1.0) if better_b else (a, b, -1.0)
        low, high = sorted((sign * low, sign * high))
        return (f"{winner} is better than {loser} on {metric} by {_points(sign * diff)} points "
                f"(95% CI [{_points(low)}, {_points(high)}], {test})")
    return (f"no significant difference at 5% between {a} and {b} on {metric} "
            f"(B - A = {_points(diff)} points, 95% CI [{_points(low)}, {_points(high)}], {test})")


def _summary(runs: list[str], pairs: list[dict[str, Any]], metric: str) -> str:
    """One line over all pairs: the verdict itself for two runs, else counts and the best run."""
    if len(pairs) == 1:
        return pairs[0]["verdict"]
    values = {run: None for run in runs}
    for pair in pairs:
        values[pair["a"]], values[pair["b"]] = pair["metrics"][metric]["a"], pair["metrics"][metric]["b"]
    higher = HIGHER_IS_BETTER.get(metric, True)
    best = max(runs, key=lambda r: values[r] if higher else -values[r])
    significant = sum(not p["verdict"].startswith("no significant") for p in pairs)
    return (f"{len(runs)} runs, {len(pairs)} pairs: {significant} significant difference"
            f"{'' if significant == 1 else 's'} on {metric} at 5% (Holm-adjusted); "
            f"highest {metric}: {best} ({values[best]:.4f})")


def compare_runs(
    run_dirs: Sequence[str | Path], *, resamples: int = 1000, seed: int = 0, metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, Any]:
    """Test every pair of runs for a difference on the same test samples.

    Runs are aligned by sample id (all must hold the same ids with the same labels). For each pair
    ``(i, j)``, ``i < j`` (A = run i, B = run j): the exact McNemar test on per-sample correctness
    and a paired bootstrap of each metric (difference ``B - A``, 95% percentile interval,
    bootstrap p-value). With three runs or more, each metric's p-values (and McNemar's) across the
    pairs are Holm-adjusted; ``p_value_holm`` equals ``p_value`` for two runs. The verdict is on
    the first metric: significant when its (adjusted) p-value is below 5%, using McNemar's test
    for accuracy and the bootstrap for any other metric.

    Args:
        run_dirs: two or more run directories with ``predictions.csv``.
        resamples: bootstrap resamples per pair. seed: seed of the resamples (the same draws for
            every pair).
        metrics: names from :func:`~visionbench.metrics.metric_tensors_from_confusion`.

    Returns:
        A JSON-serialisable dict: ``{"task": "compare", "runs", "num_samples", "num_classes",
        "resamples", "seed", "alpha", "pairs": [{"a", "b", "mcnemar": {"b", "c", "p_value",
        "p_value_holm"}, "metrics": {name: {"a", "b", "diff", "ci95", "p_value", "p_value_holm"}},
        "verdict"}], "summary"}``.

    Example:
        >>> result = compare_runs(["runs/a", "runs/b"])  # doctest: +SKIP
        >>> result["pairs"][0]["verdict"]  # doctest: +SKIP
        'runs/b is better than runs/a on accuracy by +1.20 points (95% CI [+0.40, +2.00], McNemar p=0.003)'
    """
    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise ValueError(f"runs must be at least 2 run directories; got {len(paths)} ({[str(p) for p in paths]!r}). "
                         "Give two or more, e.g. `visionbench compare runs/a runs/b`.")
    tasks = {str(p): _run_task(p) for p in paths}
    if len(set(tasks.values())) > 1:
        raise ValueError(f"runs must be of one task to compare; got {tasks}. Compare runs of the same task.")
    task = tasks[str(paths[0])]
    if task in ("detect", "segment"):
        return _compare_task_runs(paths, task, resamples=resamples, seed=seed)
    if not metrics:
        raise ValueError("metrics must name at least one metric; got none. Use e.g. ('accuracy',).")
    runs = [read_predictions(p) for p in paths]
    for path, run in zip(paths[1:], runs[1:], strict=True):
        _check_same_samples(runs[0], run, paths[0], path)
    order = runs[0].ids
    labels, _ = _aligned(runs[0], order)
    preds = []
    for path, run in zip(paths, runs, strict=True):
        run_labels, run_preds = _aligned(run, order)
        _check_same_labels(labels, run_labels, order, paths[0], path)
        preds.append(run_preds)
    names = [str(p) for p in paths]
    num_classes = len(runs[0].classes)
    pairs = []
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            test = mcnemar_exact(preds[i] == labels, preds[j] == labels)
            boot = paired_bootstrap(preds[i], preds[j], labels, num_classes, resamples=resamples, seed=seed,
                                    metrics=list(metrics))
            pairs.append({
                "a": names[i], "b": names[j],
                "mcnemar": {"b": test.b, "c": test.c, "p_value": test.p_value},
                "metrics": {name: {"a": m.value_a, "b": m.value_b, "diff": m.diff, "ci95": list(m.ci95),
                                   "p_value": m.p_value} for name, m in boot.items()},
            })
    _add_holm(pairs, list(metrics))
    holm_used = len(pairs) > 1
    for pair in pairs:
        pair["verdict"] = _verdict(pair["a"], pair["b"], metrics[0], pair["metrics"][metrics[0]], pair["mcnemar"],
                                   holm_used)
    return {
        "task": "compare", "runs": names, "num_samples": len(order), "num_classes": num_classes,
        "resamples": resamples, "seed": seed, "alpha": ALPHA, "pairs": pairs,
        "summary": _summary(names, pairs, metrics[0]),
    }


def _run_task(run_dir: Path) -> str:
    """The ``task`` of a run's ``metrics.json`` (``classify`` when absent or unreadable: the
    classification reader then names what is wrong)."""
    try:
        return str(json.loads((run_dir / rundir.METRICS).read_text()).get("task", "classify"))
    except (OSError, ValueError, AttributeError):
        return "classify"


def _detection_evaluator(run_dir: Path) -> tuple[Any, bytes]:
    """The run's test detections re-evaluated from its ``ground_truth.json`` and
    ``predictions.json`` (its protocol), and the ground truth's bytes (to check runs share it)."""
    from visionbench.engine.detect import GROUND_TRUTH_JSON, PREDICTIONS_JSON
    from visionbench.metrics.detection import evaluate_coco

    gt, pred = run_dir / GROUND_TRUTH_JSON, run_dir / PREDICTIONS_JSON
    for path in (gt, pred):
        if not path.is_file():
            raise ValueError(f"detection run {str(run_dir)!r} has no {path.name}; re-evaluate it with "
                             f"`visionbench evaluate {run_dir}` to write it.")
    protocol = json.loads((run_dir / rundir.METRICS).read_text()).get("protocol", "pycocotools")
    return evaluate_coco(gt, pred, protocol=protocol), gt.read_bytes()


def _segmentation_confusions(run_dir: Path) -> tuple[list[str], torch.Tensor]:
    """Sample ids and per-image confusion matrices ``[N, K, K]`` of a segmentation run."""
    import numpy as np

    from visionbench.engine.segment import PER_IMAGE_CONFUSION

    path = run_dir / PER_IMAGE_CONFUSION
    if not path.is_file():
        raise ValueError(f"segmentation run {str(run_dir)!r} has no {PER_IMAGE_CONFUSION}; re-evaluate it with "
                         f"`visionbench evaluate {run_dir}` to write it.")
    with np.load(path, allow_pickle=False) as archive:
        return [str(i) for i in archive["ids"]], torch.from_numpy(archive["confusion"])


def _compare_task_runs(paths: list[Path], task: str, *, resamples: int, seed: int) -> dict[str, Any]:
    """Every pair of detection or segmentation runs: a paired bootstrap over test images of each
    metric (AP… from the runs' COCO files; mIoU… from their per-image confusion matrices)."""
    from visionbench.metrics.detection import compare_detection
    from visionbench.metrics.segmentation import compare_segmentation

    names = [str(p) for p in paths]
    if task == "detect":
        loaded = [_detection_evaluator(p) for p in paths]
        for path, (_, gt) in zip(paths[1:], loaded[1:], strict=True):
            if gt != loaded[0][1]:
                raise ValueError(f"runs must be evaluated on the same test images to compare; the ground_truth.json of "
                                 f"{str(path)!r} differs from that of {names[0]!r}. Train or evaluate both on one "
                                 "dataset with the same --split-seed.")
        units, compare, num_samples = [e for e, _ in loaded], compare_detection, int(loaded[0][0].image_ids.size)
    else:
        loaded_masks = [_segmentation_confusions(p) for p in paths]
        order = loaded_masks[0][0]
        for path, (ids, _) in zip(paths[1:], loaded_masks[1:], strict=True):
            if sorted(ids) != sorted(order):
                raise ValueError(f"runs must hold the same test images to compare; {str(path)!r} and {names[0]!r} "
                                 f"differ ({len(set(ids) ^ set(order))} ids in one only). Evaluate both on one test set.")
        units = []
        for ids, confusion in loaded_masks:
            position = {sample: k for k, sample in enumerate(ids)}
            units.append(confusion[[position[sample] for sample in order]])
        compare, num_samples = compare_segmentation, len(order)
    pairs = []
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            result = compare(units[i], units[j], resamples=resamples, seed=seed)
            pairs.append({"a": names[i], "b": names[j], "metrics": {
                name: {"a": m.value_a, "b": m.value_b, "diff": m.diff, "ci95": list(m.ci95), "p_value": m.p_value}
                for name, m in result.items()}})
    metrics = list(pairs[0]["metrics"])
    _add_holm(pairs, metrics)
    headline = "AP" if task == "detect" and "AP" in metrics else metrics[0]
    for pair in pairs:
        pair["verdict"] = _verdict(pair["a"], pair["b"], headline, pair["metrics"][headline], None, len(pairs) > 1)
    return {"task": "compare", "compared_task": task, "runs": names, "num_samples": num_samples, "resamples": resamples,
            "seed": seed, "alpha": ALPHA, "pairs": pairs, "summary": _summary(names, pairs, headline)}


def _add_holm(pairs: list[dict[str, Any]], metrics: list[str]) -> None:
    """Add ``p_value_holm`` to McNemar (when there) and to each metric: Holm across the pairs, per test."""
    tests = [lambda pair, name=name: pair["metrics"][name] for name in metrics]
    if all("mcnemar" in pair for pair in pairs):
        tests.insert(0, lambda pair: pair["mcnemar"])
    for entry_of in tests:
        entries = [entry_of(pair) for pair in pairs]
        finite = [k for k, e in enumerate(entries) if not math.isnan(e["p_value"])]
        adjusted = holm([entries[k]["p_value"] for k in finite])
        for entry in entries:
            entry["p_value_holm"] = float("nan")
        for k, value in zip(finite, adjusted, strict=True):
            entries[k]["p_value_holm"] = value


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    """``scale * value`` formatted, or ``nan`` (also for ``None``, NaN's form in JSON)."""
    return "nan" if value is None or math.isnan(value) else format(scale * value, spec)


def format_comparison(result: dict[str, Any]) -> str:
    """The verdict line(s), then one plain-text table per pair (metric, A, B, diff, CI, p).

    Differences and intervals are in percentage points; p-values are the bootstrap's (and
    Holm-adjusted ones with three runs or more), McNemar's is on its own line.
    """
    pairs = result["pairs"]
    holm_used = len(pairs) > 1
    lines = [result["summary"]] if holm_used else []
    lines += [pair["verdict"] for pair in pairs]
    for pair in pairs:
        m = pair.get("mcnemar")
        lines += ["", f"A = {pair['a']}   B = {pair['b']}   ({result['num_samples']} samples, "
                      f"{result['resamples']} paired bootstrap resamples)"]
        header = f"  {'metric':<18} {'A':>7} {'B':>7} {'B-A (pt)':>9}  {'95% CI (pt)':<18} {'p':>7}"
        lines.append(header + (f" {'p Holm':>7}" if holm_used else ""))
        for name, e in pair["metrics"].items():
            low, high = e["ci95"]
            ci = f"[{_fmt(low, '+.2f', 100)}, {_fmt(high, '+.2f', 100)}]"
            row = (f"  {name:<18} {_fmt(e['a'], '.4f'):>7} {_fmt(e['b'], '.4f'):>7} {_fmt(e['diff'], '+.2f', 100):>9}"
                   f"  {ci:<18} {_fmt(e['p_value'], '.3g'):>7}")
            lines.append(row + (f" {_fmt(e['p_value_holm'], '.3g'):>7}" if holm_used else ""))
        if m is not None:
            lines.append(f"  McNemar exact: {m['b']} samples only A got right, {m['c']} only B got right, "
                         f"p={_fmt(m['p_value'], '.3g')}" + (f" (Holm {_fmt(m['p_value_holm'], '.3g')})" if holm_used
                                                              else ""))
    return "\n".join(lines)
