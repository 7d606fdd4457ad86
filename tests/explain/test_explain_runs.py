"""``visionbench explain`` and ``visionbench.explain`` on tiny trained runs, the Grad-CAM panels a
run writes for its report, and clear errors for what cannot be explained."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import visionbench
from tests.engine.task_files import write_mask_folder
from visionbench.cli import main
from visionbench.explain.run_examples import CAP, INDEX, SALIENCY_DIR, choose_examples

CLASSES = ("left", "right", "top")


def write_bars(root: Path, per_class: int = 12, size: int = 16) -> Path:
    """A folder dataset whose class is where a bright bar lies (left, right or top), on noise."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((size, size, 3)) * 60).astype(np.uint8)
            bar = (slice(None), slice(0, 6)) if k == 0 else (slice(None), slice(10, None)) if k == 1 else (slice(0, 6),)
            pixels[bar] += 150
            Image.fromarray(pixels).save(root / name / f"{name}{i}.png")
    return root


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``visionbench ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bars(tmp_path_factory.mktemp("bars"))


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory: pytest.TempPathFactory, bars: Path) -> Path:
    return visionbench.train(data=f"folder:{bars}", model="cnn-small", epochs=2, image_size=16, batch_size=8,
                             quiet=True, device="cpu", out=tmp_path_factory.mktemp("runs") / "classify").run_dir


@pytest.fixture(scope="module")
def segment_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mask_folder(tmp_path_factory.mktemp("masks"), count=24, size=64)


@pytest.fixture(scope="module")
def segment_run(tmp_path_factory: pytest.TempPathFactory, segment_data: Path) -> Path:
    return visionbench.train(task="segment", data=f"masks:{segment_data}", epochs=1, batch_size=8, quiet=True,
                             device="cpu", out=tmp_path_factory.mktemp("runs") / "segment").run_dir


def test_api_explains_classification_with_every_method(classify_run: Path, bars: Path, tmp_path: Path) -> None:
    images = [bars / "left" / "left0.png", bars / "top" / "top3.png"]
    result = visionbench.explain(classify_run, images, method=["gradcam", "gradcam++", "integrated-gradients"],
                                 out=tmp_path / "out", steps=8)
    assert result.out_dir == tmp_path / "out"
    assert [(Path(r["image"]).name, r["method"]) for r in result.rows] == [
        (name, method) for name in ("left0.png", "top3.png") for method in ("gradcam", "gradcam++", "integrated-gradients")]
    assert json.loads((tmp_path / "out" / "explain.json").read_text()) == result.rows
    predicted = visionbench.predict(classify_run, images, out=tmp_path / "predict").rows
    for row in result.rows:
        expected = predicted[0] if row["image"].endswith("left0.png") else predicted[1]
        # The same preprocessing and weights as `predict`: the same class and probability.
        assert row["predicted"] == row["target"] == expected["pred"]
        assert row["probability"] == pytest.approx(expected["probability"], abs=1e-6)
        assert row["layer"] == (None if row["method"] == "integrated-gradients" else "features.3")
        with Image.open(row["file"]) as picture:
            assert picture.format == "PNG" and picture.size[0] > 2 * 224
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        f"{stem}_{slug}.png" for stem in ("left0", "top3") for slug in ("gradcam", "gradcampp", "ig")]


def test_target_by_name_or_index(classify_run: Path, bars: Path, tmp_path: Path) -> None:
    image = [bars / "right" / "right1.png"]
    by_name = visionbench.explain(classify_run, image, target="top", out=tmp_path / "a").rows
    by_index = visionbench.explain(classify_run, image, target=2, out=tmp_path / "b").rows
    assert by_name[0]["target"] == by_index[0]["target"] == "top"
    assert by_name[0]["target_probability"] == by_index[0]["target_probability"]
    with pytest.raises(ValueError, match=r"--target must be a class name or index of the run; got 'dog'\. "
                                         r"Its classes: left, right, top\."):
        visionbench.explain(classify_run, image, target="dog", out=tmp_path / "c")


def test_package_stays_callable_as_the_api_function(classify_run: Path, bars: Path, tmp_path: Path) -> None:
    import visionbench.explain.saliency  # noqa: F401 - makes the attribute `visionbench.explain` the package

    rows = visionbench.explain(classify_run, [bars / "left" / "left2.png"], out=tmp_path / "out").rows
    assert len(rows) == 1 and rows[0]["method"] == "gradcam"


def test_cli_explains_a_segmentation_run(segment_run: Path, segment_data: Path, tmp_path: Path) -> None:
    image = segment_data / "images" / "s001.png"
    code, out, err = run_cli(["explain", str(segment_run), str(image), "--method", "gradcam,integrated-gradients",
                              "--steps", "4", "--out", str(tmp_path / "out"), "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert rows == json.loads((tmp_path / "out" / "explain.json").read_text())
    predicted = visionbench.predict(segment_run, [image], out=tmp_path / "predict").rows[0]["pixels"]
    for row in rows:
        assert set(row["predicted"]) == set(predicted)  # the classes `predict` finds on some pixel
        assert row["target"] in row["predicted"] and 0 <= row["target_probability"] <= 1
        assert row["layer"] == ("down.4" if row["method"] == "gradcam" else None)
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["s001_gradcam.png", "s001_ig.png"]
    code, out, err = run_cli(["explain", str(segment_run), str(image), "--target", "square", "--out",
                              str(tmp_path / "sq")])
    assert code == 0 and "target square" in out and "wrote" in out


def test_cli_errors_are_clear(classify_run: Path, bars: Path, tmp_path: Path) -> None:
    image = str(bars / "left" / "left0.png")
    code, out, err = run_cli(["explain", str(classify_run), image, "--method", "lime"])
    assert code == 2 and out == "" and "Traceback" not in err
    assert "--method must be one of gradcam, gradcam++, integrated-gradients; got 'lime'" in err
    code, _, err = run_cli(["explain", str(classify_run), image, "--layer", "body.9"])
    assert code == 2 and "--layer 'body.9' is not a module of model SmallCNN" in err and "features.3 [128" in err
    detection = tmp_path / "detect-run"
    (detection / "checkpoints").mkdir(parents=True)
    (detection / "config.yaml").write_text("task: detect\n")
    (detection / "checkpoints" / "best.safetensors").write_bytes(b"")
    code, _, err = run_cli(["explain", str(detection), image])
    assert code == 2 and "is a detection run; `visionbench explain` covers classification and segmentation" in err


def test_the_run_writes_gradcam_panels_and_the_report_shows_them(classify_run: Path) -> None:
    index = json.loads((classify_run / SALIENCY_DIR / INDEX).read_text())
    assert index["task"] == "classify" and index["layer"] == "features.3"
    assert 1 <= len(index["items"]) <= CAP and {i["kind"] for i in index["items"]} <= {"mistake", "correct"}
    report = (classify_run / "report.html").read_text(encoding="utf-8")
    assert "Explanations (Grad-CAM)" in report
    for item in index["items"]:
        png = (classify_run / SALIENCY_DIR / item["file"]).read_bytes()
        assert base64.b64encode(png).decode("ascii") in report  # inlined, panel for panel


def test_a_segmentation_run_shows_per_class_saliency_of_its_worst_images(segment_run: Path) -> None:
    index = json.loads((segment_run / SALIENCY_DIR / INDEX).read_text())
    assert index["task"] == "segment" and index["layer"] == "down.4" and 1 <= len(index["items"]) <= 4
    mious = [item["mIoU"] for item in index["items"]]
    assert mious == sorted(mious) and all(item["targets"] for item in index["items"])
    report = (segment_run / "report.html").read_text(encoding="utf-8")
    assert "Explanations (Grad-CAM)" in report and "per class" in report
    png = (segment_run / SALIENCY_DIR / index["items"][0]["file"]).read_bytes()
    assert base64.b64encode(png).decode("ascii") in report


def test_a_model_without_convolution_skips_the_panels_and_says_why(bars: Path, tmp_path: Path) -> None:
    run = visionbench.train(data=f"folder:{bars}", model="mlp", epochs=1, image_size=16, batch_size=8, quiet=True,
                            device="cpu", out=tmp_path / "mlp").run_dir
    index = json.loads((run / SALIENCY_DIR / INDEX).read_text())
    assert index["items"] == [] and "has no convolutional layer" in index["skipped"]
    assert "no Grad-CAM panels for the report" in (run / "log.txt").read_text()
    assert "Explanations: none for this model" in (run / "report.html").read_text(encoding="utf-8")
    image = [bars / "top" / "top0.png"]
    with pytest.raises(ValueError, match="has no convolutional layer.*--method integrated-gradients"):
        visionbench.explain(run, image, out=tmp_path / "out")
    rows = visionbench.explain(run, image, method="integrated-gradients", steps=4, out=tmp_path / "out").rows
    assert rows[0]["layer"] is None and Path(rows[0]["file"]).is_file()


def test_choose_examples_takes_mistakes_then_correct_ones_round_robin() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 0, 2, 2, 2])
    confidence = torch.tensor([0.6, 0.9, 0.99, 0.7, 0.5, 0.8, 0.95, 0.85])
    assert choose_examples(labels, preds, confidence, mistakes=8, per_class=2, cap=20) == [
        (2, "mistake"), (4, "mistake"), (1, "correct"), (3, "correct"), (6, "correct"), (0, "correct"),
        (7, "correct")]
    assert choose_examples(labels, preds, confidence, mistakes=1, per_class=2, cap=3) == [
        (2, "mistake"), (1, "correct"), (3, "correct")]


def test_a_damaged_index_is_named_and_the_report_still_builds(classify_run: Path, tmp_path: Path) -> None:
    import shutil

    from visionbench.report import build_run_report

    run = tmp_path / "copy"
    shutil.copytree(classify_run, run)
    index_path = run / SALIENCY_DIR / INDEX
    index = json.loads(index_path.read_text())
    index["items"][0]["file"] = "../metrics.json.png"  # an index never makes the report read other files
    index_path.write_text(json.dumps(index))
    text = build_run_report(run).read_text(encoding="utf-8")
    assert "names files outside its folder" in text and "Explanations (Grad-CAM)" not in text
    index_path.write_text("{")
    assert "is not a valid explanations index" in build_run_report(run).read_text(encoding="utf-8")
