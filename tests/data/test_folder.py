"""Tests for visionbench/data/folder.py: tiny PNG/JPEG trees written into tmp_path."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionbench.data.folder import ImageFileDataset, load_folder, read_image_rgb

COLOURS = {"cat": (255, 0, 0), "dog": (0, 255, 0), "owl": (0, 0, 255)}


def write_image(path: Path, colour=(10, 20, 30), size=(6, 4), mode: str = "RGB") -> Path:
    """A flat-colour image of ``size`` = (W, H); the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).convert(mode).save(path)
    return path


def make_tree(root: Path, per_class: int = 10, classes=tuple(COLOURS)) -> Path:
    """``root/<class>/NNN.png`` (every third one a JPEG) in each class's colour."""
    for name in classes:
        for i in range(per_class):
            write_image(root / name / f"{i:03d}.{'jpg' if i % 3 == 2 else 'png'}", COLOURS[name])
    return root


def load(path: Path, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2):
    return load_folder(path, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def test_flat_layout_shapes_labels_ids(tmp_path: Path) -> None:
    data = load(make_tree(tmp_path))
    assert (data.classes, data.in_channels, data.image_size) == (["cat", "dog", "owl"], 3, (4, 6))
    assert data.name == f"folder:{tmp_path}"
    for split in (data.train, data.val, data.test):
        assert isinstance(split, ImageFileDataset) and split.targets().dtype == torch.int64
        for index, sample_id in enumerate(split.ids):
            image, label = split[index]
            assert image.dtype == torch.uint8 and image.shape == (3, 4, 6)
            assert data.classes[label] == sample_id.split("/")[0]
            colour = image[:, 2, 3].tolist()
            assert np.allclose(colour, COLOURS[data.classes[label]], atol=8)  # JPEG is lossy


def test_flat_layout_split_sizes_stratification_coverage(tmp_path: Path) -> None:
    data = load(make_tree(tmp_path))
    counts = [torch.bincount(s.targets(), minlength=3).tolist() for s in (data.train, data.val, data.test)]
    assert counts == [[6, 6, 6], [2, 2, 2], [2, 2, 2]]
    ids = data.train.ids + data.val.ids + data.test.ids
    assert sorted(ids) == sorted(f"{c}/{i:03d}.{'jpg' if i % 3 == 2 else 'png'}" for c in COLOURS for i in range(10))


def test_split_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    make_tree(tmp_path)
    assert load(tmp_path, seed=5).test.ids == load(tmp_path, seed=5).test.ids
    assert load(tmp_path, seed=5).test.ids != load(tmp_path, seed=6).test.ids


def test_given_train_val_test_folders(tmp_path: Path) -> None:
    make_tree(tmp_path / "train", per_class=4)
    make_tree(tmp_path / "val", per_class=2, classes=("dog",))
    make_tree(tmp_path / "test", per_class=3)
    data = load(tmp_path)
    assert data.classes == ["cat", "dog", "owl"]
    assert (len(data.train), len(data.val), len(data.test)) == (12, 2, 9)
    assert data.val.ids == ["val/dog/000.png", "val/dog/001.png"]
    assert data.val.targets().tolist() == [1, 1]
    assert all(i.startswith("train/") for i in data.train.ids)


def test_val_is_split_off_train_when_only_test_is_given(tmp_path: Path) -> None:
    make_tree(tmp_path / "train", per_class=10)
    make_tree(tmp_path / "test", per_class=1)
    data = load(tmp_path, val_fraction=0.3, test_fraction=0.5)  # test_fraction unused
    assert (len(data.train), len(data.val), len(data.test)) == (21, 9, 3)
    assert all(i.startswith("train/") for i in data.val.ids)
    assert not set(data.train.ids) & set(data.val.ids)


def test_val_and_test_split_off_train_when_only_train_is_given(tmp_path: Path) -> None:
    make_tree(tmp_path / "train")
    data = load(tmp_path)
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6)
    assert all(i.startswith("train/") for i in data.test.ids)


def test_grayscale_and_rgba_become_rgb_and_image_size_is_first_train_image(tmp_path: Path) -> None:
    write_image(tmp_path / "a" / "0.png", (90, 90, 90), size=(5, 7), mode="L")
    write_image(tmp_path / "b" / "0.png", (1, 2, 3), size=(3, 3), mode="RGBA")
    data = load(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert data.image_size == (7, 5)
    gray, rgba = data.train[0][0], data.train[1][0]
    assert gray.shape == (3, 7, 5) and gray.unique().tolist() == [90]
    assert rgba.shape == (3, 3, 3) and rgba[:, 0, 0].tolist() == [1, 2, 3]


def test_nested_images_found_and_hidden_and_other_files_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=2)
    write_image(tmp_path / "cat" / "sub" / "deep.JPEG")
    (tmp_path / "cat" / "._000.png").write_bytes(b"AppleDouble junk")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    write_image(tmp_path / ".ipynb_checkpoints" / "x.png")
    data = load(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert data.classes == ["cat", "dog", "owl"]
    assert data.train.ids[:3] == ["cat/000.png", "cat/001.png", "cat/sub/deep.JPEG"]


@pytest.mark.parametrize("bad", [b"not an image at all", "truncated"])
def test_unreadable_image_names_file_and_fix(tmp_path: Path, bad) -> None:
    make_tree(tmp_path, per_class=3)
    path = tmp_path / "dog" / "002.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if bad == "truncated" else bad)
    dataset = load(tmp_path, val_fraction=0.0, test_fraction=0.0).train
    index = dataset.ids.index("dog/002.jpg")
    with pytest.raises(ValueError, match=r"readable image file; got .* in .*dog/002\.jpg\. Remove or replace") as info:
        dataset[index]
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreadable_first_training_image_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match=r"cat/a\.png\. Remove or replace"):
        load(tmp_path, val_fraction=0.0, test_fraction=0.0)


def test_decompression_bomb_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    path = write_image(tmp_path / "big.png", size=(40, 40))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 1600 px > 2 × 100: a "bomb"
    with pytest.raises(ValueError, match=r"DecompressionBombError.*big\.png\. Remove or replace"):
        read_image_rgb(path)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    make_tree(tmp_path, per_class=2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"at least one image .* in .*empty\. Add images to it or remove"):
        load(tmp_path)


def test_no_class_folders_explains_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "loose.png")
    with pytest.raises(ValueError, match=r"one sub-folder per class; got none in .*PATH/<class>/<image>"):
        load(tmp_path)


def test_val_class_absent_from_train_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "train", per_class=2, classes=("cat", "dog"))
    make_tree(tmp_path / "val", per_class=2, classes=("cat", "owl"))
    with pytest.raises(ValueError, match=r"val/ must also exist in train/; got \['owl'\].* Add those classes"):
        load(tmp_path)


def test_split_folders_without_train_are_refused(tmp_path: Path) -> None:
    make_tree(tmp_path / "val", per_class=1)
    with pytest.raises(ValueError, match=r"must include train/; got \['val'\]"):
        load(tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be an existing directory.*PATH/<class>"):
        load(tmp_path / "nope")


@pytest.mark.parametrize(
    ("val", "test", "match"),
    [
        (-0.1, 0.1, "val_fraction"),
        (0.1, 1.0, "test_fraction"),
        (0.5, 0.5, r"val_fraction \+ test_fraction must be < 1"),
    ],
)
def test_bad_fractions(tmp_path: Path, val: float, test: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load(make_tree(tmp_path, per_class=1), val_fraction=val, test_fraction=test)


def test_dataset_pickles_for_loader_workers(tmp_path: Path) -> None:
    dataset = load(make_tree(tmp_path, per_class=2), val_fraction=0.0, test_fraction=0.0).train
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.ids == dataset.ids and torch.equal(copy[0][0], dataset[0][0])


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def _folder_with_classes(root: Path, per_class: int = 3) -> Path:
    for name in ("a", "b"):
        for i in range(per_class):
            _png(root / name / f"{i}.png", 40 * i)
    return root


def test_a_symlink_loop_reads_each_image_once_with_a_warning(tmp_path: Path) -> None:
    """os.walk(followlinks=True) once turned 30 images into 1,230 through a loop."""
    root = _folder_with_classes(tmp_path / "data")
    (root / "a" / "loop").symlink_to(root / "a", target_is_directory=True)
    with pytest.warns(UserWarning, match="reached again through symbolic links"):
        data = load_folder(root, seed=0, val_fraction=0.0, test_fraction=0.0)
    assert sorted(data.train.ids) == ["a/0.png", "a/1.png", "a/2.png", "b/0.png", "b/1.png", "b/2.png"]


def test_a_file_linked_into_another_class_is_refused(tmp_path: Path) -> None:
    root = _folder_with_classes(tmp_path / "data")
    (root / "a" / "from_b").symlink_to(root / "b", target_is_directory=True)
    with pytest.raises(ValueError, match=r"each image must appear once.*'a/from_b/0.png' and 'b/0.png'.*two labels"):
        load_folder(root, seed=0, val_fraction=0.0, test_fraction=0.0)


def test_a_file_linked_into_two_splits_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for split in ("train", "test"):
        _folder_with_classes(root / split)
    (root / "test" / "a" / "leak.png").symlink_to(root / "train" / "a" / "0.png")
    with pytest.raises(ValueError, match=r"'train/a/0.png' and 'test/a/leak.png'.*two splits"):
        load_folder(root, seed=0, val_fraction=0.0, test_fraction=0.0)


def test_a_16_bit_grey_image_keeps_its_range_instead_of_saturating(tmp_path: Path) -> None:
    """16-bit PNGs used to saturate to 255 in training and predict (issue 18): 0..65535 now maps to 0..255."""
    path = tmp_path / "depth.png"
    Image.fromarray(np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    assert read_image_rgb(path).tolist() == [[[0, 4, 156, 255]]] * 3


@pytest.mark.parametrize("array, mode", [(np.array([[0, 70000]], dtype=np.int32), "I"),
                                         (np.array([[0.0, 0.5]], dtype=np.float32), "F")])
def test_32_bit_integer_and_float_images_are_refused_with_the_fix(tmp_path: Path, array: np.ndarray, mode: str) -> None:
    path = tmp_path / "x.tif"
    Image.fromarray(array).save(path)
    with pytest.raises(ValueError, match=rf"got mode '{mode}'.*x\.tif\. Convert it to an 8- or 16-bit"):
        read_image_rgb(path)
