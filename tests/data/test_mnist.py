"""Tests for visionbench/data/mnist.py: real IDX files written into tmp_path."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visionbench.data.mnist import load_mnist, read_idx

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"
IDX_CODES = {">u1": 0x08, ">i1": 0x09, ">i2": 0x0B, ">i4": 0x0C, ">f4": 0x0D, ">f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as an IDX file (big-endian, as LeCun's files are)."""
    big = array.astype(array.dtype.newbyteorder(">"))
    code = IDX_CODES[big.dtype.str.replace("|", ">")]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write_idx(directory: Path, name: str, array: np.ndarray, *, gz: bool) -> Path:
    data = idx_bytes(array)
    path = directory / (name + ".gz" if gz else name)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_mnist(directory: Path, *, gz: bool = False, n_train: int = 30, n_test: int = 10) -> Path:
    """Fake MNIST: image ``i`` is filled with ``i`` (so ids can be checked), label ``i % 10``."""
    directory.mkdir(parents=True, exist_ok=True)
    for (images_name, labels_name), n in (
        ((TRAIN_IMAGES, TRAIN_LABELS), n_train),
        ((TEST_IMAGES, TEST_LABELS), n_test),
    ):
        images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28))
        write_idx(directory, images_name, np.ascontiguousarray(images), gz=gz)
        write_idx(directory, labels_name, (np.arange(n) % 10).astype(np.uint8), gz=gz)
    return directory


def load(path: Path, seed: int = 0, val_fraction: float = 1 / 3):
    return load_mnist(path, seed=seed, val_fraction=val_fraction, test_fraction=0.5)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("layout", [".", "MNIST/raw"])
def test_reads_shapes_dtypes_labels_and_ids(tmp_path: Path, gz: bool, layout: str) -> None:
    make_mnist(tmp_path / layout, gz=gz)
    data = load(tmp_path)
    assert (data.classes, data.in_channels, data.image_size) == (
        [str(d) for d in range(10)],
        1,
        (28, 28),
    )
    assert data.name == f"mnist:{tmp_path}"
    image, label = data.train[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 28, 28) and isinstance(label, int)
    assert data.test.ids == [f"t10k:{i}" for i in range(10)]
    assert data.test.targets().tolist() == list(range(10))
    for split in (data.train, data.val, data.test):
        assert split.targets().dtype == torch.int64
        for index, sample_id in enumerate(split.ids):  # pixel value == index in its file
            image, label = split[index]
            number = int(sample_id.split(":")[1])
            assert int(image[0, 0, 0]) == number and label == number % 10


def test_split_sizes_stratification_and_coverage(tmp_path: Path) -> None:
    data = load(make_mnist(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (20, 10, 10)
    assert torch.bincount(data.val.targets(), minlength=10).tolist() == [1] * 10
    assert torch.bincount(data.train.targets(), minlength=10).tolist() == [2] * 10
    assert sorted(data.train.ids + data.val.ids) == sorted(f"train:{i}" for i in range(30))


def test_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    assert load(tmp_path, seed=3).val.ids == load(tmp_path, seed=3).val.ids
    assert load(tmp_path, seed=3).val.ids != load(tmp_path, seed=4).val.ids


def test_zero_val_fraction_gives_empty_val(tmp_path: Path) -> None:
    data = load(make_mnist(tmp_path), val_fraction=0.0)
    assert (len(data.train), len(data.val)) == (30, 0)


@pytest.mark.parametrize("missing", [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS])
def test_missing_file_is_named_with_listing_and_fix(tmp_path: Path, missing: str) -> None:
    make_mnist(tmp_path, gz=True)
    (tmp_path / f"{missing}.gz").unlink()
    present = sorted({TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS} - {missing})[0]
    with pytest.raises(ValueError, match=rf"must contain {missing} \(or {missing}\.gz\)") as info:
        load(tmp_path)
    assert f"'{present}.gz'" in str(info.value) and "download option" in str(info.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MNIST path must be an existing directory"):
        load(tmp_path / "nope")


def test_bad_magic_names_the_file(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / TRAIN_LABELS).write_bytes(b"\x01\x02\x03\x04" + bytes(30))
    with pytest.raises(ValueError, match=rf"magic number .* got 0x01020304 in .*{TRAIN_LABELS}"):
        load(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_reports_expected_and_actual_bytes(tmp_path: Path, gz: bool) -> None:
    make_mnist(tmp_path)
    path = tmp_path / TRAIN_IMAGES
    data = path.read_bytes()[:-100]  # 16-byte header + 30*28*28 = 23536 bytes expected
    path.unlink()
    (tmp_path / (TRAIN_IMAGES + ".gz" if gz else TRAIN_IMAGES)).write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"must be 23536 bytes .* got 23436 bytes .*download it again"):
        load(tmp_path)


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=True)
    path = tmp_path / f"{TEST_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match=rf"gzip stream must be complete .* in .*{TEST_IMAGES}\.gz"):
        load(tmp_path)


def test_header_cut_short(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    (tmp_path / TEST_IMAGES).write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(ValueError, match=rf"at least 16 bytes .* got 6 bytes .*{TEST_IMAGES}"):
        load(tmp_path)


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path, TRAIN_LABELS, np.zeros(29, np.uint8), gz=False)
    with pytest.raises(ValueError, match=rf"count must equal the image count 30; got 29 in .*{TRAIN_LABELS}"):
        load(tmp_path)


def test_label_above_nine_names_file_and_record(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    labels = np.arange(10, dtype=np.uint8)
    labels[5] = 12
    write_idx(tmp_path, TEST_LABELS, labels, gz=False)
    with pytest.raises(ValueError, match=rf"label must be in \[0, 9\]; got 12 in .*{TEST_LABELS}:5\."):
        load(tmp_path)


def test_wrong_idx_layout(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path, TRAIN_LABELS, np.zeros(30, ">i4"), gz=False)
    with pytest.raises(ValueError, match=rf"must be uint8 \[N\]; got int32 .*{TRAIN_LABELS}"):
        load(tmp_path)


def test_train_and_test_image_sizes_must_agree(tmp_path: Path) -> None:
    make_mnist(tmp_path)
    write_idx(tmp_path, TEST_IMAGES, np.zeros((10, 14, 14), np.uint8), gz=False)
    with pytest.raises(ValueError, match=re.escape("size (28, 28); got (14, 14)")):
        load(tmp_path)


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_bad_val_fraction(tmp_path: Path, fraction: float) -> None:
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        load(make_mnist(tmp_path), val_fraction=fraction)


@settings(max_examples=30, deadline=None)
@given(
    dtype=st.sampled_from(list(IDX_CODES)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    gz=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_read_idx_round_trips(tmp_path_factory, dtype: str, shape: list[int], gz: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = write_idx(tmp_path_factory.mktemp("idx"), "x", array, gz=gz)
    out = read_idx(path)
    assert out.shape == array.shape and out.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_a_header_declaring_more_than_the_bound_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**31, 2**16, 2**16))
    with pytest.raises(ValueError, match=r"IDX data must be at most .* bytes; its header declares"):
        read_idx(path)


def test_a_gzip_bomb_is_read_only_up_to_its_declared_size(tmp_path: Path) -> None:
    """A 2 MB .gz reached 5.1 GB before the size check (issue 18): the values are now read up to the
    size the header declares (+1 byte), so the bomb is refused after 785 bytes, not gigabytes."""
    path = tmp_path / "bomb-idx1-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 777))
        zeros = bytes(1 << 20)
        for _ in range(256):  # 256 MiB of zeros uncompressed, about 0.25 MB on disk
            handle.write(zeros)
    assert path.stat().st_size < 2 << 20
    with pytest.raises(ValueError, match=r"got more bytes \(uncompressed\)"):
        read_idx(path)
