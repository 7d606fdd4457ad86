"""scikit-learn's 8×8 handwritten digits, embedded: no file and no download needed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from visionbench.data._base import ClassificationData, TensorImageDataset, stratified_split

# The digits are 4-bit intensities (0..16); scaling to 0..255 lets every dataset share one uint8
# pipeline.
_DIGITS_MAX = 16.0


def read_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """The arrays of ``sklearn.datasets.load_digits()``: images ``float64 [N, 8, 8]`` (0..16) and
    targets ``int64 [N]``.

    Reads the CSV that ships inside scikit-learn directly: importing ``sklearn.datasets`` (and
    SciPy with it) costs about 2 s of start-up, more than training on the digits. Falls back to
    scikit-learn's loader if the file is not where scikit-learn keeps it.
    """
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    location = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if location is None or not location.is_file():
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        return bunch.images, bunch.target.astype(np.int64)
    table = np.loadtxt(location, delimiter=",")  # (N, 65): 64 pixels, then the digit
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def load_digits(
    path: str | None = None, *, seed: int, val_fraction: float, test_fraction: float
) -> ClassificationData:
    """The 1,797 digits of ``sklearn.datasets.load_digits`` with a fixed stratified split.

    Args:
        path: unused (the data ships with scikit-learn); must be ``None``.
        seed: seed of the stratified split (the default config's seed gives the documented split).
        val_fraction, test_fraction: split sizes; train gets the rest.

    Returns:
        Grayscale ``uint8 [N, 1, 8, 8]`` images, classes ``"0"``..``"9"``, ids ``"digits:{i}"``
        (index into scikit-learn's array).
    """
    if path:
        raise ValueError(f"dataset 'digits' is embedded and takes no path; got {path!r}. Use --data digits.")
    raw_images, targets = read_sklearn_digits()
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
