"""DISTS from a weights file the user provides: against piq's own DISTS code (its L2 pooling, its
texture/structure terms, torchvision's VGG-16) given the same random weights, the three naming
schemes and the torch hub cache for the backbone, the errors, the command line, and no network
access at any point (sockets and torch.hub blocked)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.network_guard import refuse_network_and_hub
from visionbench.models import pretrained
from visionbench.quality import assess
from visionbench.quality.learned import DISTS_CHANNELS, DistsNetwork, dists, load_dists

VGG16_CACHE_NAME = "vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1 file


def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any socket connection or torch.hub download fail the test."""
    refuse_network_and_hub(monkeypatch)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """This test's own DISTS weights: a random VGG-16 and random positive alpha/beta whose sum is
    not 1 (DISTS must normalise them itself)."""
    torch.manual_seed(0)
    network = DistsNetwork()
    network.alpha.uniform_(0.1, 2.0)
    network.beta.uniform_(0.1, 2.0)
    return {k: v.clone() for k, v in network.state_dict().items()}


def _features(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone of ``state`` in torchvision's names (``stage2.5.weight`` → ``features.5.weight``)."""
    return {f"features.{k.split('.')[1]}.{k.split('.')[2]}": v.clone() for k, v in state.items() if k.startswith("stage")}


@pytest.fixture(scope="module")
def files(state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same weights as four files: our names (.pt); torchvision's ``features.*`` with a flat
    alpha/beta and a classifier tensor (.safetensors); the reference package's state dict, with its
    constant ``mean``/``std``/``stage*.filter`` buffers (.pt); alpha and beta alone, as parameters,
    like the DISTS release's ``weights.pt``."""
    root = tmp_path_factory.mktemp("dists")
    torch.save(state, root / "dists.pt")
    aliased = _features(state) | {"alpha": state["alpha"].flatten().clone(), "beta": state["beta"].flatten().clone(),
                                  "classifier.0.weight": torch.zeros(2, 2)}
    save_file(aliased, str(root / "assembled.safetensors"))
    reference = dict(state) | {"mean": torch.zeros(1, 3, 1, 1), "std": torch.ones(1, 3, 1, 1)}
    for name, channels in (("stage2.4", 64), ("stage3.9", 128), ("stage4.16", 256), ("stage5.23", 512)):
        reference[f"{name}.filter"] = torch.ones(channels, 1, 3, 3) / 9
    torch.save(reference, root / "reference_names.pt")
    torch.save({"alpha": torch.nn.Parameter(state["alpha"].clone()), "beta": torch.nn.Parameter(state["beta"].clone())},
               root / "weights.pt")
    return {"pt": root / "dists.pt", "safetensors": root / "assembled.safetensors",
            "reference": root / "reference_names.pt", "alpha_beta": root / "weights.pt"}


@pytest.fixture(scope="module")
def piq_dists(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """piq's DISTS with this test's weights: torchvision's VGG-16 features given the backbone, and
    ``ContentLoss.__init__`` called directly, since ``DISTS.__init__`` downloads piq's weights (and
    torchvision's). piq uses alpha/beta as given; the reference divides them by their sum, so piq
    gets them divided (in float64, as ours)."""
    from piq.perceptual import DISTS as PiqDists
    from piq.perceptual import ContentLoss
    from torchvision.models import vgg16

    features = vgg16(weights=None).features
    features.load_state_dict({k.removeprefix("features."): v for k, v in _features(state).items()})
    alpha, beta = state["alpha"].double(), state["beta"].double()
    total = alpha.sum() + beta.sum()
    weights = [*torch.split(alpha / total, DISTS_CHANNELS, dim=1), *torch.split(beta / total, DISTS_CHANNELS, dim=1)]
    reference = PiqDists.__new__(PiqDists)
    ContentLoss.__init__(reference, features, layers=["3", "8", "15", "22", "29"], weights=weights, replace_pooling=True,
                         reduction="none", allow_layers_weights_mismatch=True)
    return reference


def test_dists_equals_piq_with_the_same_weights(files: dict[str, Path], piq_dists: torch.nn.Module) -> None:
    torch.manual_seed(1)
    x = torch.rand(3, 3, 48, 56, dtype=torch.float64)  # short side under 256: piq does not resize
    y = torch.cat([(x[:2] + 0.1 * torch.randn_like(x[:2])).clamp(0, 1), torch.rand(1, 3, 48, 56, dtype=torch.float64)])
    loaded = load_dists(files["pt"])
    ours = dists(x, y, weights=loaded, data_range=1.0)
    with torch.no_grad():
        theirs = piq_dists(x, y)
    print("ours", ours.tolist(), "piq", theirs.tolist())
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13)
    assert torch.all(ours > 0) and ours.dtype == torch.float64
    assert float(dists(x, x, weights=loaded, data_range=1.0).abs().max()) < 1e-6
    as_8bit = dists((x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8), weights=loaded)
    torch.testing.assert_close(as_8bit, ours, rtol=0.05, atol=0)  # uint8: data range 255 without being told
    gray = dists(x[:, :1], y[:, :1], weights=loaded, data_range=1.0)
    expected_gray = dists(x[:, :1].expand(-1, 3, -1, -1), y[:, :1].expand(-1, 3, -1, -1), weights=loaded, data_range=1.0)
    assert torch.equal(gray, expected_gray)
    assert len(loaded.sha256) == 64 and loaded.backbone_path == loaded.path


def test_every_naming_scheme_loads_the_same_weights(files: dict[str, Path]) -> None:
    expected = load_dists(files["pt"]).network.state_dict()
    for kind in ("safetensors", "reference"):
        loaded = load_dists(files[kind]).network.state_dict()
        assert list(loaded) == list(expected) and all(torch.equal(loaded[k], expected[k]) for k in expected), kind


def test_alpha_and_beta_alone_take_vgg16_from_the_torch_hub_cache(
        files: dict[str, Path], state: dict[str, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _block_network(monkeypatch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(pretrained.MissingWeightsError, match=f"(?s)no VGG-16 tensors.*{VGG16_CACHE_NAME}.*download.pytorch.org"):
        load_dists(files["alpha_beta"])
    cached = tmp_path / "hub" / "checkpoints" / VGG16_CACHE_NAME
    cached.parent.mkdir(parents=True)
    torch.save(_features(state) | {"classifier.0.weight": torch.zeros(2, 2)}, cached)
    with pytest.raises(ValueError, match="must have a SHA-256 starting with '397923af'"):
        load_dists(files["alpha_beta"])  # our random file is not torchvision's: the name's digits are checked
    monkeypatch.setattr(pretrained, "expected_sha256_prefix", lambda path: None)  # accept this test's own file
    loaded = load_dists(files["alpha_beta"])
    assert loaded.backbone_path == str(cached) and loaded.backbone_sha256 == pretrained.file_sha256(cached)
    expected = load_dists(files["pt"]).network.state_dict()
    assert all(torch.equal(loaded.network.state_dict()[k], expected[k]) for k in expected)


def test_no_network_is_touched(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _block_network(monkeypatch)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    result = assess(x, x.flip(-1), data_range=1.0, metrics=("dists", "psnr"), model_files={"dists": files["pt"]})
    assert result.rows[0]["dists"] > 0 and result.settings["model_files"] == {"dists": str(files["pt"])}


def test_dists_is_differentiable_in_the_images(files: dict[str, Path]) -> None:
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    y = torch.rand(1, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    value = dists(x, y, weights=load_dists(files["pt"]), data_range=1.0, reduction="mean")
    value.backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_dists_needs_a_valid_weights_file(files: dict[str, Path], state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="dists needs a model file you provide"):
        assess(x, x, data_range=1.0, metrics=("dists",))
    with pytest.raises(ValueError, match="DISTS weights file .*missing.pt' does not exist"):
        load_dists(tmp_path / "missing.pt")
    for name in ("junk.pt", "junk.safetensors"):
        (tmp_path / name).write_bytes(b"not a checkpoint")
        with pytest.raises(ValueError, match="cannot read DISTS weights"):
            load_dists(tmp_path / name)
    broken = dict(state)
    del broken["stage5.28.bias"]
    broken["alpha"] = torch.ones(1, 1474, 1, 1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=r"missing stage5.28.bias; wrong shape alpha \(1, 1474, 1, 1\)"):
        load_dists(tmp_path / "broken.pt")
    torch.save(dict(state) | {"lin0.model.1.weight": torch.ones(1, 64, 1, 1)}, tmp_path / "lpips_mixed.pt")
    with pytest.raises(ValueError, match="unexpected lin0.model.1.weight"):
        load_dists(tmp_path / "lpips_mixed.pt")
    torch.save(dict(state) | {"alpha": -state["alpha"], "beta": -state["beta"]}, tmp_path / "negative.pt")
    with pytest.raises(ValueError, match="finite alpha and beta with a positive sum"):
        load_dists(tmp_path / "negative.pt")
    torch.save(dict(state) | {"notes": {"a": 1}}, tmp_path / "nested.pt")
    with pytest.raises(ValueError, match="must map names to tensors; 'notes' holds dict"):
        load_dists(tmp_path / "nested.pt")
    loaded = load_dists(files["pt"])
    with pytest.raises(ValueError, match="at least 16x16"):
        dists(x[..., :8, :8], x[..., :8, :8], weights=loaded, data_range=1.0)
    four = torch.rand(1, 4, 32, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="got 4 channels"):
        dists(four, four, weights=loaded, data_range=1.0)


def test_the_command_line_takes_the_weights_file(files: dict[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from visionbench import cli

    _block_network(monkeypatch)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 40, 3), dtype=np.uint8) for _ in range(2)]
    for name, image in zip(("ref.png", "dist.png"), images, strict=True):
        Image.fromarray(image).save(tmp_path / name)
    code = cli.main(["quality", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--metrics", "dists",
                     "--model-file", f"dists={files['pt']}", "--json", "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert code == 0
    x, y = (torch.from_numpy(image).permute(2, 0, 1)[None] for image in images)
    expected = float(dists(x, y, weights=load_dists(files["pt"]))[0])
    assert expected > 0 and json.loads(out)["dists"]["value"] == pytest.approx(expected, rel=1e-9)
    code = cli.main(["quality", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--metrics", "dists",
                     "--out", str(tmp_path / "no_file")])
    assert code == 2 and "dists needs a model file you provide" in capsys.readouterr().err
