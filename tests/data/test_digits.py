"""The embedded digits: identical to scikit-learn's, with a fixed stratified split."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits

from visionbench.data import load_dataset
from visionbench.data.digits import DIGITS_FILE, read_digits


def test_embedded_file_equals_scikit_learn_exactly() -> None:
    images, targets = read_digits()
    bunch = sklearn_load_digits()  # the oracle ([dev] extra only)
    assert images.dtype == bunch.images.dtype and images.shape == (1797, 8, 8)
    assert np.array_equal(images, bunch.images) and np.array_equal(targets, bunch.target)
    assert targets.dtype == np.int64


def test_embedded_file_is_the_credited_one() -> None:
    notice = (DIGITS_FILE.parent / "DIGITS_NOTICE.md").read_text()
    assert hashlib.sha256(DIGITS_FILE.read_bytes()).hexdigest() in notice and "CC BY 4.0" in notice
    # pyproject.toml's package-data ships both files (checked in tests/test_dependencies.py).


def test_loading_digits_imports_neither_scikit_learn_nor_scipy() -> None:
    code = ("import sys; from visionbench.data import load_dataset; "
            "load_dataset('digits', seed=0, val_fraction=0.1, test_fraction=0.2); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_damaged_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must exist"):
        read_digits(tmp_path / "missing.csv.gz")
    import gzip

    with gzip.open(tmp_path / "short.csv.gz", "wt") as stream:
        stream.write("0," * 64 + "3\n")
    with pytest.raises(ValueError, match=r"shape \(1797, 65\); got \(65,\)"):
        read_digits(tmp_path / "short.csv.gz")


def test_split_is_fixed_stratified_and_disjoint() -> None:
    data = load_dataset("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
    assert (len(data.train), len(data.val), len(data.test)) == (1258, 180, 359)
    ids = [set(split.ids) for split in (data.train, data.val, data.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert len(ids[0] | ids[1] | ids[2]) == 1797
    counts = np.bincount(data.test.labels.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # ~20% of each class's ~180 images
    again = load_dataset("digits", seed=0, val_fraction=0.1, test_fraction=0.2)
    assert again.test.ids == data.test.ids
    assert str(data.test.images.dtype) == "torch.uint8"
    assert int(data.train.images.max()) == 255 and data.in_channels == 1 and data.image_size == (8, 8)


def test_digits_takes_no_path() -> None:
    with pytest.raises(ValueError, match="takes no path"):
        load_dataset("digits:/tmp/x", seed=0, val_fraction=0.1, test_fraction=0.2)
