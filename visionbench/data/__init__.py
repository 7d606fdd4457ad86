"""Datasets and transform presets.

Datasets are named by a spec string: ``digits`` (embedded), ``folder:PATH``, ``mnist:PATH``,
``cifar10:PATH``. :func:`load_dataset` parses the spec and returns a
:class:`~visionbench.data._base.ClassificationData` of raw ``(uint8 image, label)`` samples.
"""

from __future__ import annotations

from typing import Any

from visionbench._registry import Registry
from visionbench.data._base import ClassificationData, TensorImageDataset, stratified_split

DATASETS = Registry("dataset")


@DATASETS.register("digits", description="scikit-learn's 1,797 8x8 digits, embedded (no path)", needs_path=False)
def _digits(path: str | None, **split: Any) -> ClassificationData:
    from visionbench.data.digits import load_digits

    return load_digits(path, **split)


@DATASETS.register("folder", description="ImageFolder layout PATH/<class>/*.jpg (train/val/test subfolders optional)", needs_path=True)
def _folder(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.folder import load_folder

    return load_folder(path, **split)


@DATASETS.register("mnist", description="MNIST IDX files in PATH (gzipped or not)", needs_path=True)
def _mnist(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.mnist import load_mnist

    return load_mnist(path, **split)


@DATASETS.register("cifar10", description="CIFAR-10 binary version in PATH (never unpickled)", needs_path=True)
def _cifar10(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.cifar import load_cifar10

    return load_cifar10(path, **split)


def parse_data_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"kind:PATH"`` into ``(kind, path)``; ``"digits"`` gives ``("digits", None)``.

    Raises:
        ValueError: unknown kind (with close-match suggestions), or a missing/extra path.
    """
    kind, sep, path = spec.partition(":")
    DATASETS.check(kind)
    needs_path = DATASETS.info(kind)["needs_path"]
    if needs_path and not path:
        raise ValueError(f"dataset {kind!r} needs a path; got {spec!r}. Use --data {kind}:PATH.")
    if not needs_path and sep:
        raise ValueError(f"dataset {kind!r} is embedded and takes no path; got {spec!r}. Use --data {kind}.")
    return kind, (path or None)


def load_dataset(spec: str, *, seed: int, val_fraction: float, test_fraction: float) -> ClassificationData:
    """Load the dataset named by ``spec`` with its fixed seeded split.

    Example:
        >>> data = load_dataset("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
        >>> len(data.test), data.num_classes
        (360, 10)
    """
    kind, path = parse_data_spec(spec)
    data = DATASETS.get(kind)(path, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    return data


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered dataset kinds matching ``pattern``."""
    return DATASETS.names(pattern)


__all__ = [
    "DATASETS", "ClassificationData", "TensorImageDataset", "list_datasets", "load_dataset",
    "parse_data_spec", "stratified_split",
]
