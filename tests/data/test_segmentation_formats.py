"""Tests for visionbench/data/segmentation_formats.py: tiny mask folders, VOC trees and COCO files in tmp_path.

Oracles: the arrays written to the PNG files (palette PNGs included), pycocotools' ``COCO.annToMask``
per annotation combined with the documented overlap rule, and pycocotools' ``mask.encode`` for the
compressed RLE strings.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_api
from pycocotools.coco import COCO
from torch.utils.data import Subset
from torchvision import tv_tensors

from visionbench.data.detection_formats import VOC_CLASSES
from visionbench.data.segmentation_formats import (
    CocoSemanticSegmentation,
    MaskFolderSegmentation,
    SegmentationData,
    VocSegmentation,
    _compressed_counts,
    load_segmentation_data,
    random_split_indices,
)
from visionbench.data.shapes import mask_to_rle
from visionbench.data.splits import DatasetView

# --------------------------------------------------------------------------------------------
# File helpers
# --------------------------------------------------------------------------------------------


def write_image(path: Path, array: np.ndarray) -> Path:
    """``uint8 [H, W, 3]`` (RGB) or ``[H, W]`` (grayscale) saved by suffix (PNG lossless, JPEG quality 95)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)
    return path


def random_image(rng: np.random.Generator, height: int, width: int, *, gray: bool = False) -> np.ndarray:
    shape = (height, width) if gray else (height, width, 3)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def write_mask(path: Path, mask: np.ndarray, *, palette: bool = False) -> Path:
    """Save class indices as 8-bit grayscale ("L") or as a palette PNG ("P") whose colours are unlike
    the indices, so reading the colours instead of the indices would fail the comparison."""
    path.parent.mkdir(parents=True, exist_ok=True)
    indices = np.ascontiguousarray(mask, dtype=np.uint8)
    if palette:
        image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
        colours = np.random.default_rng(1).integers(0, 256, size=(256, 3), dtype=np.uint8)
        image.putpalette(colours.ravel().tolist())
    else:
        image = Image.fromarray(indices)
    image.save(path)
    return path


def random_mask(rng: np.random.Generator, height: int, width: int, num_classes: int, *, ignore: bool = True) -> np.ndarray:
    mask = rng.integers(0, num_classes, size=(height, width)).astype(np.int64)
    if ignore:
        mask[rng.random((height, width)) < 0.1] = 255
    return mask


def check_item(item: tuple, image: np.ndarray, mask: np.ndarray) -> None:
    """The sample contract, and exact pixels (image from a PNG; ``image`` grayscale is broadcast to RGB)."""
    got_image, got_mask = item
    assert isinstance(got_image, tv_tensors.Image) and got_image.dtype == torch.uint8
    assert isinstance(got_mask, tv_tensors.Mask) and got_mask.dtype == torch.int64
    rgb = np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image
    assert tuple(got_image.shape) == (3, *rgb.shape[:2])
    assert np.array_equal(got_image.numpy().transpose(1, 2, 0), rgb)
    assert np.array_equal(got_mask.numpy(), mask)


def make_mask_folder(root: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Five pairs: PNG RGB, grayscale PNG, nested folder, palette mask, mixed sizes; classes 0..4 + 255.
    Returns ``id -> (image array, mask array)``."""
    rng = np.random.default_rng(seed)
    written = {}
    specs = [("a.png", (16, 16), False, False), ("b.png", (30, 40), True, False), ("sub/c.png", (20, 24), False, True),
             ("d.png", (16, 16), False, True), ("sub/deeper/e.png", (30, 40), True, False)]
    for name, (height, width), gray, palette in specs:
        image = random_image(rng, height, width, gray=gray)
        mask = random_mask(rng, height, width, 4)
        written[name] = (image, mask)
        write_image(root / "images" / name, image)
        write_mask((root / "masks" / name).with_suffix(".png"), mask, palette=palette)
    written["d.png"][1][0, 0] = 4  # the largest class appears once, in a palette mask
    write_mask(root / "masks" / "d.png", written["d.png"][1], palette=True)
    return written


# --------------------------------------------------------------------------------------------
# masks:PATH
# --------------------------------------------------------------------------------------------


def test_mask_folder_items_match_the_files(tmp_path: Path) -> None:
    written = make_mask_folder(tmp_path)
    data = MaskFolderSegmentation(tmp_path)
    assert data.ids == sorted(written) and len(data) == 5
    assert data.classes == [f"class_{k}" for k in range(5)]  # largest value 4 (255 excluded) + 1
    assert data.split_indices == {}
    for i, name in enumerate(data.ids):
        check_item(data[i], *written[name])


def test_palette_masks_read_as_indices(tmp_path: Path) -> None:
    mask = np.arange(16 * 16).reshape(16, 16) % 7
    write_image(tmp_path / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / "x.png", mask, palette=True)
    with Image.open(tmp_path / "masks" / "x.png") as stored:
        assert stored.mode == "P"
        assert not np.array_equal(np.array(stored.convert("L")), mask)  # the colours are not the indices
    _, got = MaskFolderSegmentation(tmp_path)[0]
    assert np.array_equal(got.numpy(), mask)


def test_grayscale_jpeg_image_becomes_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_image(tmp_path / "images" / "g.JPG", random_image(rng, 20, 30, gray=True))
    write_mask(tmp_path / "masks" / "g.png", np.zeros((20, 30), np.int64))
    image, mask = MaskFolderSegmentation(tmp_path, num_classes=2)[0]
    with Image.open(tmp_path / "images" / "g.JPG") as stored:
        decoded = np.array(stored.convert("RGB"))
    assert image.shape == (3, 20, 30) and np.array_equal(image.numpy().transpose(1, 2, 0), decoded)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])
    assert mask.shape == (20, 30)


def test_classes_file_and_num_classes(tmp_path: Path) -> None:
    make_mask_folder(tmp_path)
    assert MaskFolderSegmentation(tmp_path, num_classes=9).classes == [f"class_{k}" for k in range(9)]
    (tmp_path / "classes.txt").write_text("bg\nred\ngreen\nblue\nbig\n\n")
    data = MaskFolderSegmentation(tmp_path)
    assert data.classes == ["bg", "red", "green", "blue", "big"]
    with pytest.raises(ValueError, match=r"num_classes must equal the 5 names of .*classes\.txt"):
        MaskFolderSegmentation(tmp_path, num_classes=6)
    (tmp_path / "classes.txt").write_text("bg\nred\nbg\n")
    with pytest.raises(ValueError, match="classes.txt must list distinct class names"):
        MaskFolderSegmentation(tmp_path)


def test_values_out_of_range_name_file_values_and_fix(tmp_path: Path) -> None:
    written = make_mask_folder(tmp_path)
    data = MaskFolderSegmentation(tmp_path, num_classes=4)  # class 4 is in d.png
    for i, name in enumerate(data.ids):
        if name != "d.png":
            check_item(data[i], *written[name])
    with pytest.raises(ValueError, match=r"\[0, 4\) or the ignore index 255; got 4 in .*masks/d\.png\. Pass num_classes > 3"):
        data[data.ids.index("d.png")]


def test_other_ignore_index_is_given_as_255(tmp_path: Path) -> None:
    mask = np.tile(np.array([[0, 1, 250], [250, 2, 0]]), (8, 5))  # 16 x 15
    write_image(tmp_path / "images" / "x.png", np.zeros((*mask.shape, 3), np.uint8))
    write_mask(tmp_path / "masks" / "x.png", mask)
    data = MaskFolderSegmentation(tmp_path, ignore_index=250)
    assert data.classes == ["class_0", "class_1", "class_2"]
    expected = np.where(mask == 250, 255, mask)
    assert np.array_equal(data[0][1].numpy(), expected)
    with pytest.raises(ValueError, match="ignore_index must not be a class index"):
        MaskFolderSegmentation(tmp_path, ignore_index=1)
    with pytest.raises(ValueError, match="num_classes must be an int in \\[1, 255\\]"):
        MaskFolderSegmentation(tmp_path, num_classes=256)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "x.jpg", np.zeros((30, 40, 3), np.uint8))
    write_mask(tmp_path / "masks" / "x.png", np.zeros((30, 39), np.int64))
    data = MaskFolderSegmentation(tmp_path, num_classes=2)
    with pytest.raises(ValueError, match=r"got 39x30 \(W x H\) from .*masks/x\.png and 40x30 in .*images/x\.jpg"):
        data[0]


def test_rgb_mask_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "masks" / "x.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"mask '.*masks/x\.png' is an RGB image"):
        MaskFolderSegmentation(tmp_path)  # the class scan reads it
    data = MaskFolderSegmentation(tmp_path, num_classes=3)  # no scan: the item refuses it
    with pytest.raises(ValueError, match=r"mask '.*masks/x\.png' is an RGB image.*palette"):
        data[0]


def test_unpaired_files_are_listed_with_counts(tmp_path: Path) -> None:
    for k in range(7):
        write_image(tmp_path / "images" / f"only{k}.jpg", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "images" / "both.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / "both.png", np.zeros((16, 16), np.int64))
    write_mask(tmp_path / "masks" / "extra" / "lonely.png", np.zeros((16, 16), np.int64))
    with pytest.raises(ValueError) as info:
        MaskFolderSegmentation(tmp_path)
    message = str(info.value)
    assert "got 7 images without mask ['only0.jpg', 'only1.jpg', 'only2.jpg', 'only3.jpg', 'only4.jpg', …]" in message
    assert "1 masks without image ['extra/lonely.png']" in message
    assert str(tmp_path / "images") in message and str(tmp_path / "masks") in message


def test_non_png_mask_duplicate_names_missing_folders_and_hidden_files(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "masks" / "x.jpg", np.zeros((16, 16), np.uint8))
    with pytest.raises(ValueError, match=r"masks must be PNG files .*masks/x\.jpg"):
        MaskFolderSegmentation(tmp_path)
    (tmp_path / "masks" / "x.jpg").unlink()
    write_mask(tmp_path / "masks" / "x.png", np.zeros((16, 16), np.int64))
    write_image(tmp_path / "images" / "x.jpg", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"unique without their extension; got 'x\.jpg' and 'x\.png'"):
        MaskFolderSegmentation(tmp_path)
    (tmp_path / "images" / "x.jpg").unlink()
    (tmp_path / "images" / ".DS_Store").write_bytes(b"junk")
    write_image(tmp_path / "images" / ".cache" / "y.png", np.zeros((16, 16, 3), np.uint8))
    write_image(tmp_path / "images" / "._x.png", np.zeros((16, 16, 3), np.uint8))
    assert MaskFolderSegmentation(tmp_path).ids == ["x.png"]
    write_image(tmp_path / "other" / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"got no directory .*other/masks"):
        MaskFolderSegmentation(tmp_path / "other")
    with pytest.raises(ValueError, match="must be an existing directory"):
        MaskFolderSegmentation(tmp_path / "missing")


def test_split_folders(tmp_path: Path) -> None:
    written = {split: make_mask_folder(tmp_path / split, seed=k) for k, split in enumerate(("train", "val"))}
    (tmp_path / "classes.txt").write_text("a\nb\nc\nd\ne\n")
    data = MaskFolderSegmentation(tmp_path)
    assert data.split_indices == {"train": [0, 1, 2, 3, 4], "val": [5, 6, 7, 8, 9]}
    assert data.ids[:2] == ["train/a.png", "train/b.png"] and data.ids[5] == "val/a.png"
    loaded = load_segmentation_data(f"masks:{tmp_path}", seed=3, test_fraction=0.4)
    assert loaded.val.ids == [f"val/{n}" for n in sorted(written["val"])]
    assert len(loaded.test) == 2 and len(loaded.train) == 3  # test cut from train (40% of 5)
    assert sorted(loaded.train.ids + loaded.test.ids) == [f"train/{n}" for n in sorted(written["train"])]
    for split in (loaded.train, loaded.val, loaded.test):
        for i, name in enumerate(split.ids):
            folder, _, rest = name.partition("/")
            check_item(split[i], *written[folder][rest])
    assert loaded.classes == ["a", "b", "c", "d", "e"] and loaded.image_size is None
    write_image(tmp_path / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="must use one layout"):
        MaskFolderSegmentation(tmp_path)


def test_split_folders_need_train(tmp_path: Path) -> None:
    make_mask_folder(tmp_path / "val")
    with pytest.raises(ValueError, match=r"split folders must include train/images; got only \['val'\]"):
        MaskFolderSegmentation(tmp_path)


# --------------------------------------------------------------------------------------------
# Random split and load_segmentation_data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 2, 7, 10, 33])
@pytest.mark.parametrize("fractions", [(0.1, 0.2), (0.0, 0.0), (0.25, 0.5), (0.0, 0.3)])
def test_random_split_indices(count: int, fractions: tuple[float, float]) -> None:
    val_fraction, test_fraction = fractions
    train, val, test = random_split_indices(count, val_fraction=val_fraction, test_fraction=test_fraction, seed=5)
    assert sorted(train + val + test) == list(range(count))
    assert train == sorted(train) and val == sorted(val) and test == sorted(test)
    assert len(test) == int(np.floor(count * test_fraction + 0.5))
    assert len(val) == min(int(np.floor(count * val_fraction + 0.5)), count - len(test))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(5)).tolist()
    assert test == sorted(order[:len(test)])  # the documented torch.Generator permutation
    again = random_split_indices(count, val_fraction=val_fraction, test_fraction=test_fraction, seed=5)
    assert again == (train, val, test)


def test_load_masks_random_split(tmp_path: Path) -> None:
    written = make_mask_folder(tmp_path)
    data = load_segmentation_data(f"masks:{tmp_path}", seed=1, val_fraction=0.2, test_fraction=0.2)
    assert isinstance(data, SegmentationData) and data.task == "segment" and data.in_channels == 3
    assert data.name == f"masks:{tmp_path}" and data.num_classes == 5 and data.image_size is None
    assert [len(s) for s in (data.train, data.val, data.test)] == [3, 1, 1]
    assert sorted(data.train.ids + data.val.ids + data.test.ids) == sorted(written)
    for split in (data.train, data.val, data.test):
        assert isinstance(split, Subset) and isinstance(split, DatasetView)
        assert split.classes == data.classes
        for i, name in enumerate(split.ids):
            check_item(split[i], *written[name])
    other = load_segmentation_data(f"masks:{tmp_path}", seed=1, val_fraction=0.2, test_fraction=0.2)
    assert other.test.ids == data.test.ids and other.val.ids == data.val.ids


def test_load_image_size_when_all_equal(tmp_path: Path) -> None:
    for k in range(4):
        write_image(tmp_path / "images" / f"{k}.png", np.zeros((24, 32, 3), np.uint8))
        write_mask(tmp_path / "masks" / f"{k}.png", np.full((24, 32), k % 2))
    assert load_segmentation_data(f"masks:{tmp_path}").image_size == (24, 32)


def test_load_bad_specs_and_options(tmp_path: Path) -> None:
    for spec in ("masks", "masks:", "yolo:x.yaml", "shapes"):
        with pytest.raises(ValueError, match="segmentation data spec must be"):
            load_segmentation_data(spec)
    with pytest.raises(ValueError, match="val_fraction \\+ test_fraction must be < 1"):
        load_segmentation_data(f"masks:{tmp_path}", val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        load_segmentation_data(f"masks:{tmp_path}", seed=-1)
    write_image(tmp_path / "images" / "x.png", np.zeros((16, 16, 3), np.uint8))
    write_mask(tmp_path / "masks" / "x.png", np.zeros((16, 16)))
    with pytest.raises(ValueError, match="training split must hold at least one image"):
        load_segmentation_data(f"masks:{tmp_path}", val_fraction=0.5, test_fraction=0.4)


# --------------------------------------------------------------------------------------------
# voc:PATH
# --------------------------------------------------------------------------------------------


def make_voc(top: Path, *, train: int = 3, val: int = 5) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``top/VOCdevkit/VOC2012`` with palette masks (values 0..20 and 255 boundaries); JPEG images."""
    root = top / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(7)
    written = {}
    names = [f"2012_{k:06d}" for k in range(train + val)]
    for k, name in enumerate(names):
        height, width = (30, 40) if k % 2 else (16, 16)
        image = random_image(rng, height, width)
        write_image(root / "JPEGImages" / f"{name}.jpg", image)
        with Image.open(root / "JPEGImages" / f"{name}.jpg") as stored:
            image = np.array(stored.convert("RGB"))  # the JPEG's decoded pixels are the oracle
        mask = random_mask(rng, height, width, 21)
        write_mask(root / "SegmentationClass" / f"{name}.png", mask, palette=True)
        written[f"{name}.jpg"] = (image, mask)
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("".join(f"{n}\n" for n in names[:train]))
    (lists / "val.txt").write_text("".join(f"{n}\n" for n in names[train:]))
    return root, written


def test_voc_items_and_roots(tmp_path: Path) -> None:
    root, written = make_voc(tmp_path)
    for path in (root, root.parent, tmp_path):
        data = VocSegmentation(path, split="val")
        assert data.root == root
    assert data.classes == ["background", *VOC_CLASSES] and len(data.classes) == 21
    assert data.classes[15] == "person"
    assert data.ids == [f"2012_{k:06d}.jpg" for k in range(3, 8)]
    for i, name in enumerate(data.ids):
        check_item(data[i], *written[name])


def test_voc_load_splits_val_in_halves(tmp_path: Path) -> None:
    make_voc(tmp_path, train=3, val=5)
    data = load_segmentation_data(f"voc:{tmp_path / 'VOCdevkit'}", seed=123)
    assert data.train.ids == [f"2012_{k:06d}.jpg" for k in range(3)]
    assert data.val.ids == [f"2012_{k:06d}.jpg" for k in range(3, 6)]  # first ceil(5 / 2)
    assert data.test.ids == [f"2012_{k:06d}.jpg" for k in range(6, 8)]
    assert data.num_classes == 21 and data.image_size is None and data.name.startswith("voc:")


def test_voc_errors_name_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VOC root must hold ImageSets/Segmentation"):
        VocSegmentation(tmp_path)
    root, _ = make_voc(tmp_path)
    with pytest.raises(ValueError, match=r"got no file .*Segmentation/trainval\.txt\. Pick one of \['train', 'val'\]"):
        VocSegmentation(root, split="trainval")
    bad = np.zeros((16, 16), np.int64)
    bad[3, 3], bad[4, 4] = 30, 21
    write_mask(root / "SegmentationClass" / "2012_000000.png", bad, palette=True)
    data = VocSegmentation(root, split="train")  # values are checked when the item is read
    with pytest.raises(ValueError, match=r"\[0, 21\) or the ignore index 255; got 21, 30 in .*2012_000000\.png\. VOC masks"):
        data[0]
    (root / "SegmentationClass" / "2012_000004.png").unlink()
    with pytest.raises(ValueError, match=r"VOC mask files must exist; got 1 missing, first '.*2012_000004\.png'"):
        VocSegmentation(root, split="val")
    (root / "JPEGImages" / "2012_000001.jpg").unlink()
    with pytest.raises(ValueError, match=r"VOC image files must exist; got 1 missing, first '.*2012_000001\.jpg'"):
        VocSegmentation(root, split="train")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2012_000000\n2012_000002\n2012_000000\n")
    with pytest.raises(ValueError, match=r"file name must be unique; got '2012_000000' again in .*train\.txt"):
        VocSegmentation(root, split="train")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"must hold at least one image id; got an empty file .*train\.txt"):
        VocSegmentation(root, split="train")


# --------------------------------------------------------------------------------------------
# coco:ANNOTATIONS.json[:IMAGES]
# --------------------------------------------------------------------------------------------


def compressed(mask: np.ndarray) -> dict:
    rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def box_mask(height: int, width: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def coco_fixture() -> dict:
    """Image 7 (30 x 40): a polygon (cat 9), an overlapping uncompressed RLE (cat 3) painted after it,
    a crowd RLE over both and over background, then a compressed RLE (cat 5) and a two-part polygon.
    Image 8 (16 x 16): no annotation. Image 9 (20 x 24, grayscale file): a crowd listed first and an
    instance inside it."""
    h, w = 30, 40
    anns = [
        {"id": 1, "image_id": 7, "category_id": 9, "segmentation": [[2, 2, 20, 2, 20, 15, 2, 15]], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 3, "segmentation": mask_to_rle(box_mask(h, w, 10, 20, 10, 30)),
         "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 9, "segmentation": mask_to_rle(box_mask(h, w, 5, 28, 15, 38)),
         "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 5, "segmentation": compressed(box_mask(h, w, 22, 30, 0, 8))},
        {"id": 5, "image_id": 7, "category_id": 3, "segmentation": [[30.5, 0, 39.5, 0, 35, 4.5], [0, 25, 5, 25, 0, 29]],
         "iscrowd": 0},
        {"id": 6, "image_id": 9, "category_id": 5, "segmentation": compressed(box_mask(20, 24, 0, 20, 0, 24)),
         "iscrowd": 1},
        {"id": 7, "image_id": 9, "category_id": 9, "segmentation": [[4, 4, 12, 4, 12, 12, 4, 12]], "iscrowd": 0},
    ]
    images = [{"id": 7, "file_name": "a.png", "height": h, "width": w},
              {"id": 8, "file_name": "sub/b.jpg", "height": 16, "width": 16},
              {"id": 9, "file_name": "c.png", "height": 20, "width": 24}]
    cats = [{"id": 9, "name": "owl"}, {"id": 3, "name": "cat"}, {"id": 5, "name": "dog"}]
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(folder: Path, data: dict, *, seed: int = 0) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pixels = {}
    for image in data["images"]:
        array = random_image(rng, image["height"], image["width"], gray=image["file_name"] == "c.png")
        path = write_image(folder / image["file_name"], array)
        with Image.open(path) as stored:
            pixels[image["file_name"]] = np.array(stored.convert("RGB"))
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path, pixels


def oracle_semantic(path: Path, image_id: int) -> np.ndarray:
    """pycocotools ``annToMask`` of each annotation, combined by the documented rule."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    info = coco.imgs[image_id]
    category_ids = sorted(coco.getCatIds())
    semantic = np.zeros((info["height"], info["width"]), np.int64)
    crowd = np.zeros_like(semantic, dtype=bool)
    labelled = np.zeros_like(semantic, dtype=bool)
    for ann in coco.dataset["annotations"]:  # file order
        if ann["image_id"] != image_id:
            continue
        pixels = coco.annToMask(ann).astype(bool)
        if ann.get("iscrowd", 0):
            crowd |= pixels
        else:
            semantic[pixels] = 1 + category_ids.index(ann["category_id"])
            labelled |= pixels
    semantic[crowd & ~labelled] = 255
    return semantic


def test_coco_semantic_masks_match_pycocotools(tmp_path: Path) -> None:
    path, pixels = write_coco(tmp_path, coco_fixture())
    data = CocoSemanticSegmentation(path)
    assert data.classes == ["background", "cat", "dog", "owl"] and data.category_ids == [3, 5, 9]
    assert data.ids == ["a.png", "sub/b.jpg", "c.png"]
    for i, image_id in enumerate((7, 8, 9)):
        expected = oracle_semantic(path, image_id)
        check_item(data[i], pixels[data.ids[i]], expected)
    a, b, c = (data[i][1].numpy() for i in range(3))
    # The rule, pixel by pixel: the later RLE (cat = 1) wins over the polygon (owl = 3); the crowd
    # region is 255 only outside every instance; the compressed RLE and both polygon parts are painted.
    assert a[12, 12] == 1 and a[3, 3] == 3 and a[8, 16] == 3 and a[25, 30] == 255 and a[12, 16] == 1 and a[3, 16] == 3
    assert a[25, 4] == 2 and a[1, 35] == 1 and a[26, 1] == 1 and a[29, 39] == 0
    assert (b == 0).all()
    assert c[8, 8] == 3 and c[0, 0] == 255 and set(np.unique(c).tolist()) == {3, 255}


def test_coco_random_instances_match_pycocotools(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    images, anns, kinds = [], [], []
    for i in range(12):
        height, width = int(rng.integers(16, 31)), int(rng.integers(16, 41))
        images.append({"id": 100 + i, "file_name": f"{i}.png", "height": height, "width": width})
        for _ in range(int(rng.integers(0, 6))):
            kind = int(rng.integers(0, 3))
            kinds.append(kind)
            if kind == 0:  # a random polygon (possibly self-intersecting, partly outside the image)
                points = rng.uniform(-3, max(height, width) + 3, size=2 * int(rng.integers(3, 7)))
                segmentation = [points.round(2).tolist()]
            else:
                blob = rng.random((height, width)) < rng.uniform(0.05, 0.6)
                segmentation = mask_to_rle(blob) if kind == 1 else compressed(blob)
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": int(rng.choice([2, 4, 8, 16])),
                         "segmentation": segmentation, "iscrowd": int(rng.random() < 0.25)})
    cats = [{"id": c, "name": f"c{c}"} for c in (16, 2, 8, 4)]
    path, pixels = write_coco(tmp_path, {"images": images, "annotations": anns, "categories": cats})
    assert sorted(set(kinds)) == [0, 1, 2] and sum(a["iscrowd"] for a in anns) >= 3  # every kind, some crowds
    data = CocoSemanticSegmentation(path)
    seen = set()
    for i, image in enumerate(images):
        expected = oracle_semantic(path, image["id"])
        check_item(data[i], pixels[image["file_name"]], expected)
        seen.update(np.unique(expected).tolist())
    assert seen == {0, 1, 2, 3, 4, 255}  # background, the four classes and crowd-only pixels all occur


def test_compressed_counts_match_pycocotools_encode() -> None:
    rng = np.random.default_rng(5)
    for trial in range(40):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = rng.random((height, width)) < rng.uniform(0, 1)
        if trial % 5 == 0:
            mask[:] = trial % 2 == 0  # all one value: a single run (or an empty first run)
        text = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode("ascii")
        assert _compressed_counts(text, "x", "f.json") == mask_to_rle(mask)["counts"]
    big = np.zeros((300, 300), bool)
    big[10:290, 5:250] = True  # runs longer than 2**15: counts of several groups
    text = mask_api.encode(np.asfortranarray(big.astype(np.uint8)))["counts"].decode("ascii")
    assert _compressed_counts(text, "x", "f.json") == mask_to_rle(big)["counts"]


@pytest.mark.parametrize(("segmentation", "pattern"), [
    ([[1, 1, 10, 1]], r"at least 3 points"),
    ([[1, 1, 10, 1, 5]], r"at least 3 points"),
    ([[1, 1, 10, 1, 5, float("nan")]], r"finite numbers"),
    ("polygon", r"must be polygons"),
    ({"size": [16, 30], "counts": [0, 300]}, r"summing to height \* width = 480; got a sum of 300"),
    ({"size": [30, 16], "counts": [0, 480]}, r"\['size'\] must be the image's \[height, width\] = \[16, 30\]"),
    ({"size": [16, 30], "counts": [10, -5, 475]}, r"non-negative integer run lengths"),
    ({"size": [16, 30], "counts": ""}, r"got a sum of 0"),
    ({"size": [16, 30], "counts": "0"}, r"got a sum of 0"),
    ({"size": [16, 30], "counts": "P"}, r"ends inside a count"),
    ({"size": [16, 30], "counts": "é"}, r"valid compressed RLE string; got the character 'é'"),
    ({"size": [16, 30], "counts": 12}, r"list of run lengths or a compressed RLE string"),
])
def test_coco_bad_segmentation_names_file_and_record(tmp_path: Path, segmentation, pattern: str) -> None:
    data = {"images": [{"id": 1, "file_name": "x.png", "height": 16, "width": 30}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]]},
                            {"id": 42, "image_id": 1, "category_id": 1, "segmentation": segmentation}],
            "categories": [{"id": 1, "name": "thing"}]}
    path, _ = write_coco(tmp_path, data)
    with pytest.raises(ValueError, match=r"annotations\[1\] \(id 42\)\['segmentation'\].*" + pattern + r".*instances\.json"):
        CocoSemanticSegmentation(path)


def test_coco_structure_errors(tmp_path: Path) -> None:
    base = coco_fixture()
    path, _ = write_coco(tmp_path, base)
    broken = json.loads(path.read_text())
    del broken["annotations"][2]["segmentation"]
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"annotations\[2\] \(id 3\)\['segmentation'\] must be present"):
        CocoSemanticSegmentation(path)
    broken = coco_fixture()
    broken["annotations"][0]["category_id"] = 77
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id 1\)\['category_id'\] must be the id of an entry"):
        CocoSemanticSegmentation(path)
    broken = coco_fixture()
    broken["images"][1]["file_name"] = "missing.jpg"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"1 missing, first '.*missing\.jpg', listed in .*instances\.json"):
        CocoSemanticSegmentation(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"instances\.json must hold a JSON object"):
        CocoSemanticSegmentation(path)


def test_coco_image_size_mismatch_at_item(tmp_path: Path) -> None:
    data = coco_fixture()
    path, _ = write_coco(tmp_path, data)
    data["images"][1]["width"] = 17  # the file is 16 wide
    path.write_text(json.dumps(data))
    dataset = CocoSemanticSegmentation(path)
    with pytest.raises(ValueError, match=r"got 17x16 \(W x H\) from the annotations of 'sub/b\.jpg' in .*instances\.json "
                                         r"and 16x16 in .*sub/b\.jpg"):
        dataset[1]


def test_coco_images_dir_and_spec(tmp_path: Path) -> None:
    path, pixels = write_coco(tmp_path / "pics", coco_fixture())
    moved = tmp_path / "ann" / "instances.json"
    moved.parent.mkdir()
    path.rename(moved)
    with pytest.raises(ValueError, match="image files must exist"):
        CocoSemanticSegmentation(moved)  # default images dir: the JSON's folder
    data = load_segmentation_data(f"coco:{moved}:{tmp_path / 'pics'}", seed=0, val_fraction=0.34, test_fraction=0.33)
    assert [len(s) for s in (data.train, data.val, data.test)] == [1, 1, 1]
    assert sorted(data.train.ids + data.val.ids + data.test.ids) == ["a.png", "c.png", "sub/b.jpg"]
    assert data.classes == ["background", "cat", "dog", "owl"] and data.image_size is None
    for split in (data.train, data.val, data.test):
        image, _ = split[0]
        assert np.array_equal(image.numpy().transpose(1, 2, 0), pixels[split.ids[0]])


def test_coco_without_pycocotools_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = write_coco(tmp_path, coco_fixture())
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(ImportError, match=r"pip install 'visionbench\[coco\]'"):
        CocoSemanticSegmentation(path)


def test_a_decompression_bomb_mask_is_a_clear_error(tmp_path: Path) -> None:
    """A 0.4 MB PNG declaring 20,000 x 20,000 pixels gave a DecompressionBombError traceback (issue 18)."""
    import struct
    import zlib

    from visionbench.data.masks import read_mask

    width = height = 20_000
    compressor, data = zlib.compressobj(9), b""
    row = b"\x00" * (width + 1)
    for _ in range(height):
        data += compressor.compress(row)
    data += compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"bomb\.png' must be at most .* pixels.*400000000 pixels"):
        read_mask(path)
