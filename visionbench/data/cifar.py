"""CIFAR-10 from its *binary version* — never unpickled.

The binary version (https://www.cs.toronto.edu/~kriz/cifar.html, ``cifar-10-binary.tar.gz``)
holds ``data_batch_1.bin`` … ``data_batch_5.bin`` and ``test_batch.bin``: records of 1 label byte
then 3072 pixel bytes (3 × 32 × 32, channel-major: all red, then green, then blue), plus
``batches.meta.txt`` with the class names one per line. The python version stores the same data as
pickles, and unpickling a file can run arbitrary code, so it is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from visionbench.data._base import ClassificationData, TensorImageDataset, split_off_val

_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte + channel-major 3×32×32 pixels
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
# The standard names, in label order (as in the archive's batches.meta.txt).
_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
_GET_BINARY = (
    "download the binary version (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz), "
    "extract it and pass the folder (or its parent)"
)


def load_cifar10(
    path: str | os.PathLike[str], *, seed: int, val_fraction: float, test_fraction: float
) -> ClassificationData:
    """Read CIFAR-10 (binary version) from a directory.

    The five train batches are split into train and val with :func:`stratified_split`
    (``val_fraction``, ``seed``); ``test_batch.bin`` is the test split, so ``test_fraction`` is
    ignored (it is accepted so that every reader has the same signature).

    Args:
        path: directory holding the ``.bin`` batches, or its parent with
            ``cifar-10-batches-bin/`` inside.
        seed: seed of the train/val split.
        val_fraction: share of the train batches held out for validation, in ``[0, 1)``.
        test_fraction: ignored (``test_batch.bin`` is the test split).

    Returns:
        Splits of ``(uint8 [3, 32, 32], label in [0, 9])`` samples with ids
        ``"data_batch_{k}:{i}"`` / ``"test_batch:{i}"`` (``i`` = record in that file); classes
        from ``batches.meta.txt``, or the standard 10 names when it is absent.

    Raises:
        ValueError: the python (pickle) version was given, a batch is missing or truncated, a
            label is above 9, or ``batches.meta.txt`` does not list 10 names.

    Example:
        >>> data = load_cifar10("~/data", seed=0, val_fraction=0.1, test_fraction=0.0)
        >>> data.classes[:2]
        ['airplane', 'automobile']
    """
    del test_fraction  # test_batch.bin is the test split
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction!r}. Pass e.g. 0.1.")
    directory = _find_cifar_dir(Path(path).expanduser())
    batches = [read_cifar_batch(directory / f"{name}.bin") for name in _TRAIN_BATCHES]
    images = np.concatenate([batch_images for batch_images, _ in batches])
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    ids = [f"{name}:{i}" for name, (_, lab) in zip(_TRAIN_BATCHES, batches, strict=True) for i in range(len(lab))]
    full = TensorImageDataset(torch.from_numpy(images), torch.from_numpy(labels), ids)
    train, val = split_off_val(full, val_fraction=val_fraction, seed=seed)
    test_images, test_labels = read_cifar_batch(directory / f"{_TEST_BATCH}.bin")
    test_ids = [f"{_TEST_BATCH}:{i}" for i in range(len(test_labels))]
    return ClassificationData(
        train=train,
        val=val,
        test=TensorImageDataset(torch.from_numpy(test_images), torch.from_numpy(test_labels), test_ids),
        classes=_read_class_names(directory),
        in_channels=3,
        image_size=(32, 32),
        name=f"cifar10:{path}",
    )


def read_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch file.

    Args:
        path: a ``.bin`` batch (records of 1 label byte + 3072 pixel bytes).

    Returns:
        ``images`` ``uint8 [N, 3, 32, 32]`` and ``labels`` ``int64 [N]``.

    Raises:
        ValueError: the file is empty or truncated (names the broken record and the byte
            count), or a label is above 9 (names the record).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"CIFAR-10 batch file must be a readable file; got {str(path)!r}: "
                         f"{error.strerror or error}. Check the path (e.g. data_batch_1.bin).") from None
    count, rest = divmod(len(data), _RECORD_BYTES)
    if rest or not count:
        raise ValueError(
            f"CIFAR-10 batch size must be a positive multiple of {_RECORD_BYTES} bytes (1 label "
            f"byte + 3072 pixel bytes per record); got {len(data)} bytes in {path}:{count} "
            f"(record {count} has {rest} of {_RECORD_BYTES} bytes). The file is truncated; "
            f"{_GET_BINARY} again."
        )
    records = np.frombuffer(data, np.uint8).reshape(count, _RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(
            f"CIFAR-10 label must be in [0, 9]; got {int(labels[bad[0]])} in {path}:{int(bad[0])}. "
            "The file is corrupt or not CIFAR-10 (CIFAR-100 records have 2 label bytes); "
            f"{_GET_BINARY}."
        )
    return records[:, 1:].reshape(count, 3, 32, 32).copy(), labels


def _find_cifar_dir(root: Path) -> Path:
    """``root`` or ``root/cifar-10-batches-bin``, checked to hold all six binary batches."""
    if not root.is_dir():
        raise ValueError(
            f"CIFAR-10 path must be an existing directory; got {str(root)!r}. Pass the folder "
            "that holds data_batch_1.bin … test_batch.bin "
            "(e.g. cifar10:~/data/cifar-10-batches-bin)."
        )
    directory = root / "cifar-10-batches-bin" if (root / "cifar-10-batches-bin").is_dir() else root
    needed = [f"{name}.bin" for name in (*_TRAIN_BATCHES, _TEST_BATCH)]
    missing = [name for name in needed if not (directory / name).is_file()]
    if missing and _looks_pickled(root):
        raise ValueError(
            f"CIFAR-10 files must be the binary version (data_batch_1.bin …); got the python "
            f"(pickle) version in {root}. visionbench never unpickles data files (a pickle can run "
            f"code); {_GET_BINARY}."
        )
    if missing:
        present = sorted(os.listdir(directory))
        shown = present[:20] + ([f"… {len(present) - 20} more"] if len(present) > 20 else [])
        raise ValueError(
            f"CIFAR-10 directory must contain {', '.join(missing)}; got {shown!r} in {directory}. "
            f"Put the six .bin batches in this folder: {_GET_BINARY}."
        )
    return directory


def _looks_pickled(root: Path) -> bool:
    """Whether ``root`` holds the python version (files without ``.bin``, or its folder)."""
    for directory in (root, root / "cifar-10-batches-py"):
        if any((directory / name).is_file() for name in ("data_batch_1", "test_batch", "batches.meta")):
            return True
    return False


def _read_class_names(directory: Path) -> list[str]:
    """Names in ``batches.meta.txt`` (one per line, blanks skipped), else the standard ones."""
    meta = directory / "batches.meta.txt"
    if not meta.is_file():
        return list(_CLASSES)
    try:
        names = [line.strip() for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as exc:
        names = [f"<not UTF-8 text: {exc.reason}>"]
    if len(names) != len(_CLASSES):
        raise ValueError(
            f"batches.meta.txt must list {len(_CLASSES)} class names, one per line; got "
            f"{names[:12]!r} in {meta}. Fix the file, or delete it to use the standard CIFAR-10 "
            "names."
        )
    return names
