"""Tests for visionbench/data/cifar.py: binary batches written into tmp_path."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from visionbench.data.cifar import load_cifar10, read_cifar_batch

RECORD = 3073
STANDARD = [
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
BATCHES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


def records(labels: list[int], first: int) -> bytes:
    """One record per label; red = running number, green = 200, blue = 7 (channel-major)."""
    out = bytearray()
    for offset, label in enumerate(labels):
        red = (first + offset) % 256
        out += bytes([label]) + bytes([red]) * 1024 + bytes([200]) * 1024 + bytes([7]) * 1024
    return bytes(out)


def make_cifar(directory: Path) -> Path:
    """Five train batches and a test batch of 10 records each, labels 0..9 in every batch."""
    directory.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(BATCHES):
        (directory / f"{name}.bin").write_bytes(records(list(range(10)), first=10 * k))
    return directory


def load(path: Path, seed: int = 0, val_fraction: float = 0.2):
    return load_cifar10(path, seed=seed, val_fraction=val_fraction, test_fraction=0.5)


def test_reads_shapes_dtypes_ids_and_channel_major_pixels(tmp_path: Path) -> None:
    data = load(make_cifar(tmp_path))
    assert (data.classes, data.in_channels, data.image_size) == (STANDARD, 3, (32, 32))
    assert data.name == f"cifar10:{tmp_path}"
    assert data.test.ids == [f"test_batch:{i}" for i in range(10)]
    for split in (data.train, data.val, data.test):
        assert split.targets().dtype == torch.int64
        for index, sample_id in enumerate(split.ids):
            image, label = split[index]
            name, record = sample_id.split(":")
            assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
            assert label == int(record) and isinstance(label, int)
            assert int(image[0, 5, 9]) == 10 * BATCHES.index(name) + int(record)  # red plane
            assert image[1].unique().tolist() == [200] and image[2].unique().tolist() == [7]


def test_split_sizes_stratification_and_coverage(tmp_path: Path) -> None:
    data = load(make_cifar(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    assert torch.bincount(data.val.targets(), minlength=10).tolist() == [1] * 10
    everything = {f"{name}:{i}" for name in BATCHES[:5] for i in range(10)}
    assert set(data.train.ids) | set(data.val.ids) == everything
    assert not set(data.train.ids) & set(data.val.ids)


def test_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    make_cifar(tmp_path)
    assert load(tmp_path, seed=1).val.ids == load(tmp_path, seed=1).val.ids
    assert load(tmp_path, seed=1).val.ids != load(tmp_path, seed=2).val.ids


def test_subfolder_and_meta_class_names(tmp_path: Path) -> None:
    folder = make_cifar(tmp_path / "cifar-10-batches-bin")
    names = [f"class{i}" for i in range(10)]
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n\n")
    assert load(tmp_path).classes == names


def test_meta_with_wrong_count_is_refused(tmp_path: Path) -> None:
    (make_cifar(tmp_path) / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(ValueError, match=r"must list 10 class names.*\['cat', 'dog'\].*delete it"):
        load(tmp_path)


def test_truncated_batch_names_file_record_and_bytes(tmp_path: Path) -> None:
    path = make_cifar(tmp_path) / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[: 2 * RECORD + 100])
    with pytest.raises(
        ValueError,
        match=r"got 6246 bytes in .*data_batch_3\.bin:2 \(record 2 has 100 of 3073 bytes\)",
    ):
        load(tmp_path)


def test_empty_batch(tmp_path: Path) -> None:
    (make_cifar(tmp_path) / "test_batch.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"positive multiple of 3073 bytes.*got 0 bytes in .*test_batch"):
        load(tmp_path)


def test_label_above_nine_names_file_and_record(tmp_path: Path) -> None:
    labels = list(range(10))
    labels[4] = 11
    (make_cifar(tmp_path) / "data_batch_2.bin").write_bytes(records(labels, first=0))
    with pytest.raises(ValueError, match=r"label must be in \[0, 9\]; got 11 in .*data_batch_2\.bin:4\."):
        load(tmp_path)


def test_missing_batch_is_named_with_listing_and_fix(tmp_path: Path) -> None:
    (make_cifar(tmp_path) / "data_batch_4.bin").unlink()
    with pytest.raises(ValueError, match=r"must contain data_batch_4\.bin; got \[.*'data_batch_5\.bin'") as info:
        load(tmp_path)
    assert "cifar-10-binary.tar.gz" in str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CIFAR-10 path must be an existing directory"):
        load(tmp_path / "nope")


class _Exploit:
    """A pickle that would create a folder if anyone unpickled it."""

    def __init__(self, target: Path) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.mark.parametrize("inside", ["cifar-10-batches-py", "."])
def test_python_pickle_version_is_refused_without_unpickling(tmp_path: Path, inside: str) -> None:
    folder = tmp_path / inside
    folder.mkdir(exist_ok=True)
    sentinel = tmp_path / "pwned"
    for name in [*BATCHES, "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps(_Exploit(sentinel)))
    with pytest.raises(ValueError, match=r"binary version.*python \(pickle\) version.*never unpickles"):
        load(tmp_path)
    assert not sentinel.exists()


def test_read_cifar_batch_returns_writable_arrays(tmp_path: Path) -> None:
    path = tmp_path / "b.bin"
    path.write_bytes(records([3, 1], first=0))
    images, labels = read_cifar_batch(path)
    assert images.shape == (2, 3, 32, 32) and images.dtype == np.uint8 and images.flags.writeable
    assert labels.tolist() == [3, 1] and labels.dtype == np.int64


@pytest.mark.parametrize("fraction", [-0.5, 1.0])
def test_bad_val_fraction(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        load(make_cifar(tmp_path), val_fraction=fraction)
