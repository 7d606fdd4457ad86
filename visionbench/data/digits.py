"""The 8×8 handwritten digits (UCI, CC BY 4.0), embedded: no download and no scikit-learn needed.

The data file ``digits.csv.gz`` ships in this package (see ``DIGITS_NOTICE.md`` next to it for its
source, license and checksum); it is the file ``sklearn.datasets.load_digits()`` reads, so the
arrays are the same (tested against scikit-learn).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from visionbench.data._base import ClassificationData, TensorImageDataset, stratified_split

# The digits are 4-bit intensities (0..16); scaling to 0..255 lets every dataset share one uint8
# pipeline.
_DIGITS_MAX = 16.0
DIGITS_FILE = Path(__file__).with_name("digits.csv.gz")
_DIGITS_SHAPE = (1797, 65)  # 64 pixels, then the digit


def read_digits(path: Path = DIGITS_FILE) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of ``sklearn.datasets.load_digits()``: images ``float64 [N, 8, 8]`` (0..16) and
    targets ``int64 [N]``, read from the embedded ``digits.csv.gz``.

    Parsed as scikit-learn parses it (``np.loadtxt`` of the gzipped CSV, float64), so the values
    are identical.
    """
    if not path.is_file():
        raise ValueError(f"the embedded digits file must exist; got no file at {str(path)!r}. "
                         "Reinstall visionbench (the file ships with the package).")
    with gzip.open(path, "rt") as stream:
        table = np.loadtxt(stream, delimiter=",")  # (N, 65): 64 pixels, then the digit
    if table.shape != _DIGITS_SHAPE:
        raise ValueError(f"the embedded digits table must have shape {_DIGITS_SHAPE}; got {table.shape} in "
                         f"{str(path)!r}. Reinstall visionbench.")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load_digits(
    path: str | None = None, *, seed: int, val_fraction: float, test_fraction: float
) -> ClassificationData:
    """The 1,797 embedded digits (those of ``sklearn.datasets.load_digits``) with a fixed stratified split.

    Args:
        path: unused (the data ships with visionbench); must be ``None``.
        seed: seed of the stratified split (the default config's seed gives the documented split).
        val_fraction, test_fraction: split sizes; train gets the rest.

    Returns:
        Grayscale ``uint8 [N, 1, 8, 8]`` images, classes ``"0"``..``"9"``, ids ``"digits:{i}"``
        (index into the embedded table, the same as scikit-learn's).
    """
    if path:
        raise ValueError(f"dataset 'digits' is embedded and takes no path; got {path!r}. Use --data digits.")
    raw_images, targets = read_digits()
    pixels = np.round(raw_images * (255.0 / _DIGITS_MAX)).astype(np.uint8)  # (N, 8, 8)
    images = torch.from_numpy(pixels).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(targets)
    full = TensorImageDataset(images, labels, [f"digits:{i}" for i in range(len(labels))])
    train_fraction = 1.0 - val_fraction - test_fraction
    parts = stratified_split(targets, (train_fraction, val_fraction, test_fraction), seed=seed)
    train, val, test = (full.subset(p) for p in parts)
    return ClassificationData(
        train=train, val=val, test=test, classes=[str(d) for d in range(10)],
        in_channels=1, image_size=(8, 8), name="digits",
    )
