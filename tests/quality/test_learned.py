"""LPIPS from a weights file the user provides (issue 17): the network against torchvision's VGG-16
with the same weights and the formula written out, both accepted naming schemes, and no network
access at any point (sockets and torch.hub blocked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.network_guard import refuse_network_and_hub
from visionbench.quality import assess
from visionbench.quality.learned import LPIPS_SCALE, LPIPS_SHIFT, LpipsNetwork, load_lpips, lpips


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random LPIPS weights (this test's own), saved in the lpips package's names (.pt) and as
    torchvision ``features.*`` plus ``lins.*`` (.safetensors)."""
    torch.manual_seed(0)
    network = LpipsNetwork()
    for k in range(5):  # LPIPS's lin weights are non-negative
        lin = getattr(network, f"lin{k}").model[1]
        lin.weight.data = lin.weight.data.abs()
    root = tmp_path_factory.mktemp("lpips")
    state = network.state_dict()
    torch.save(state, root / "lpips_vgg.pt")
    aliased = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "net":
            aliased[f"features.{parts[2]}.{parts[3]}"] = value.clone()
        elif parts[0].startswith("lin"):
            aliased[f"lins.{parts[0][3:]}.{'.'.join(parts[1:])}"] = value.clone()
    aliased["classifier.0.weight"] = torch.zeros(2, 2)  # a full VGG-16 state dict's head: ignored
    save_file(aliased, str(root / "assembled.safetensors"))
    return {"pt": root / "lpips_vgg.pt", "safetensors": root / "assembled.safetensors"}


def _reference_lpips(x: torch.Tensor, y: torch.Tensor, path: Path) -> torch.Tensor:
    """LPIPS written out with torchvision's VGG-16 (built without weights, then given the file's)."""
    from torchvision.models import vgg16

    state = torch.load(path, weights_only=True)
    vgg = vgg16(weights=None).features.double().eval()
    vgg.load_state_dict({f"{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")})
    shift = torch.tensor(LPIPS_SHIFT).double().view(1, 3, 1, 1)  # float32 buffers, as the lpips package
    scale = torch.tensor(LPIPS_SCALE).double().view(1, 3, 1, 1)

    def taps(image: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], (image * 2 - 1 - shift) / scale
        for index, layer in enumerate(vgg):
            h = layer(h)
            if index in (3, 8, 15, 22, 29):  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
                out.append(h)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for k, (a, b) in enumerate(zip(taps(x), taps(y), strict=True)):
            na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            w = state[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
            total += ((na - nb) ** 2 * w).sum(1).mean(dim=(1, 2))
    return total


def test_lpips_equals_the_formula_with_torchvision_vgg(weights_files: dict[str, Path]) -> None:
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 40, dtype=torch.float64)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    loaded = load_lpips(weights_files["pt"])
    ours = lpips(x, y, weights=loaded, data_range=1.0)
    assert torch.allclose(ours, _reference_lpips(x, y, weights_files["pt"]), rtol=1e-10, atol=1e-14)
    assert torch.all(ours > 0) and float(lpips(x, x, weights=loaded, data_range=1.0).abs().max()) == 0.0
    aliased = lpips(x, y, weights=load_lpips(weights_files["safetensors"]), data_range=1.0)
    assert torch.equal(aliased, ours)  # the same tensors under the other names
    as_8bit = lpips((x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8), weights=loaded)
    assert torch.allclose(as_8bit, ours, rtol=0.05)  # uint8: data range 255 without being told
    gray = lpips(x[:, :1], y[:, :1], weights=loaded, data_range=1.0)
    expected_gray = lpips(x[:, :1].expand(-1, 3, -1, -1), y[:, :1].expand(-1, 3, -1, -1), weights=loaded, data_range=1.0)
    assert torch.equal(gray, expected_gray)
    assert loaded.sha256 and len(loaded.sha256) == 64


def test_lpips_is_differentiable_in_the_images(weights_files: dict[str, Path]) -> None:
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    y = torch.rand(1, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    value = lpips(x, y, weights=load_lpips(weights_files["pt"]), data_range=1.0, reduction="mean")
    value.backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_no_network_is_touched(weights_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    refuse_network_and_hub(monkeypatch)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    result = assess(x, x.flip(-1), data_range=1.0, metrics=("lpips", "psnr"), model_files={"lpips": weights_files["pt"]})
    assert result.rows[0]["lpips"] > 0 and result.settings["model_files"] == {"lpips": str(weights_files["pt"])}


def test_lpips_needs_a_valid_weights_file(weights_files: dict[str, Path], tmp_path: Path) -> None:
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="lpips needs a model file you provide"):
        assess(x, x, data_range=1.0, metrics=("lpips",))
    with pytest.raises(ValueError, match="does not exist"):
        load_lpips(tmp_path / "missing.pt")
    state = torch.load(weights_files["pt"], weights_only=True)
    del state["lin4.model.1.weight"]
    state["net.slice1.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="missing lin4.model.1.weight.*wrong shape net.slice1.0.weight"):
        load_lpips(tmp_path / "broken.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read LPIPS weights"):
        load_lpips(tmp_path / "junk.pt")


def test_the_command_line_takes_the_weights_file(weights_files: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from visionbench import cli

    rng = np.random.default_rng(0)
    for name in ("ref.png", "dist.png"):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    code = cli.main(["quality", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--metrics", "psnr,lpips",
                     "--model-file", f"lpips={weights_files['pt']}", "--json", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["lpips"]["value"] > 0
    code = cli.main(["quality", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--metrics", "lpips",
                     "--model-file", "lpips", "--out", str(tmp_path / "bad")])
    assert code == 2 and "--model-file must be METRIC=FILE" in capsys.readouterr().err
