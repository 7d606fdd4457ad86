"""Tests for visionbench/data/multilabel_folder.py (``--multilabel --data folder:ROOT``): an image in
each of its label folders, ``_none/`` for images without a label; tiny 16x16 PNGs written into tmp_path."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import visionbench
from visionbench.data import load_dataset
from visionbench.data.folder import ImageFileDataset, load_folder
from visionbench.data.multilabel import MultiLabelImageDataset, is_multilabel
from visionbench.data.multilabel_folder import NO_LABEL, load_multilabel_folder
from visionbench.engine import rundir
from visionbench.engine.inference_spec import read_inference_spec

# Label sets of the pool: each name is one image, written into every folder of its set (same bytes).
TRUTH = {
    "a0.png": {"cat"}, "a1.png": {"cat"}, "b0.png": {"dog"}, "b1.png": {"dog"}, "c0.png": {"sofa"},
    "both.png": {"cat", "sofa"}, "all.png": {"cat", "dog", "sofa"}, "nothing.png": set(),
}


def png_bytes(name: str, side: int = 16) -> bytes:
    """A noise PNG whose pixels follow from ``name`` (so equal names give equal bytes)."""
    pixels = np.random.default_rng(zlib.crc32(name.encode())).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_tree(root: Path, truth: dict[str, set[str]]) -> Path:
    """``root/<label>/<name>`` for each label of each name, ``root/_none/<name>`` for names without one."""
    for name, labels in truth.items():
        for folder in sorted(labels) or [NO_LABEL]:
            (root / folder / name).parent.mkdir(parents=True, exist_ok=True)
            (root / folder / name).write_bytes(png_bytes(name))
    return root


def label_sets(data) -> dict[str, set[str]]:
    """Sample id → its set of label names, over the three splits."""
    found = {}
    for split in (data.train, data.val, data.test):
        for sample_id, target in zip(split.ids, split.targets().tolist(), strict=True):
            assert sample_id not in found
            found[sample_id] = {name for name, on in zip(data.classes, target, strict=True) if on}
    return found


def load(root: Path, **kwargs):
    split = {"seed": 0, "val_fraction": 0.0, "test_fraction": 0.0} | kwargs
    return load_multilabel_folder(str(root), **split)


def test_label_sets_are_the_folders_an_image_appears_in(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pool", TRUTH)
    data = load(root)
    assert data.classes == ["cat", "dog", "sofa"] and data.in_channels == 3 and data.image_size == (16, 16)
    assert data.name == f"folder:{root}" and is_multilabel(data) and isinstance(data.train, MultiLabelImageDataset)
    assert label_sets(data) == TRUTH  # ids are the names relative to the label folder
    assert data.train.ids == sorted(TRUTH)
    image, target = data.train[data.train.ids.index("both.png")]
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
    assert target.dtype == torch.float32 and target.tolist() == [1.0, 0.0, 1.0]
    assert data.train[data.train.ids.index("nothing.png")][1].tolist() == [0.0, 0.0, 0.0]
    # The dispatch: folder: with multilabel=True reads label sets; the random split is seeded.
    split = {"seed": 0, "val_fraction": 0.25, "test_fraction": 0.25}
    again = load_dataset(f"folder:{root}", multilabel=True, **split)
    assert label_sets(again) == TRUTH and (len(again.train), len(again.val), len(again.test)) == (4, 2, 2)
    assert load_dataset(f"folder:{root}", multilabel=True, **split).test.ids == again.test.ids
    assert any(load(root, **{**split, "seed": s}).test.ids != again.test.ids for s in (1, 2, 3))


def test_symlinks_hard_links_and_nested_names(tmp_path: Path) -> None:
    root = tmp_path / "links"
    write_tree(root, {"x.png": {"cat"}, "y.png": {"dog"}, "sub/z.png": {"cat", "dog"}})
    os.symlink(root / "cat" / "x.png", root / "dog" / "x.png")  # x: cat and dog, through a symlink
    (root / "sofa").mkdir()
    os.link(root / "dog" / "y.png", root / "sofa" / "y.png")  # y: dog and sofa, through a hard link
    os.symlink(Path("..") / "cat" / "x.png", root / "sofa" / "x.png")  # a relative symlink too
    data = load(root)
    assert data.classes == ["cat", "dog", "sofa"]
    assert label_sets(data) == {"x.png": {"cat", "dog", "sofa"}, "y.png": {"dog", "sofa"}, "sub/z.png": {"cat", "dog"}}


def test_same_name_with_different_bytes_is_an_error_naming_both(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "clash", {"p.png": {"cat"}, "q.png": {"dog"}})
    (root / "dog" / "p.png").write_bytes(png_bytes("another photo"))
    with pytest.raises(ValueError, match="identical bytes") as error:
        load(root)
    message = str(error.value)
    assert str(root / "cat" / "p.png") in message and str(root / "dog" / "p.png") in message
    assert "Rename one of them" in message


def test_an_image_in_none_and_in_a_label_folder_is_an_error(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "both", {"p.png": {"cat"}, "q.png": set()})
    shutil.copy(root / "cat" / "p.png", root / NO_LABEL / "p.png")
    with pytest.raises(ValueError, match=re.escape(f"an image in {NO_LABEL}/ must have no label")) as error:
        load(root)
    assert str(root / NO_LABEL / "p.png") in str(error.value) and str(root / "cat" / "p.png") in str(error.value)


def test_only_none_is_an_error(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "empty", {"q.png": set()})
    with pytest.raises(ValueError, match="at least one label folder besides _none"):
        load(root)


def test_split_layout(tmp_path: Path) -> None:
    root = tmp_path / "splits"
    write_tree(root / "train", TRUTH)
    write_tree(root / "test", {"t0.png": {"dog"}, "t1.png": {"cat", "dog"}, "t2.png": set()})
    data = load(root, val_fraction=0.25, test_fraction=0.25)
    assert data.classes == ["cat", "dog", "sofa"]
    assert label_sets(data) == {**{f"train/{n}": s for n, s in TRUTH.items()},
                                "test/t0.png": {"dog"}, "test/t1.png": {"cat", "dog"}, "test/t2.png": set()}
    assert data.test.ids == ["test/t0.png", "test/t1.png", "test/t2.png"]  # given, not cut from train
    assert (len(data.train), len(data.val)) == (6, 2)  # val cut from train/ at random
    write_tree(root / "val", {"v.png": {"owl"}})
    with pytest.raises(ValueError, match=r"label folders of val/ must also exist in train/; got \['owl'\]"):
        load(root)


def test_folder_without_multilabel_is_single_label_as_before(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "pool", TRUTH)
    split = {"seed": 0, "val_fraction": 0.0, "test_fraction": 0.0}
    data = load_dataset(f"folder:{root}", **split)
    assert isinstance(data.train, ImageFileDataset) and not is_multilabel(data)
    assert data.classes == [NO_LABEL, "cat", "dog", "sofa"]  # _none is a class like any other folder
    reference = load_folder(root, **split)
    assert data.train.ids == reference.train.ids and torch.equal(data.train.targets(), reference.train.targets())
    # An image in two folders is two samples, one per class, as today.
    labels = dict(zip(data.train.ids, data.train.targets().tolist(), strict=True))
    assert labels["cat/both.png"] == 1 and labels["sofa/both.png"] == 3 and labels[f"{NO_LABEL}/nothing.png"] == 0
    assert len(data.train) == sum(max(len(s), 1) for s in TRUTH.values())


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, set[str]], visionbench.TrainResult]:
    """A one-epoch multi-label run on a 32-image label folder tree."""
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    truth = {f"{i:02d}.png": {name for name in ("cat", "dog", "sofa") if rng.random() < 0.5} for i in range(32)}
    write_tree(root, truth)
    result = visionbench.train(data=f"folder:{root}", multilabel=True, model="mlp", epochs=1, image_size=16,
                               batch_size=8, augment="none", val_fraction=0.25, test_fraction=0.25, workers=0,
                               out=tmp_path_factory.mktemp("ml") / "run", quiet=True)
    return root, truth, result


def test_train_on_a_label_folder_writes_map_and_label_sets(folder_run) -> None:
    root, truth, result = folder_run
    metrics = json.loads((result.run_dir / rundir.METRICS).read_text())
    assert metrics["multilabel"] is True and metrics["classes"] == ["cat", "dog", "sofa"]
    assert 0.0 <= metrics["mAP"]["value"] <= 1.0 and metrics["num_samples"] == 8
    with open(result.run_dir / rundir.PREDICTIONS, newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 8
    for row in table:  # ids are the images' names; labels their folders
        assert set(filter(None, row["labels"].split(";"))) == truth[row["id"]]
    assert json.loads((result.run_dir / rundir.INFERENCE).read_text())["multilabel"] is True


def test_predict_a_label_folder_run_from_inference_json(folder_run, tmp_path: Path) -> None:
    root, truth, result = folder_run
    files = [root / "cat" / name for name in sorted(n for n, s in truth.items() if "cat" in s)[:3]]
    here = visionbench.predict(result.run_dir, files, out=tmp_path / "here")
    with open(tmp_path / "here" / "predictions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["file", "labels", "prob_cat", "prob_dog", "prob_sofa"] and len(table) == 3
    for row in table:
        chosen = set(filter(None, row["labels"].split(";")))
        assert chosen == {name for name in ("cat", "dog", "sofa") if float(row[f"prob_{name}"]) >= 0.5}
    # inference.json, not config.yaml, says the run is multi-label.
    moved = shutil.copytree(result.run_dir, tmp_path / "moved")
    config = yaml.safe_load((moved / rundir.CONFIG).read_text())
    (moved / rundir.CONFIG).write_text(yaml.safe_dump({**config, "multilabel": False}))
    assert read_inference_spec(moved).multilabel is True
    assert visionbench.predict(moved, files, out=tmp_path / "away").rows == here.rows
    # A run written before the field: its config.yaml says it.
    old = shutil.copytree(result.run_dir, tmp_path / "old")
    raw = json.loads((old / rundir.INFERENCE).read_text())
    (old / rundir.INFERENCE).write_text(json.dumps({k: v for k, v in raw.items() if k != "multilabel"}))
    assert read_inference_spec(old).multilabel is False
    assert visionbench.predict(old, files, out=tmp_path / "old-pred").rows == here.rows
