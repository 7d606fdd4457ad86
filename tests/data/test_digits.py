"""The embedded digits: identical to scikit-learn's, with a fixed stratified split."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits

from visionbench.data import load_dataset
from visionbench.data.digits import read_sklearn_digits


def test_fast_reader_equals_scikit_learn() -> None:
    images, targets = read_sklearn_digits()
    bunch = sklearn_load_digits()
    assert np.array_equal(images, bunch.images) and np.array_equal(targets, bunch.target)


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
