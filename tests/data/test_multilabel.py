"""Tests for visionbench/data/multilabel.py: label CSVs and tiny PNGs written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from visionbench.data import load_dataset, parse_data_spec
from visionbench.data.multilabel import MultiLabelImageDataset, is_multilabel, load_multilabel_csv, split_csv_spec


def write_images(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (6, 4), (10, 20, 30)).save(root / name)


def load(spec: str, **kwargs):
    split = {"seed": 0, "val_fraction": 0.2, "test_fraction": 0.2} | kwargs
    return load_multilabel_csv(spec, **split)


def test_list_layout(tmp_path: Path) -> None:
    names = [f"img/{i:02d}.png" for i in range(10)]
    write_images(tmp_path, names)
    rows = ["image,labels"] + [f"{n},{'cat;sofa' if i % 2 else 'dog'}" for i, n in enumerate(names[:-1])] + [f"{names[-1]},"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load(f"{tmp_path}/labels.csv")
    assert data.classes == ["cat", "dog", "sofa"] and data.in_channels == 3 and data.image_size == (4, 6)
    assert isinstance(data.train, MultiLabelImageDataset) and is_multilabel(data)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 2)
    every = {i: t for s in (data.train, data.val, data.test) for i, t in zip(s.ids, s.targets().tolist(), strict=True)}
    assert every["img/01.png"] == [1.0, 0.0, 1.0] and every["img/00.png"] == [0.0, 1.0, 0.0]
    assert every["img/09.png"] == [0.0, 0.0, 0.0]  # an empty cell: no label
    image, target = data.train[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 4, 6) and target.dtype == torch.float32
    # The split is seeded: the same twice, another with another seed.
    assert load(f"{tmp_path}/labels.csv").test.ids == data.test.ids
    assert any(load(f"{tmp_path}/labels.csv", seed=s).test.ids != data.test.ids for s in (1, 2, 3))


def test_column_layout_and_images_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "pics", ["a.png", "b.png", "c.png", "d.png", "e.png"])
    (tmp_path / "labels.csv").write_text("image,sky,tree\na.png,1,0\nb.png,0,1\n\nc.png,1,1\nd.png,0,0\ne.png,1,0\n")
    data = load_dataset(f"csv:{tmp_path}/labels.csv:{tmp_path}/pics", seed=0, val_fraction=0.2, test_fraction=0.2)
    assert data.classes == ["sky", "tree"] and data.name == f"csv:{tmp_path}/labels.csv:{tmp_path}/pics"
    assert sum(len(s) for s in (data.train, data.val, data.test)) == 5
    assert parse_data_spec(f"csv:{tmp_path}/labels.csv") == ("csv", f"{tmp_path}/labels.csv")


def test_split_csv_spec() -> None:
    assert split_csv_spec("/d/labels.csv") == (Path("/d/labels.csv"), Path("/d"))
    assert split_csv_spec("/d/labels.csv:/images") == (Path("/d/labels.csv"), Path("/images"))


@pytest.mark.parametrize(("text", "match"), [
    ("file,labels\na.png,x\n", r"header must start with `image`.*labels\.csv:1"),
    ("image,labels\na.png,x;;y\n", r"empty name.*labels\.csv:2"),
    ("image,labels\na.png,x\na.png,y\n", r"listed once.*labels\.csv:3"),
    ("image,labels\na.png,x,extra\n", r"2 cells.*labels\.csv:2"),
    ("image,labels\n,x\n", r"empty cell.*labels\.csv:2"),
    ("image,sky,tree\na.png,1,yes\n", r"0 or 1; got 'yes'.*labels\.csv:2"),
    ("image,sky,sky\na.png,1,0\n", r"distinct.*labels\.csv:1"),
    ("image,labels\na.png,\n", r"at least one label"),
    ("image,labels\n", r"at least one image"),
    ("image,labels\na.png,x\n\nmissing.png,y\n", r"'missing\.png' not found.*labels\.csv:4.*remove the row"),
])
def test_bad_csv_names_file_line_and_fix(tmp_path: Path, text: str, match: str) -> None:
    write_images(tmp_path, ["a.png"])
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(ValueError, match=match):
        load(f"{tmp_path}/labels.csv", val_fraction=0.0, test_fraction=0.0)


def test_missing_csv_and_unlisted_images(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="existing file"):
        load(f"{tmp_path}/nope.csv")
    write_images(tmp_path, ["a.png", "b.png", "extra/c.png"])
    (tmp_path / "labels.csv").write_text("image,labels\na.png,x\nb.png,y\n")
    with pytest.warns(UserWarning, match=r"1 images .* not listed .*extra/c\.png"):
        data = load(f"{tmp_path}/labels.csv", val_fraction=0.0, test_fraction=0.0)
    assert sorted(data.train.ids) == ["a.png", "b.png"]
