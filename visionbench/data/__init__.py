"""Datasets and transform presets.

Datasets are named by a spec string. Classification: ``digits`` (embedded), ``folder:PATH``,
``mnist:PATH``, ``cifar10:PATH``, multi-label ``csv:LABELS.csv[:IMAGES]`` or ``folder:PATH`` read with
``multilabel=True`` (each image in every one of its label folders); detection: ``shapes``
(embedded), ``coco:ANNOTATIONS.json[:IMAGES]``,
``voc:PATH``, ``yolo:DATA.yaml``; segmentation: ``shapes``, ``masks:PATH``, ``voc:PATH``,
``coco:ANNOTATIONS.json[:IMAGES]``. Each registry entry names the ``tasks`` it serves.
:func:`load_dataset` parses the spec and returns a
:class:`~visionbench.data._base.ClassificationData` of raw ``(uint8 image, label)`` samples, or for
detection and segmentation a :class:`~visionbench.data.splits.TaskData` of the task's samples.
"""

from __future__ import annotations

from typing import Any

from visionbench._registry import Registry
from visionbench.data._base import ClassificationData, TensorImageDataset, stratified_split

DATASETS = Registry("dataset")
CLASSIFY = ("classify",)


@DATASETS.register("digits", tasks=CLASSIFY, description="scikit-learn's 1,797 8x8 digits, embedded (no path)", needs_path=False)
def _digits(path: str | None, **split: Any) -> ClassificationData:
    from visionbench.data.digits import load_digits

    return load_digits(path, **split)


@DATASETS.register("folder", tasks=CLASSIFY, needs_path=True,
                   description="ImageFolder layout PATH/<class>/*.jpg (train/val/test subfolders optional); with "
                               "--multilabel an image sits in each of its label folders, PATH/_none/ holds unlabelled ones")
def _folder(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.folder import load_folder

    return load_folder(path, **split)


@DATASETS.register("mnist", tasks=CLASSIFY, description="MNIST IDX files in PATH (gzipped or not)", needs_path=True)
def _mnist(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.mnist import load_mnist

    return load_mnist(path, **split)


@DATASETS.register("cifar10", tasks=CLASSIFY, description="CIFAR-10 binary version in PATH (never unpickled)", needs_path=True)
def _cifar10(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.cifar import load_cifar10

    return load_cifar10(path, **split)


@DATASETS.register("csv", tasks=CLASSIFY, needs_path=True,
                   description="multi-label (with --multilabel): LABELS.csv[:IMAGES], rows image,label;label or 0/1 columns")
def _csv(path: str, **split: Any) -> ClassificationData:
    from visionbench.data.multilabel import load_multilabel_csv

    return load_multilabel_csv(path, **split)


@DATASETS.register("shapes", tasks=("detect", "segment"), needs_path=False,
                   description="seeded synthetic circles/squares/triangles with boxes and masks, embedded (no path)")
def _shapes(path: str | None, *, task: str, seed: int, **_: Any) -> Any:
    from visionbench.data.shapes import load_shapes

    # The split is fixed by the generator (seeded splits of their own), not by the fractions.
    return load_shapes(task=task, seed=seed)


@DATASETS.register("coco", tasks=("detect", "segment"), needs_path=True,
                   description="COCO instances ANNOTATIONS.json[:IMAGES] (segment: rasterised to class masks)")
def _coco(path: str, *, task: str, **split: Any) -> Any:
    return _files(f"coco:{path}", task, split)


@DATASETS.register("voc", tasks=("detect", "segment"), needs_path=True,
                   description="Pascal VOC folder (Annotations XML for detect, SegmentationClass PNGs for segment)")
def _voc(path: str, *, task: str, **split: Any) -> Any:
    return _files(f"voc:{path}", task, split)


@DATASETS.register("yolo", tasks=("detect",), needs_path=True,
                   description="Ultralytics layout: DATA.yaml with images/ and labels/ txt files")
def _yolo(path: str, *, task: str, **split: Any) -> Any:
    return _files(f"yolo:{path}", task, split)


@DATASETS.register("masks", tasks=("segment",), needs_path=True,
                   description="PATH/images and PATH/masks (PNG class indices, palette PNGs accepted), paired by name")
def _masks(path: str, *, task: str, **split: Any) -> Any:
    return _files(f"masks:{path}", task, split)


def _files(spec: str, task: str, split: dict[str, Any]) -> Any:
    if task == "detect":
        from visionbench.data.detection_formats import load_detection_data

        return load_detection_data(spec, **split)
    from visionbench.data.segmentation_formats import load_segmentation_data

    return load_segmentation_data(spec, **split)


def parse_data_spec(spec: str, *, task: str | None = None) -> tuple[str, str | None]:
    """Split ``"kind:PATH"`` into ``(kind, path)``; ``"digits"`` gives ``("digits", None)``.

    Args:
        task: when given, the dataset must serve this task.

    Raises:
        ValueError: unknown kind (with close-match suggestions), a missing/extra path, or a
            dataset of another task.
    """
    kind, sep, path = spec.partition(":")
    DATASETS.check(kind)
    tasks = DATASETS.info(kind)["tasks"]
    if task is not None and task not in tasks:
        usable = ", ".join(n for n in DATASETS.names() if task in DATASETS.info(n)["tasks"])
        raise ValueError(f"dataset {kind!r} serves --task {' / '.join(tasks)}, not {task}. Datasets for {task}: "
                         f"{usable}.")
    needs_path = DATASETS.info(kind)["needs_path"]
    if needs_path and not path:
        raise ValueError(f"dataset {kind!r} needs a path; got {spec!r}. Use --data {kind}:PATH.")
    if not needs_path and sep:
        raise ValueError(f"dataset {kind!r} is embedded and takes no path; got {spec!r}. Use --data {kind}.")
    return kind, (path or None)


def load_dataset(spec: str, *, seed: int, val_fraction: float, test_fraction: float, task: str = "classify",
                 multilabel: bool = False) -> Any:
    """Load the dataset named by ``spec`` with its fixed seeded split, for ``task``.

    Args:
        multilabel: classification with several labels per image (``config.multilabel``): a
            ``folder:`` spec is then read as label folders
            (:func:`~visionbench.data.multilabel_folder.load_multilabel_folder`) instead of class
            folders. Other kinds are read as always (``csv:`` is multi-label either way; the training
            checks refuse single-label data with ``--multilabel``).

    Example:
        >>> data = load_dataset("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
        >>> len(data.test), data.num_classes
        (360, 10)
    """
    kind, path = parse_data_spec(spec, task=task)
    split = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction}
    if task == "classify" and multilabel and kind == "folder":  # the same tree, read as label sets
        from visionbench.data.multilabel_folder import load_multilabel_folder

        return load_multilabel_folder(path, **split)
    if task == "classify":
        return DATASETS.get(kind)(path, **split)
    return DATASETS.get(kind)(path, task=task, **split)


def list_datasets(pattern: str = "*") -> list[str]:
    """Names of the registered dataset kinds matching ``pattern``."""
    return DATASETS.names(pattern)


__all__ = [
    "DATASETS", "ClassificationData", "TensorImageDataset", "list_datasets", "load_dataset",
    "parse_data_spec", "stratified_split",
]
