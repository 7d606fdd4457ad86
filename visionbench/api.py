"""The Python API: one function per job, the same shape as the command line.

Example:
    >>> import visionbench
    >>> result = visionbench.train(data="digits", epochs=3, quiet=True)  # doctest: +SKIP
    >>> result.metrics["accuracy"]["value"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionbench import config as cfg
from visionbench.engine import rundir


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns: the run directory and its ``metrics.json`` content."""

    run_dir: Path
    metrics: dict[str, Any]
    config: cfg.ClassifyConfig


EvaluateResult = TrainResult


def _runtime(device: str, workers: int | None, quiet: bool) -> Any:
    from visionbench.engine.distributed import init_distributed
    from visionbench.engine.train import Runtime, resolve_device

    torch_device = resolve_device(device)
    return Runtime(device=torch_device, workers=workers, quiet=quiet, dist=init_distributed(torch_device))


def _make_run_dir(out: str | Path | None, stem: str, dist: Any) -> Path:
    """``out`` (created), or a fresh ``runs/<stem>-NNN`` chosen by rank 0 and shared with all."""
    from visionbench.engine.distributed import broadcast_object

    if dist.is_main:
        if out is not None:
            path = Path(out)
            path.mkdir(parents=True, exist_ok=True)
            if (path / rundir.CONFIG).exists():
                raise ValueError(
                    f"{str(path)!r} already holds a run. Use --resume {path} to continue it, or another --out."
                )
        else:
            path = rundir.new_run_dir(Path("runs"), stem)
    else:
        path = None
    return Path(broadcast_object(str(path) if path else None, dist))


def train(
    config: cfg.ClassifyConfig | None = None, *, config_file: str | Path | None = None, out: str | Path | None = None,
    resume: str | Path | None = None, device: str = "auto", workers: int | None = None, quiet: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Train a model, evaluate its best checkpoint on the test split, and write a run directory.

    Args:
        config: a resolved config; or build one from ``config_file`` and ``overrides``
            (any :class:`~visionbench.config.ClassifyConfig` field, e.g. ``epochs=5``).
        out: the run directory (default: a fresh ``runs/<data>-<model>-NNN``).
        resume: an existing run directory to continue from its last checkpoint (its saved
            config is used; ``config``/``overrides`` are not allowed).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        workers: data-loader worker processes (default: 0 for in-memory data, else up to 4).
        quiet: no progress bar or log lines on stderr (``log.txt`` is still written).

    Returns:
        :class:`TrainResult` with ``run_dir`` and ``metrics`` (the ``metrics.json`` content).

    Example:
        >>> result = train(data="digits", model="mlp", epochs=2, quiet=True)  # doctest: +SKIP
    """
    from visionbench.engine.distributed import shutdown_distributed
    from visionbench.engine.train import fit

    if resume is not None:
        if config is not None or config_file or overrides or out:
            raise ValueError("--resume continues a run with its saved configuration; drop the other training options.")
        run_dir = rundir.check_run_dir(Path(resume))
        config = cfg.resolve(run_dir / rundir.CONFIG)
    else:
        config = cfg.validate(config) if config is not None else cfg.resolve(config_file, overrides)
    runtime = _runtime(device, workers, quiet)
    try:
        if resume is None:
            kind = config.data.partition(":")[0]
            run_dir = _make_run_dir(out, f"{kind}-{config.model}", runtime.dist)
            if runtime.dist.is_main:
                cfg.save_yaml(config, run_dir / rundir.CONFIG)
        try:
            metrics = fit(config, run_dir, runtime, resume=resume is not None)
        except KeyboardInterrupt:
            if runtime.dist.is_main:
                print(f"\ninterrupted; continue with: visionbench train --resume {run_dir}", file=sys.stderr)
            raise
    finally:
        shutdown_distributed()
    return TrainResult(run_dir=run_dir, metrics=metrics, config=config)


def evaluate(
    run: str | Path, *, data: str | None = None, out: str | Path | None = None, device: str = "auto",
    workers: int | None = None, quiet: bool = False,
) -> EvaluateResult:
    """Re-evaluate a trained run's best checkpoint on a test split; writes a new run directory.

    Args:
        run: a run directory made by :func:`train`.
        data: evaluate on this dataset's test split instead of the run's own (same classes).
        out: the new run directory (default: a fresh ``runs/eval-<run name>-NNN``).

    Returns:
        :class:`EvaluateResult` with the new ``run_dir`` and its ``metrics``.
    """
    from visionbench.engine import checkpoint as ckpt
    from visionbench.engine.distributed import shutdown_distributed
    from visionbench.engine.train import build_data, build_model, evaluate_and_write

    source = rundir.check_run_dir(Path(run))
    config = cfg.resolve(source / rundir.CONFIG)
    if data is not None:
        config = cfg.validate(dataclasses.replace(config, data=data))
    best = source / rundir.BEST_WEIGHTS
    if not best.is_file():
        raise ValueError(f"run {str(source)!r} has no {rundir.BEST_WEIGHTS}: it has not finished an epoch. "
                         f"Continue it with `visionbench train --resume {source}`.")
    runtime = _runtime(device, workers, quiet)
    try:
        run_dir = _make_run_dir(out, f"eval-{source.name}", runtime.dist)
        bundle = build_data(config)
        model = build_model(dataclasses.replace(config, weights=None), bundle.data, bundle.image_size)
        ckpt.load_weights_into(model, ckpt.read_weights(best), str(best))
        if runtime.dist.is_main:
            cfg.save_yaml(config, run_dir / rundir.CONFIG)
        log = rundir.RunLog(run_dir / rundir.LOG if runtime.dist.is_main else None, quiet=quiet or not runtime.dist.is_main)
        log(f"evaluating {best} on the test split of {config.data}")
        metrics = evaluate_and_write(model.to(runtime.device), config, bundle, run_dir, runtime, log)
    finally:
        shutdown_distributed()
    return EvaluateResult(run_dir=run_dir, metrics=metrics, config=config)
