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
        (["a.png", "missing.png"], "two image files, two folders or two videos"),
    ]
    for (left, right), message in cases:
        code = cli.main(["quality", str(tmp_path / left), str(tmp_path / right), "--quiet", "--out", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
    # vmaf is a metric (issue 17); a model's name given as a metric is not, and the error suggests vmaf.
    code = cli.main(["quality", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--metrics", "vmaf_neg", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown quality metric 'vmaf_neg'" in err and "Did you mean vmaf" in err


def test_tensors_profiles_channels_and_crop() -> None:
    import torch
    from skimage.color import rgb2ycbcr

    from visionbench.quality import assess, ssim_matlab

    reference = data.astronaut()[:180, :200]
    distorted = np.clip(reference + np.random.default_rng(3).normal(0, 10, reference.shape), 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in (reference, distorted))
    studio = assess(x, y, metrics=("psnr", "ssim"), channel="y-studio", crop=4)
    ry, dy = (rgb2ycbcr(a)[4:-4, 4:-4, 0] for a in (reference, distorted))
    assert studio.rows[0]["psnr"] == pytest.approx(peak_signal_noise_ratio(ry, dy, data_range=255), abs=1e-9)
    assert studio.rows[0]["ssim"] == pytest.approx(structural_similarity(
        ry, dy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255), abs=1e-9)
    assert studio.settings == {"kind": "tensors", "profile": "skimage", "channel": "y-studio", "data_range": 255.0,
                               "crop_border": 4, "metrics": ["psnr", "ssim"]}
    matlab = assess(x, y, metrics=("ssim",), profile="matlab", channel="rgb")
    assert matlab.rows[0]["ssim"] == float(ssim_matlab(x, y)[0])
    # Without a channel the matlab profile compares MATLAB's rounded rgb2gray (issue 17).
    from visionbench.quality.color import matlab_rgb2gray

    matlab_gray = assess(x, y, metrics=("ssim",), profile="matlab")
    assert matlab_gray.settings["channel"] == "gray-matlab"
    assert matlab_gray.rows[0]["ssim"] == float(ssim_matlab(matlab_rgb2gray(x), matlab_rgb2gray(y))[0])
    every = assess(x.double() / 255, y.double() / 255, data_range=1.0,
                   metrics=("psnr", "ssim", "ms_ssim", "mse", "mae", "gmsd", "vif_p", "haarpsi", "fsim"))
    row = every.rows[0]
    assert row["mse"] == pytest.approx(np.mean((reference / 255.0 - distorted / 255.0) ** 2), rel=1e-12)
    assert 0 < row["ms_ssim"] < 1 and 0 < row["gmsd"] < 1 and every.pooled["gmsd"]["higher_is_better"] is False


def test_ffmpeg_profile_psnr_and_mse_do_not_depend_on_the_other_metrics() -> None:
    import torch

    from visionbench.quality import assess
    from visionbench.quality.catalog import QUALITY_METRICS, ffmpeg_scores

    reference = data.astronaut()[:120, :136]
    distorted = np.clip(reference + np.random.default_rng(5).normal(0, 12, reference.shape), 0, 255).astype(np.uint8)
    x, y = (torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in (reference, distorted))
    full = ffmpeg_scores(x, y, 255.0)  # one pass, SSIM included: FFmpeg's psnr and ssim filters together
    for metrics in (("psnr", "ssim"), ("psnr",), ("mse",), ("gmsd",)):
        row = assess(x, y, metrics=metrics, profile="ffmpeg").rows[0]
        assert row["mse"] == float(full["mse_avg"][0]), metrics
        if "psnr" in metrics:
            assert row["psnr"] == float(full["psnr_avg"][0])
    assert torch.equal(QUALITY_METRICS["mse"].function("ffmpeg")(x, y, 255.0), full["mse_avg"])
    assert torch.equal(QUALITY_METRICS["psnr"].function("ffmpeg")(x, y, 255.0), full["psnr_avg"])


def test_bad_settings_say_what_to_do() -> None:
    import torch

    from visionbench.quality import assess

    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="data_range must be given for torch.float32"):
        assess(x, x)
    with pytest.raises(ValueError, match="ms_ssim has no 'ffmpeg' profile"):
        assess(x, x, data_range=1.0, metrics=("ms_ssim",), profile="ffmpeg")
    with pytest.raises(ValueError, match="Did you mean ssim"):
        assess(x, x, data_range=1.0, metrics=("sssim",))
    with pytest.raises(ValueError, match="profile must be one of skimage, matlab, ffmpeg"):
        assess(x, x, data_range=1.0, profile="vmaf")
    with pytest.raises(ValueError, match="same shape"):
        assess(x, x[..., :31], data_range=1.0)


def test_sixteen_bit_images_need_their_range(tmp_path: Path) -> None:
    from visionbench.quality import assess

    deep = (data.camera()[:64, :64].astype(np.uint16) * 64)
    Image.fromarray(deep).save(tmp_path / "a.png")
    Image.fromarray(deep // 2).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="16-bit"):
        assess(tmp_path / "a.png", tmp_path / "b.png")
    result = assess(tmp_path / "a.png", tmp_path / "b.png", data_range=65535, metrics=("psnr",))
    expected = peak_signal_noise_ratio(deep, deep // 2, data_range=65535)
    assert result.rows[0]["psnr"] == pytest.approx(expected, abs=1e-9)


def test_identical_images_psnr_is_inf_and_stated(tmp_path: Path) -> None:
    Image.fromarray(data.camera()[:40, :40]).save(tmp_path / "a.png")
    result = quality(tmp_path / "a.png", tmp_path / "a.png", out=tmp_path / "run", quiet=True)
    assert result.rows[0]["psnr"] == float("inf") and result.metrics["psnr"]["value"] == float("inf")
    assert result.metrics["psnr"]["non_finite_items"] == 1 and result.metrics["ssim"]["value"] == 1.0


def test_report_shows_worst_items_for_folders(tmp_path: Path) -> None:
    _pair_folders(tmp_path)
    result = quality(tmp_path / "ref", tmp_path / "dist", out=tmp_path / "run", quiet=True,
                     metrics=("ssim", "psnr"))
    report = (result.run_dir / "report.html").read_text()
    for section in ("Metrics", "Per item", "Worst items", "Unpaired files", "only_here.png", "SSIM map"):
        assert section in report
    assert "http://" not in report and "https://" not in report
    assert (result.run_dir / "examples.npz").is_file()


def test_4k_pair_runs_in_bounded_memory(tmp_path: Path) -> None:
    """Peak RSS of a fresh process measuring PSNR and SSIM of a 3840x2160 RGB pair (torch
    included) stays under 1 GiB. The peak is VmHWM, the process image's own: ru_maxrss would
    include pytest's resident size at the fork that started it."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from visionbench.quality import assess\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x = torch.randint(0, 256, (1, 3, 2160, 3840), dtype=torch.uint8, generator=g)\n"
        "y = x.clone()\n"
        "for c in range(3):  # noise one plane at a time, to keep the test's own memory small\n"
        "    y[0, c] = (x[0, c].short() + torch.randint(-8, 9, x.shape[2:], generator=g, dtype=torch.short)).clamp(0, 255)\n"
        "result = assess(x, y, metrics=('psnr', 'ssim'))\n"
        "assert 0 < result.rows[0]['ssim'] < 1 and len(result.examples) == 1\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    peak_mib = int(done.stdout.split()[-1]) / 1024
    assert peak_mib < 1024, f"peak RSS {peak_mib:.0f} MiB"


def test_resize_only_when_asked_and_psnr_caps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    from visionbench.quality import assess

    reference = data.camera()[:64, :80]
    small = np.array(Image.fromarray(reference).resize((40, 32)))
    Image.fromarray(reference).save(tmp_path / "ref.png")
    Image.fromarray(small).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="80x64 in .*ref.png and 40x32 in .*small.png.*--resize bicubic"):
        assess(tmp_path / "ref.png", tmp_path / "small.png")
    result = assess(tmp_path / "ref.png", tmp_path / "small.png", resize="bicubic", metrics=("psnr",))
    upscaled = F.resize(torch.from_numpy(small)[None, None].double(), [64, 80], interpolation=InterpolationMode.BICUBIC,
                        antialias=True).round().clamp(0, 255).to(torch.uint8)[0, 0].numpy()
    assert result.rows[0]["psnr"] == pytest.approx(peak_signal_noise_ratio(reference, upscaled, data_range=255), abs=1e-9)
    assert result.settings["resize"] == "bicubic"
    same = assess(tmp_path / "ref.png", tmp_path / "ref.png", metrics=("psnr",), psnr_cap="vmaf")
    assert same.rows[0]["psnr"] == 60.0 and same.pooled["psnr_pooled_mse"]["value"] == 60.0
    assert same.settings["psnr_cap_db"] == 60.0
    assert assess(tmp_path / "ref.png", tmp_path / "ref.png", metrics=("psnr",), psnr_cap=100).rows[0]["psnr"] == 100
    with pytest.raises(ValueError, match="resize must be one of"):
        assess(tmp_path / "ref.png", tmp_path / "small.png", resize="lanczos")
    code = cli.main(["quality", str(tmp_path / "ref.png"), str(tmp_path / "ref.png"), "--psnr-cap", "loud", "--quiet"])
    assert code == 2 and "--psnr-cap must be a number of dB or 'vmaf'" in capsys.readouterr().err


def test_alpha_is_dropped_only_when_opaque(tmp_path: Path) -> None:
    from visionbench.quality import assess

    rgb = data.astronaut()[:40, :40]
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    clear = opaque.copy()
    clear[0, 0, 3] = 0
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(opaque, "RGBA").save(tmp_path / "opaque.png")
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    assert assess(tmp_path / "rgb.png", tmp_path / "opaque.png", metrics=("psnr",)).rows[0]["psnr"] == float("inf")
    with pytest.raises(ValueError, match="clear.png.*transparent pixels"):
        assess(tmp_path / "rgb.png", tmp_path / "clear.png")


def test_grayscale_with_colour_is_an_error_in_rgb_and_luma_on_request(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    colour = data.astronaut()[:64, :64]
    gray = np.round(colour @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    Image.fromarray(gray).save(tmp_path / "gray.png")
    code = cli.main(["quality", str(tmp_path / "gray.png"), str(tmp_path / "colour.png"), "--quiet",
                     "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "same channels" in err and "grayscale" in err and "gray.png" in err and "colour.png" in err
    assert "--channel y" in err and not (tmp_path / "r" / "metrics.json").exists()
    for side in ("ref", "dist"):  # folders: the same, naming the pair
        (tmp_path / side).mkdir()
    Image.fromarray(gray).save(tmp_path / "ref" / "a.png")
    Image.fromarray(colour).save(tmp_path / "dist" / "a.png")
    code = cli.main(["quality", str(tmp_path / "ref"), str(tmp_path / "dist"), "--quiet", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "ref" / "a.png") in err and str(tmp_path / "dist" / "a.png") in err
    # Asked for luma, both are compared on it: the grayscale image is its own luma.
    luma = quality(tmp_path / "gray.png", tmp_path / "colour.png", channel="y", out=tmp_path / "y", quiet=True)
    expected = peak_signal_noise_ratio(gray.astype(np.float64), colour @ np.array([0.299, 0.587, 0.114]),
                                       data_range=255)
    assert luma.rows[0]["psnr"] == pytest.approx(expected, rel=1e-9)


def test_unpaired_files_are_a_warning_on_the_console_and_in_metrics_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pair_folders(tmp_path)
    for i in range(4):
        Image.fromarray(data.camera()[:32, :32]).save(tmp_path / "dist" / f"stray{i}.png")
    code = cli.main(["quality", str(tmp_path / "ref"), str(tmp_path / "dist"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: 1 image(s) of" in err and "'only_here.png'" in err
    assert "warning: 4 image(s) of" in err and "'stray0.png', 'stray1.png', 'stray2.png', …" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["warnings"]) == 2 and "only_here.png" in metrics["warnings"][0]
    assert "not measured" in (tmp_path / "run" / "report.html").read_text()
