"""`visionbench quality REF DIST`: two images or two folders, per item and pooled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from visionbench import cli
from visionbench.api import quality


def _pair_folders(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    images = {"gray/camera.png": data.camera()[:96, :128], "colour/astronaut.png": data.astronaut()[:80, :100]}
    for name, reference in images.items():
        distorted = np.clip(reference + rng.normal(0, 9, reference.shape), 0, 255).astype(np.uint8)
        for side, image in (("ref", reference), ("dist", distorted)):
            (root / side / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / side / name)
        images[name] = (reference, distorted)
    Image.fromarray(data.camera()[:32, :32]).save(root / "ref" / "only_here.png")
    return images


def test_folders_paired_by_relative_path_equal_scikit_image(tmp_path: Path) -> None:
    images = _pair_folders(tmp_path)
    result = quality(tmp_path / "ref", tmp_path / "dist", out=tmp_path / "run", quiet=True)
    rows = {row["item"]: row for row in result.rows}
    assert set(rows) == set(images)
    for name, (reference, distorted) in images.items():
        expected_ssim = structural_similarity(reference, distorted, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255,
                                              channel_axis=2 if reference.ndim == 3 else None)
        assert rows[name]["ssim"] == pytest.approx(expected_ssim, abs=1e-9)
        assert rows[name]["psnr"] == pytest.approx(peak_signal_noise_ratio(reference, distorted, data_range=255), abs=1e-9)
    assert result.metrics["unpaired"] == {"reference_only": ["only_here.png"], "distorted_only": []}
    assert result.metrics["ssim"]["value"] == pytest.approx(np.mean([r["ssim"] for r in result.rows]))
    mean_mse = np.mean([r["mse"] for r in result.rows])
    assert result.metrics["psnr_pooled_mse"]["value"] == pytest.approx(10 * np.log10(255**2 / mean_mse))
    assert (tmp_path / "run" / "items.csv").read_text().splitlines()[0] == "item,psnr,ssim,mse"


def test_cli_json_and_two_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pair_folders(tmp_path)
    ref, dist = tmp_path / "ref" / "gray" / "camera.png", tmp_path / "dist" / "gray" / "camera.png"
    code = cli.main(["quality", str(ref), str(dist), "--json", "--out", str(tmp_path / "run")])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["num_samples"] == 1 and printed["task"] == "quality"
    assert printed == json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_bad_input_names_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Image.fromarray(data.camera()[:40, :40]).save(tmp_path / "a.png")
    Image.fromarray(data.camera()[:40, :39]).save(tmp_path / "b.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cases = [
        (["a.png", "b.png"], "same size"),
        (["a.png", "broken.png"], "cannot read image"),
        (["a.png", "missing.png"], "two image files or two folders"),
    ]
    for (left, right), message in cases:
        code = cli.main(["quality", str(tmp_path / left), str(tmp_path / right), "--quiet", "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
    code = cli.main(["quality", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--metrics", "vmaf", "--quiet"])
    assert code == 2 and "metrics must be among" in capsys.readouterr().err
