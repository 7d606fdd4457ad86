"""Tests for visionbench/data/detection_formats.py: tiny COCO, VOC and YOLO datasets written into tmp_path.

Oracles: hand-computed boxes for each format's coordinate convention, pycocotools' ``COCO`` and
``COCO.loadRes`` for the JSON written, and round trips between the formats.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import tv_tensors

from visionbench.data.detection_formats import (
    CocoDetection,
    VocDetection,
    YoloDetection,
    convert,
    read_detection,
    write_coco_ground_truth,
    write_coco_results,
    write_voc,
    write_yolo,
)
from visionbench.metrics.detection import load_coco_ground_truth, load_coco_results

SIZES = {"a.png": (40, 30), "b.png": (25, 50), "c.png": (16, 16)}  # file -> (W, H)


def write_image(path: Path, size: tuple[int, int], colour=(200, 30, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def coco_dict() -> dict:
    """Three images, categories with non-contiguous ids, a crowd object, an area unlike the box's."""
    images = [{"id": 10 + i, "file_name": name, "width": w, "height": h} for i, (name, (w, h)) in enumerate(SIZES.items())]
    anns = [
        {"id": 1, "image_id": 10, "category_id": 5, "bbox": [1.5, 2.0, 10.25, 8.0], "area": 70.0, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 1, "bbox": [20, 5, 15, 20], "area": 300.0, "iscrowd": 1},
        {"id": 3, "image_id": 11, "category_id": 9, "bbox": [0, 0, 25, 50], "area": 1250.0, "iscrowd": 0},
        {"id": 4, "image_id": 10, "category_id": 9, "bbox": [3, 4, 5, 6], "area": 30.0, "iscrowd": 0},
    ]
    cats = [{"id": 9, "name": "owl"}, {"id": 1, "name": "cat"}, {"id": 5, "name": "dog"}]
    return {"images": images, "annotations": anns, "categories": cats}


def make_coco(root: Path, data: dict | None = None) -> Path:
    for name, size in SIZES.items():
        write_image(root / "images" / name, size)
    path = root / "instances.json"
    path.write_text(json.dumps(coco_dict() if data is None else data))
    return path


VOC_XML = """<annotation><filename>{file}</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
{objects}</annotation>"""
VOC_OBJECT = ("<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{b[0]}</xmin>"
              "<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>")


def make_voc(root: Path, objects: dict | None = None) -> Path:
    """VOC root with images a, b (PNG) and c (JPEG named by id only, no <filename> match)."""
    objects = objects if objects is not None else {
        "a": [("cat", 0, (1, 1, 40, 30)), ("dog", 1, (5, 6, 12, 20))],
        "b": [("dog", 0, (2.5, 3, 20, 44))],
        "c": [],
    }
    for stem, objs in objects.items():
        w, h = SIZES[f"{stem}.png"]
        file = f"{stem}.png" if stem != "c" else "missing.png"
        if stem == "c":
            write_image(root / "JPEGImages" / "c.jpg", (w, h))
        else:
            write_image(root / "JPEGImages" / file, (w, h))
        body = "".join(VOC_OBJECT.format(name=n, difficult=d, b=b) for n, d, b in objs)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(VOC_XML.format(file=file, w=w, h=h, objects=body))
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("".join(f"{s}\n" for s in objects))
    (root / "classes.txt").write_text("cat\ndog\nowl\n")
    return root


def make_yolo(root: Path, labels: dict | None = None, names="{0: cat, 1: dog, 2: owl}") -> Path:
    labels = labels if labels is not None else {"a": "1 0.5 0.5 0.5 0.4\n0 0.25 0.25 0.1 0.2\n", "b": "2 0.5 0.5 1 1\n",
                                                "c": ""}
    for stem, text in labels.items():
        write_image(root / "images" / "train" / f"{stem}.png", SIZES[f"{stem}.png"])
        (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "train" / f"{stem}.txt").write_text(text)
    path = root / "data.yaml"
    path.write_text(f"path: .\ntrain: images/train\nnames: {names}\n")
    return path


def check_contract(dataset) -> None:
    """Every sample follows the detection sample contract."""
    for i in range(len(dataset)):
        image, target = dataset[i]
        assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape[0] == 3
        boxes = target["boxes"]
        assert isinstance(boxes, tv_tensors.BoundingBoxes) and boxes.format == tv_tensors.BoundingBoxFormat.XYXY
        assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
        assert tuple(boxes.canvas_size) == tuple(image.shape[1:])
        n = boxes.shape[0]
        assert target["labels"].dtype == torch.int64 and target["labels"].shape == (n,)
        assert ((target["labels"] >= 0) & (target["labels"] < len(dataset.classes))).all()
        assert target["iscrowd"].dtype == torch.bool and target["iscrowd"].shape == (n,)
        assert target["difficult"].dtype == torch.bool and target["difficult"].shape == (n,)
        assert target["area"].dtype == torch.float32 and target["area"].shape == (n,)
        assert isinstance(target["image_id"], int)
        assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def boxes_by_file(dataset, *, skip_flagged: bool = False) -> dict[str, tuple[np.ndarray, list[str]]]:
    """file name -> (boxes, class names), for comparing datasets across formats."""
    out = {}
    for record in dataset.annotations().records:
        keep = ~(record.iscrowd | record.difficult) if skip_flagged else np.ones(len(record.labels), bool)
        out[Path(record.file_name).stem] = (record.boxes[keep], [dataset.classes[k] for k in record.labels[keep]])
    return out


# --------------------------------------------------------------------------------------------
# Readers: the contract and each format's coordinate convention
# --------------------------------------------------------------------------------------------


def test_coco_reader_contract_and_mapping(tmp_path: Path) -> None:
    data = CocoDetection(make_coco(tmp_path))  # images/ next to the JSON is the default images folder
    check_contract(data)
    assert (data.classes, data.category_ids) == (["cat", "dog", "owl"], [1, 5, 9])
    assert len(data) == 3 and data.ids == ["a.png", "b.png", "c.png"]
    image, target = data[0]
    assert image.shape == (3, 30, 40) and image[:, 0, 0].tolist() == [200, 30, 60]
    assert target["image_id"] == 10
    expected = [[1.5, 2.0, 11.75, 10.0], [20, 5, 35, 25], [3, 4, 8, 10]]
    assert torch.equal(target["boxes"].as_subclass(torch.Tensor), torch.tensor(expected, dtype=torch.float32))
    assert target["labels"].tolist() == [1, 0, 2]  # dog, cat, owl in file order
    assert target["iscrowd"].tolist() == [False, True, False]
    assert target["area"].tolist() == [70.0, 300.0, 30.0]  # the file's area, not the box's
    _, empty = data[2]
    assert empty["boxes"].shape == (0, 4) and empty["image_id"] == 12
    assert data.num_clamped == 0


def test_coco_spec_with_images_dir_and_missing_size(tmp_path: Path) -> None:
    raw = coco_dict()
    for image in raw["images"]:
        del image["width"], image["height"]  # read from the image header instead
    path = make_coco(tmp_path, raw)
    data = read_detection(f"coco:{path}:{tmp_path / 'images'}")
    assert [(r.height, r.width) for r in data.annotations().records] == [(h, w) for w, h in SIZES.values()]
    check_contract(data)


def test_voc_reader_contract_convention_difficult(tmp_path: Path) -> None:
    data = VocDetection(make_voc(tmp_path))
    check_contract(data)
    assert (data.classes, data.category_ids) == (["cat", "dog", "owl"], [1, 2, 3])
    _, target = data[0]
    # 1-based inclusive pixels: (xmin - 1, ymin - 1, xmax, ymax); (1, 1, W, H) is the whole image.
    assert target["boxes"].tolist() == [[0, 0, 40, 30], [4, 5, 12, 20]]
    assert target["labels"].tolist() == [0, 1]
    assert target["difficult"].tolist() == [False, True]
    assert target["iscrowd"].tolist() == [False, False]
    assert target["area"].tolist() == [1200.0, 120.0]
    _, target_b = data[1]
    assert target_b["boxes"].tolist() == [[1.5, 2, 20, 44]]
    _, target_c = data[2]  # <filename> does not exist: falls back to <id>.jpg
    assert target_c["boxes"].shape == (0, 4) and data.ids[2] == "c.jpg"
    assert [data[i][1]["image_id"] for i in range(3)] == [0, 1, 2]


def test_voc_default_classes_are_pascal(tmp_path: Path) -> None:
    root = make_voc(tmp_path, {"a": [("person", 0, (1, 1, 5, 5))]})
    (root / "classes.txt").unlink()
    data = VocDetection(root)
    assert len(data.classes) == 20 and data.classes[data[0][1]["labels"].item()] == "person"


def test_yolo_reader_contract_and_convention(tmp_path: Path) -> None:
    data = YoloDetection(make_yolo(tmp_path))
    check_contract(data)
    assert (data.classes, data.category_ids) == (["cat", "dog", "owl"], [0, 1, 2])
    _, target = data[0]  # a.png is 40 x 30
    expected = [[10, 9, 30, 21], [8, 4.5, 12, 10.5]]
    assert torch.allclose(target["boxes"].as_subclass(torch.Tensor), torch.tensor(expected), atol=1e-5)
    assert target["labels"].tolist() == [1, 0]
    assert torch.allclose(target["area"], torch.tensor([240.0, 24.0]))
    assert data[2][1]["boxes"].shape == (0, 4)  # empty label file: no objects


def test_yolo_names_list_missing_label_file_and_sparse_dict(tmp_path: Path) -> None:
    path = make_yolo(tmp_path, {"a": "0 0.5 0.5 0.2 0.2\n", "b": ""}, names="[x, y]")
    (tmp_path / "labels" / "train" / "b.txt").unlink()  # missing label file: no objects (Ultralytics)
    data = YoloDetection(path)
    assert data.classes == ["x", "y"] and data[1][1]["labels"].numel() == 0
    path = make_yolo(tmp_path / "sparse", {"a": "7 0.5 0.5 0.2 0.2\n"}, names="{3: p, 7: q}")
    data = YoloDetection(path)
    assert (data.classes, data.category_ids, data[0][1]["labels"].tolist()) == (["p", "q"], [3, 7], [1])


def test_annotations_do_not_decode_images(tmp_path: Path) -> None:
    path = make_coco(tmp_path)
    data = CocoDetection(path)
    (tmp_path / "images" / "a.png").write_bytes(b"not an image")
    assert len(data.annotations().records[0].labels) == 3  # still fine: no decoding
    with pytest.raises(ValueError, match=r"readable image file.*a\.png"):
        data[0]


def test_image_size_mismatch_is_refused_at_getitem(tmp_path: Path) -> None:
    data = CocoDetection(make_coco(tmp_path))
    write_image(tmp_path / "images" / "b.png", (26, 50))
    with pytest.raises(ValueError, match=r"image size must match.*b\.png"):
        data[1]


def test_boxes_outside_the_image_are_clamped_and_counted(tmp_path: Path) -> None:
    raw = coco_dict()
    raw["annotations"][0]["bbox"] = [-3.0, 2.0, 10.0, 40.0]  # a.png is 40 x 30
    raw["annotations"][2]["bbox"] = [0, 0, 25.0005, 50]  # within CLAMP_TOLERANCE: clamped, not counted
    with pytest.warns(UserWarning, match="1 boxes .* clamped"):
        data = CocoDetection(make_coco(tmp_path, raw))
    assert data.num_clamped == 1
    assert data[0][1]["boxes"][0].tolist() == [0, 2, 7, 30]
    assert data[1][1]["boxes"][0].tolist() == [0, 0, 25, 50]


# --------------------------------------------------------------------------------------------
# Writers and pycocotools
# --------------------------------------------------------------------------------------------


def test_coco_ground_truth_written_is_read_back_and_by_pycocotools(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    data = CocoDetection(make_coco(tmp_path / "src"))
    out = write_coco_ground_truth(data, tmp_path / "gt.json")
    coco = COCO(str(out))
    assert sorted(coco.getCatIds()) == [1, 5, 9] and sorted(coco.getImgIds()) == [10, 11, 12]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[10]))
    assert [a["bbox"] for a in anns] == [[1.5, 2, 10.25, 8], [20, 5, 15, 20], [3, 4, 5, 6]]
    assert [a["iscrowd"] for a in anns] == [0, 1, 0] and [a["area"] for a in anns] == [70, 300, 30]
    gt = load_coco_ground_truth(out)
    assert gt.ann_id.min() == 1 and gt.iscrowd.tolist() == [False, True, False, False]


def test_coco_results_accepted_by_pycocotools_loadres(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    data = CocoDetection(make_coco(tmp_path / "src"))
    gt_path = write_coco_ground_truth(data, tmp_path / "gt.json")
    rng = np.random.default_rng(0)
    predictions = []
    for i in range(len(data)):
        xy = rng.uniform(0, 10, (5, 2))
        boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(0, 10, (5, 2))], 1), dtype=torch.float32)
        scores = torch.tensor(rng.uniform(0, 1, 5), dtype=torch.float32)
        scores[1] = scores[0]  # a tie must stay a tie
        predictions.append({"image_id": data[i][1]["image_id"], "boxes": boxes, "scores": scores,
                            "labels": torch.tensor([0, 1, 2, 1, 0])})
    n = write_coco_results(predictions, tmp_path / "res.json", category_ids=data.category_ids)
    assert n == 15
    coco = COCO(str(gt_path))
    res = coco.loadRes(str(tmp_path / "res.json"))
    rows = json.loads((tmp_path / "res.json").read_text())
    assert len(res.getAnnIds()) == 15 and [r["category_id"] for r in rows[:5]] == [1, 5, 9, 5, 1]
    written = np.array([r["bbox"] for r in rows])
    expected = torch.cat([p["boxes"] for p in predictions]).double().numpy()
    expected[:, 2:] -= expected[:, :2]
    assert np.array_equal(written, expected)  # exact: what the file says is what was evaluated
    scores = np.array([r["score"] for r in rows], dtype=np.float32)
    assert np.array_equal(scores, torch.cat([p["scores"] for p in predictions]).numpy())  # float32-exact
    assert rows[0]["score"] == rows[1]["score"]
    assert load_coco_results(tmp_path / "res.json", load_coco_ground_truth(gt_path)).score.size == 15


def test_coco_results_accept_other_box_formats_and_empty(tmp_path: Path) -> None:
    boxes = tv_tensors.BoundingBoxes([[1.0, 2.0, 3.0, 4.0]], format="XYWH", canvas_size=(10, 10))
    write_coco_results([{"image_id": 3, "boxes": boxes, "labels": [0], "scores": [0.5]}], tmp_path / "r.json",
                       category_ids=[7])
    assert json.loads((tmp_path / "r.json").read_text()) == [
        {"image_id": 3, "category_id": 7, "bbox": [1, 2, 3, 4], "score": 0.5}]
    assert write_coco_results([], tmp_path / "e.json", category_ids=[7]) == 0
    assert json.loads((tmp_path / "e.json").read_text()) == []


@pytest.mark.parametrize(("change", "match"), [
    ({"boxes": [[1.0, 2.0, float("nan"), 4.0]]}, "finite box"),
    ({"boxes": [[5.0, 2.0, 3.0, 4.0]]}, "x2 >= x1"),
    ({"scores": [float("inf")]}, "score 0 must be finite"),
    ({"labels": [1]}, r"class index in \[0, 1\)"),
    ({"labels": [0, 0]}, "same length"),
])
def test_coco_results_bad_predictions(tmp_path: Path, change: dict, match: str) -> None:
    prediction = {"image_id": 3, "boxes": [[1.0, 2.0, 3.0, 4.0]], "labels": [0], "scores": [0.5], **change}
    with pytest.raises(ValueError, match=match):
        write_coco_results([prediction], tmp_path / "r.json", category_ids=[7])
    assert not (tmp_path / "r.json").exists()


# --------------------------------------------------------------------------------------------
# Round trips between formats
# --------------------------------------------------------------------------------------------


def assert_same_boxes(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key][1] == b[key][1], key
        assert a[key][0].shape == b[key][0].shape and np.abs(a[key][0] - b[key][0]).max(initial=0) <= atol, key


def test_coco_to_yolo_to_coco_keeps_boxes_to_yolo_precision(tmp_path: Path) -> None:
    src = CocoDetection(make_coco(tmp_path / "src"))
    yolo_spec = convert(f"coco:{tmp_path / 'src' / 'instances.json'}", "yolo", tmp_path / "yolo", split="val")
    assert yolo_spec == f"yolo:{tmp_path / 'yolo' / 'data.yaml'}"
    yolo = read_detection(yolo_spec, split="val")
    check_contract(yolo)
    assert yolo.classes == src.classes
    back = read_detection(convert(yolo_spec, "coco", tmp_path / "back", split="val"))
    check_contract(back)
    # 6-decimal normalised values: each corner within 7.5e-7 * image side (50 px here).
    assert_same_boxes(boxes_by_file(src, skip_flagged=True), boxes_by_file(back), atol=7.5e-7 * 50 + 1e-9)
    assert all(not r.iscrowd.any() for r in back.annotations().records)  # crowd objects are not written to YOLO


def test_coco_to_voc_to_coco_keeps_boxes_and_crowd(tmp_path: Path) -> None:
    src = CocoDetection(make_coco(tmp_path / "src"))
    voc_spec = convert(f"coco:{tmp_path / 'src' / 'instances.json'}", "voc", tmp_path / "voc")
    voc = read_detection(voc_spec)
    check_contract(voc)
    assert voc.classes == src.classes and voc[0][1]["iscrowd"].tolist() == [False, True, False]
    back = read_detection(convert(voc_spec, "coco", tmp_path / "back"))
    assert_same_boxes(boxes_by_file(src), boxes_by_file(back), atol=0.005 + 1e-9)  # VOC's 2 decimals
    assert back[0][1]["iscrowd"].tolist() == [False, True, False]
    assert (tmp_path / "back" / "images" / "a.png").read_bytes() == (tmp_path / "src" / "images" / "a.png").read_bytes()


def test_voc_difficult_survives_coco_and_back(tmp_path: Path) -> None:
    src = VocDetection(make_voc(tmp_path / "src"))
    coco_spec = convert(f"voc:{tmp_path / 'src'}", "coco", tmp_path / "coco")
    coco = read_detection(coco_spec)
    assert coco[0][1]["difficult"].tolist() == [False, True]
    json_rows = json.loads(Path(coco_spec[5:]).read_text())["annotations"]
    assert [a["difficult"] for a in json_rows] == [0, 1, 0]
    back = read_detection(convert(coco_spec, "voc", tmp_path / "voc", images="symlink"))
    assert (tmp_path / "voc" / "JPEGImages" / "a.png").is_symlink()
    assert back[0][1]["difficult"].tolist() == [False, True]
    assert_same_boxes(boxes_by_file(src), boxes_by_file(back), atol=1e-9)  # integral and .5 boxes are exact


def test_yolo_to_voc_to_yolo_and_write_functions(tmp_path: Path) -> None:
    src = YoloDetection(make_yolo(tmp_path / "src"))
    root = write_voc(src, tmp_path / "voc", split="train")
    voc = VocDetection(root, split="train")
    assert_same_boxes(boxes_by_file(src), boxes_by_file(voc), atol=0.005 + 1e-9)
    yaml_path = write_yolo(voc, tmp_path / "yolo", split="train", images="none")
    assert not (tmp_path / "yolo" / "images").exists()
    labels = (tmp_path / "yolo" / "labels" / "train" / "a.txt").read_text().splitlines()
    assert labels == ["1 0.500000 0.500000 0.500000 0.400000", "0 0.250000 0.250000 0.100000 0.200000"]
    assert (tmp_path / "yolo" / "labels" / "train" / "c.txt").read_text() == ""  # no objects: empty file
    assert yaml_path.name == "data.yaml"


def test_writing_a_second_split_adds_it(tmp_path: Path) -> None:
    src = CocoDetection(make_coco(tmp_path / "src"))
    write_yolo(src, tmp_path / "y", split="train")
    write_yolo(src, tmp_path / "y", split="val")
    assert len(YoloDetection(tmp_path / "y" / "data.yaml", split="val")) == 3
    other = CocoDetection(make_coco(tmp_path / "src2", {**coco_dict(), "categories": [
        {"id": 9, "name": "emu"}, {"id": 1, "name": "cat"}, {"id": 5, "name": "dog"}]}))
    with pytest.raises(ValueError, match="names must match"):
        write_yolo(other, tmp_path / "y", split="test")
    with pytest.raises(ValueError, match="same classes"):
        write_voc(other, write_voc(src, tmp_path / "v"))


def make_coco_squares(root: Path, count: int = 20, side: int = 32) -> Path:
    """``count`` images of one bright square each, as COCO: enough images to split and train on."""
    images, anns = [], []
    for i in range(count):
        x, y, w = 2 + i % 9, 3 + (5 * i) % 11, 10 + i % 7
        pixels = np.zeros((side, side, 3), np.uint8)
        pixels[y:y + w, x:x + w] = (250, 200, 50)
        Image.fromarray(pixels).save(write_image(root / "images" / f"s{i:02d}.png", (side, side)))
        images.append({"id": i + 1, "file_name": f"s{i:02d}.png", "width": side, "height": side})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1 + i % 2, "bbox": [x, y, w, w], "area": w * w,
                     "iscrowd": 0})
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "gold"}, {"id": 2, "name": "amber"}]}))
    return path


def test_yolo_without_val_is_split_at_random_from_train(tmp_path: Path) -> None:
    # `convert --to yolo` writes one split (`train:` only); training must still get three splits.
    from visionbench.data.detection_formats import load_detection_data

    spec = convert(f"coco:{make_coco_squares(tmp_path / 'src')}", "yolo", tmp_path / "yolo")
    assert "val" not in yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    data = load_detection_data(spec, seed=0, val_fraction=0.1, test_fraction=0.2)
    parts = [list(part.ids) for part in (data.train, data.val, data.test)]
    assert [len(p) for p in parts] == [14, 2, 4]
    assert sorted(sum(parts, [])) == [f"s{i:02d}.png" for i in range(20)]  # disjoint, all images used
    assert [list(p.ids) for p in (load_detection_data(spec, seed=0).val, load_detection_data(spec, seed=0).test)] \
        == parts[1:]
    assert list(load_detection_data(spec, seed=1).test.ids) != parts[2]  # split_seed chooses the split
    # A data.yaml naming train and test (no val): val is drawn from train, test is the file's.
    write_yolo(CocoDetection(make_coco_squares(tmp_path / "more", count=3)), tmp_path / "yolo", split="test")
    with_test = load_detection_data(spec, seed=0, val_fraction=0.25)
    assert (len(with_test.train), len(with_test.val), len(with_test.test)) == (15, 5, 3)


def test_train_on_the_output_of_convert_to_yolo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench import cli

    source = f"coco:{make_coco_squares(tmp_path / 'src')}"
    assert cli.main(["convert", source, "--to", "yolo", "--out", str(tmp_path / "yolo")]) == 0
    spec = capsys.readouterr().out.split("wrote ")[-1].strip()
    code = cli.main(["train", "--task", "detect", "--data", spec, "--epochs", "1", "--batch-size", "7", "--quiet",
                     "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["task"] == "detect" and metrics["num_samples"] == 4


# --------------------------------------------------------------------------------------------
# Bad input: COCO
# --------------------------------------------------------------------------------------------


def bad_coco(tmp_path: Path, edit) -> Path:
    raw = coco_dict()
    edit(raw)
    return make_coco(tmp_path, raw)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d["annotations"][1]["bbox"].__setitem__(2, float("nan")), r"annotations\[1\] \(id 2\).*finite"),
    (lambda d: d["annotations"][2]["bbox"].__setitem__(2, -1.0), r"annotations\[2\] \(id 3\).*w >= 0"),
    (lambda d: d["annotations"][3].__setitem__("category_id", 4), r"annotations\[3\].*category_id.*got 4"),
    (lambda d: d["images"][1].__setitem__("id", 10), r"images\[1\].*unique.*got 10"),
    (lambda d: d["images"][1].__setitem__("file_name", "a.png"), r"file name must be unique.*a\.png"),
    (lambda d: d["images"][2].__setitem__("file_name", "gone.png"), r"must exist.*gone\.png"),
    (lambda d: d["images"][0].__setitem__("width", 0), r"images\[0\] \(id 10\) width and height"),
    (lambda d: d["images"].clear() or d["annotations"].clear(), "at least one image"),
])
def test_coco_bad_records(tmp_path: Path, edit, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        CocoDetection(bad_coco(tmp_path, edit))
    assert "instances.json" in str(info.value)


def test_coco_malformed_and_empty_json(tmp_path: Path) -> None:
    path = make_coco(tmp_path)
    path.write_text('{"images": [\n{"id": 1,,}]}')
    with pytest.raises(ValueError, match=r"instances\.json must be valid JSON.*line 2"):
        CocoDetection(path)
    path.write_text("  \n")
    with pytest.raises(ValueError, match=r"instances\.json.*empty file"):
        CocoDetection(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="JSON object"):
        CocoDetection(path)


# --------------------------------------------------------------------------------------------
# Bad input: VOC
# --------------------------------------------------------------------------------------------


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol9;</filename></annotation>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotation><filename>&xxe;</filename></annotation>
"""


@pytest.mark.parametrize(("xml", "match"), [
    (BILLION_LAUGHS, "must not declare XML entities"),
    (EXTERNAL_ENTITY, "must not declare XML entities"),
    ("<annotation><filename>a.png</filename>", r"well-formed XML.*line 1"),
    ("", "empty file"),
])
def test_voc_refuses_bombs_malformed_and_empty_xml(tmp_path: Path, xml: str, match: str) -> None:
    root = make_voc(tmp_path)
    (root / "Annotations" / "b.xml").write_text(xml)
    with pytest.raises(ValueError, match=match) as info:
        VocDetection(root)
    assert "b.xml" in str(info.value)


@pytest.mark.parametrize(("objs", "match"), [
    ([("dog", 0, (10, 1, 5, 5))], r"<object> 0 <bndbox> must have x2 >= x1"),
    ([("dog", 0, (1, 1, 5, 5)), ("dog", 0, ("nan", 1, 5, 5))], r"<object> 1 <bndbox> must be a finite box"),
    ([("dog", 0, ("x", 1, 5, 5))], r"<xmin> must be a number"),
    ([("zebra", 0, (1, 1, 5, 5))], r"<name> must be one of the classes.*'zebra'"),
    ([("dog", 2, (1, 1, 5, 5))], r"<difficult> must be 0 or 1"),
])
def test_voc_bad_objects(tmp_path: Path, objs: list, match: str) -> None:
    root = make_voc(tmp_path, {"a": objs})
    with pytest.raises(ValueError, match=match) as info:
        VocDetection(root)
    assert "a.xml" in str(info.value)


def test_voc_missing_files_and_empty_split(tmp_path: Path) -> None:
    root = make_voc(tmp_path)
    with pytest.raises(ValueError, match=r"split list must exist.*test\.txt"):
        VocDetection(root, split="test")
    (root / "JPEGImages" / "b.png").unlink()
    with pytest.raises(ValueError, match=r"image files must exist.*b\.png.*b\.xml"):
        VocDetection(root)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("a\na\n")
    with pytest.raises(ValueError, match=r"must be unique; got 'a'"):
        VocDetection(root)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"at least one image.*trainval\.txt"):
        VocDetection(root)


# --------------------------------------------------------------------------------------------
# Bad input: YOLO
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "match"), [
    ("0 0.5 0.5 0.1\n", "5 fields"),
    ("0 0.5 0.5 0.1 0.1 0.2 0.3\n", "5 fields"),
    ("0 0.5 abc 0.1 0.1\n", "must be numbers"),
    ("0 0.5 0.5 nan 0.1\n", "must be finite"),
    ("0 0.5 0.5 -0.1 0.1\n", r"normalised to \[0, 1\]"),
    ("0 12 20 4 4\n", r"normalised to \[0, 1\]"),
    ("3 0.5 0.5 0.1 0.1\n", r"class number of 'names' \[0, 1, 2\]; got '3'"),
    ("0.5 0.5 0.5 0.1 0.1\n", "class number"),
])
def test_yolo_bad_label_lines(tmp_path: Path, text: str, match: str) -> None:
    path = make_yolo(tmp_path, {"a": "1 0.5 0.5 0.5 0.4\n", "b": "\n" + text})
    with pytest.raises(ValueError, match=match) as info:
        YoloDetection(path)
    assert "line 2 of" in str(info.value) and "b.txt" in str(info.value)


@pytest.mark.parametrize(("yaml_text", "match"), [
    ("train: [images/train\nnames: [a]\n", r"valid YAML; got a syntax error at line"),
    ("", "an empty file"),
    ("train: images/train\nnames: cat\n", "'names' must be a list"),
    ("train: images/train\nnames: []\n", "at least one class"),
    ("train: images/train\nnames: [a, b]\nnc: 3\n", "'nc' must equal"),
    ("train: images/nowhere\nnames: [a]\n", "existing folder or .txt list"),
    ("val: images/train\nnames: [a]\n", r"split 'train' must be a key.*\['val'\]"),
])
def test_yolo_bad_yaml(tmp_path: Path, yaml_text: str, match: str) -> None:
    path = make_yolo(tmp_path)
    path.write_text(yaml_text)
    with pytest.raises(ValueError, match=match):
        YoloDetection(path)


def test_yolo_txt_split_list_and_missing_image(tmp_path: Path) -> None:
    path = make_yolo(tmp_path)
    (tmp_path / "train.txt").write_text("./images/train/a.png\nimages/train/b.png\n")
    path.write_text("train: train.txt\nnames: [cat, dog, owl]\n")
    assert YoloDetection(path).ids == ["images/train/a.png", "images/train/b.png"]
    (tmp_path / "train.txt").write_text("images/train/a.png\nimages/train/gone.png\n")
    with pytest.raises(ValueError, match=r"must exist.*gone\.png"):
        YoloDetection(path)


def test_bad_spec_and_destination(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="detection data spec"):
        read_detection("folder:x")
    with pytest.raises(ValueError, match="dst_format"):
        convert(f"coco:{make_coco(tmp_path)}", "tfrecord", tmp_path / "out")  # type: ignore[arg-type]


def test_random_boxes_round_trip_within_each_format_precision(tmp_path: Path) -> None:
    """300 random boxes on random image sizes: YOLO corners within 7.5e-7 * side, VOC within 0.005 px."""
    from visionbench.data._detection_records import _make_record
    from visionbench.data.detection_formats import DetectionAnnotations

    rng = np.random.default_rng(1)
    records = []
    for i in range(6):
        width, height = (int(v) for v in rng.integers(8, 700, 2))
        path = write_image(tmp_path / "src" / f"{i}.png", (width, height))
        corners = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1) * [width, height]  # (n, [low, high], [x, y])
        boxes = np.stack([corners[:, 0, 0], corners[:, 0, 1], corners[:, 1, 0], corners[:, 1, 1]], 1)
        none = np.zeros(50, bool)
        records.append(_make_record(i, f"{i}.png", str(path), (height, width), boxes, rng.integers(0, 3, 50), none,
                                    none)[0])
    ann = DetectionAnnotations(["a", "b", "c"], [1, 2, 3], records)
    yolo = YoloDetection(write_yolo(ann, tmp_path / "yolo", images="symlink"))
    voc = VocDetection(write_voc(ann, tmp_path / "voc", images="symlink"))
    for source, atol in ((yolo, None), (voc, 0.005 + 1e-9)):
        for original, back in zip(records, source.annotations().records, strict=True):
            assert back.labels.tolist() == original.labels.tolist()
            limit = atol if atol is not None else 7.5e-7 * max(original.width, original.height) + 1e-9
            assert np.abs(back.boxes - original.boxes).max() <= limit
    assert yolo.num_clamped == voc.num_clamped == 0


# ------------------------------------------------------------------ file names from content stay inside --out


def _coco_with_file_name(root: Path, file_name: str) -> Path:
    """A one-image COCO file whose image's ``file_name`` is ``file_name`` (the image exists under root)."""
    from tests.engine.task_files import write_coco_shapes

    annotations = write_coco_shapes(root, count=1, size=32)
    data = json.loads(annotations.read_text())
    target = (root / "images" / file_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():  # the reader must find the image: put it where the hostile name points
        (root / "images" / data["images"][0]["file_name"]).replace(target)
    data["images"][0]["file_name"] = file_name
    annotations.write_text(json.dumps(data))
    return annotations


@pytest.mark.parametrize("to", ["voc", "yolo"])
@pytest.mark.parametrize("images", ["copy", "symlink"])
def test_convert_refuses_file_names_that_leave_the_output(tmp_path: Path, to: str, images: str) -> None:
    """A '../' in a COCO file_name overwrote a file outside --out; with --images symlink it deleted one
    and put a link in its place (issue 18)."""
    import visionbench

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    annotations = _coco_with_file_name(tmp_path / "coco", "sub/../../../victim.txt")
    before = sorted(p for p in tmp_path.rglob("*") if "out" not in p.parts)
    with pytest.raises(ValueError, match=r"image 1 \('sub/\.\./\.\./\.\./victim\.txt'\).*relative path inside"):
        visionbench.convert(f"coco:{annotations}", to, tmp_path / "out", images=images)
    assert victim.read_text() == "keep me" and not victim.is_symlink()
    assert sorted(p for p in tmp_path.rglob("*") if "out" not in p.parts) == before


@pytest.mark.parametrize("name", ["/etc/hostname", "C:\\\\Windows\\\\x.png", "", "a/../../b.png"])
def test_inside_refuses_absolute_empty_and_parent_names(tmp_path: Path, name: str) -> None:
    from visionbench.data.safe_paths import inside

    with pytest.raises(ValueError, match="record 7"):
        inside(tmp_path, name, "record 7")


def test_inside_refuses_a_link_out_of_the_root(tmp_path: Path) -> None:
    from visionbench.data.safe_paths import inside

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "escape").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="leads outside"):
        inside(tmp_path / "out", "escape/x.png", "image 3")
    assert inside(tmp_path / "out", "a/b.png", "image 3") == tmp_path / "out" / "a" / "b.png"


def test_a_voc_size_that_is_not_the_images_is_refused(tmp_path: Path) -> None:
    """<size> scales YOLO boxes and COCO areas; a wrong one converted silently (issue 18)."""
    import visionbench

    root = make_voc(tmp_path / "voc")
    xml = root / "Annotations" / "a.xml"
    w, h = SIZES["a.png"]
    xml.write_text(xml.read_text().replace(f"<width>{w}</width>", f"<width>{w * 10}</width>"))
    with pytest.raises(ValueError, match=rf"<size> must be the image's size; got width {w * 10} x height {h} in .*a\.xml"):
        visionbench.convert(f"voc:{root}", "yolo", tmp_path / "out")
