"""MNIST from its four IDX files, parsed with numpy — never downloaded.

Accepted layouts: ``PATH/`` holding the four files, torchvision's ``PATH/MNIST/raw/``, or
``PATH/raw/`` (``PATH`` being the ``MNIST`` folder). Each file may be gzipped; compression is
detected from the content (the gzip magic ``1f 8b``), so a ``.gz`` suffix is optional.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic
``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian ``uint32`` dimension sizes, then the
values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from visionbench.data._base import ClassificationData, TensorImageDataset, split_off_val

# IDX dtype codes → numpy dtypes (big-endian, as stored on disk).
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILES = {  # split → (images, labels)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CLASSES = [str(digit) for digit in range(10)]
_REDOWNLOAD = "The file is truncated or corrupt; download it again."
MAX_IDX_BYTES = 4 << 30  # MNIST's train images are 47 MB, EMNIST's largest file 700 MB


def load_mnist(
    path: str | os.PathLike[str], *, seed: int, val_fraction: float, test_fraction: float
) -> ClassificationData:
    """Read MNIST from a directory of IDX files.

    The train file is split into train and val with :func:`stratified_split` (``val_fraction``,
    ``seed``); the ``t10k`` files are the test split, so ``test_fraction`` is ignored (it is
    accepted so that every reader has the same signature).

    Args:
        path: directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``),
            or torchvision's root with ``MNIST/raw/`` inside.
        seed: seed of the train/val split.
        val_fraction: share of the train file held out for validation, in ``[0, 1)``.
        test_fraction: ignored (the ``t10k`` files are the test split).

    Returns:
        Splits of ``(uint8 [1, 28, 28], label in [0, 9])`` samples with ids ``"train:{i}"``
        (index in the train file) and ``"t10k:{i}"``; classes ``"0"`` … ``"9"``.

    Raises:
        ValueError: a file is missing, is not IDX, is truncated, images and labels differ in
            count, or a label is above 9.

    Example:
        >>> data = load_mnist("~/data", seed=0, val_fraction=0.1, test_fraction=0.0)
        >>> data.train[0][0].shape
        torch.Size([1, 28, 28])
    """
    del test_fraction  # the t10k files are the test split
    if not 0.0 <= val_fraction < 1.0:  # checked before reading 50 MB of files
        raise ValueError(f"val_fraction must be in [0, 1); got {val_fraction!r}. Pass e.g. 0.1.")
    directory = _find_mnist_dir(Path(path).expanduser())
    train_images, train_labels = _read_split(directory, "train")
    test_images, test_labels = _read_split(directory, "t10k")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"MNIST test images must have the train images' size {train_images.shape[1:]}; got "
            f"{test_images.shape[1:]} in {directory}. The files come from different datasets; "
            "put the four files of one dataset in the folder."
        )
    train, val = split_off_val(_dataset(train_images, train_labels, "train"), val_fraction=val_fraction, seed=seed)
    return ClassificationData(
        train=train,
        val=val,
        test=_dataset(test_images, test_labels, "t10k"),
        classes=list(_CLASSES),
        in_channels=1,
        image_size=(int(train_images.shape[1]), int(train_images.shape[2])),
        name=f"mnist:{path}",
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into a native-endian numpy array.

    The header is read first and the values are read up to the size it declares (at most
    :data:`MAX_IDX_BYTES`), so a small gzip bomb cannot expand into memory before it is refused.

    Args:
        path: the IDX file.

    Returns:
        A writable array of the shape and dtype the header declares (e.g. ``uint8 [N, 28, 28]``).

    Raises:
        ValueError: bad magic number, unknown dtype code, a declared size above the bound, or a
            byte count that does not match the header (truncated or padded file).
    """
    path = Path(path)
    try:
        with _open_stream(path) as stream:
            magic = stream.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
                codes = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
                raise ValueError(
                    f"IDX magic number must be 0x0000 then a dtype code in {{{codes}}} and ndim; got "
                    f"0x{magic.hex().upper()} in {path}. This is not an IDX file; replace it with the "
                    "original MNIST file."
                )
            dtype, ndim = _IDX_DTYPES[magic[2]], magic[3]
            header = 4 + 4 * ndim
            raw_dims = stream.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise ValueError(
                    f"IDX file size must be at least {header} bytes (its header, {ndim} dims); got "
                    f"{4 + len(raw_dims)} bytes (uncompressed) in {path}. {_REDOWNLOAD}"
                )
            dims = struct.unpack(f">{ndim}I", raw_dims)
            size = math.prod(dims) * dtype.itemsize
            if size > MAX_IDX_BYTES:
                raise ValueError(
                    f"IDX data must be at most {MAX_IDX_BYTES:,} bytes; its header declares {dims} × "
                    f"{dtype.itemsize} byte(s) = {size:,} bytes in {path}. {_REDOWNLOAD}"
                )
            body = stream.read(size + 1)  # one byte more tells a padded file, without reading all of it
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"gzip stream must be complete and valid; got {type(exc).__name__} ({exc}) in {path}. {_REDOWNLOAD}"
        ) from None
    if len(body) != size:
        got = f"{header + len(body)} bytes" if len(body) < size else "more bytes"
        raise ValueError(
            f"IDX file size must be {header + size} bytes ({header}-byte header + {dims} × "
            f"{dtype.itemsize} byte(s)); got {got} (uncompressed) in {path}. {_REDOWNLOAD}"
        )
    return np.frombuffer(body, dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _open_stream(path: Path) -> BinaryIO:
    """The file as a byte stream, gunzipped on the fly when it starts with the gzip magic ``1f 8b``."""
    with open(path, "rb") as file:
        is_gzip = file.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else open(path, "rb")  # noqa: SIM115 - the caller closes it


def _find_mnist_dir(root: Path) -> Path:
    """The first of ``root``, ``root/MNIST/raw``, ``root/raw`` that holds any MNIST file."""
    if not root.is_dir():
        raise ValueError(
            f"MNIST path must be an existing directory; got {str(root)!r}. Pass the folder that "
            "holds the four IDX files (e.g. mnist:~/data/MNIST/raw)."
        )
    names = [name + suffix for pair in _FILES.values() for name in pair for suffix in ("", ".gz")]
    for candidate in (root, root / "MNIST" / "raw", root / "raw"):
        if any((candidate / name).is_file() for name in names):
            return candidate
    return root


def _find_file(directory: Path, name: str) -> Path:
    """``directory/name`` or ``directory/name.gz``; else a ``ValueError`` listing the folder."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    present = sorted(os.listdir(directory))
    shown = present[:20] + ([f"… {len(present) - 20} more"] if len(present) > 20 else [])
    raise ValueError(
        f"MNIST directory must contain {name} (or {name}.gz); got {shown!r} in {directory}. "
        "Put the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; gzipped or not) in this folder, e.g. "
        "with torchvision's MNIST dataset class (its download option) and give mnist:ROOT."
    )


def _read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, H, W]`` and labels ``int64 [N]`` of ``split`` (``"train"``/``"t10k"``)."""
    images_file, labels_file = (_find_file(directory, name) for name in _FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    _check_layout(images, 3, "[N, H, W]", images_file)
    _check_layout(labels, 1, "[N]", labels_file)
    if len(images) != len(labels):
        raise ValueError(
            f"MNIST label count must equal the image count {len(images)}; got {len(labels)} in "
            f"{labels_file}. The files come from different sets or one is truncated; download "
            "both again."
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise ValueError(
            f"MNIST label must be in [0, 9]; got {int(labels[bad[0]])} in {labels_file}:"
            f"{int(bad[0])}. This is not an MNIST digits file; replace it with the original."
        )
    return images, labels.astype(np.int64)


def _check_layout(array: np.ndarray, ndim: int, shape: str, path: Path) -> None:
    """Require ``uint8`` with ``ndim`` dimensions (the MNIST image/label file layout)."""
    if array.dtype != np.uint8 or array.ndim != ndim:
        raise ValueError(
            f"MNIST IDX data must be uint8 {shape}; got {array.dtype} with shape "
            f"{tuple(array.shape)} in {path}. The file is not the MNIST file of that name; "
            "replace it with the original."
        )


def _dataset(images: np.ndarray, labels: np.ndarray, prefix: str) -> TensorImageDataset:
    """``images [N, H, W]`` as ``[1, H, W]`` samples with ids ``"{prefix}:{i}"``."""
    return TensorImageDataset(
        torch.from_numpy(images).unsqueeze(1),  # (N, 1, H, W)
        torch.from_numpy(labels),
        [f"{prefix}:{i}" for i in range(len(labels))],
    )
