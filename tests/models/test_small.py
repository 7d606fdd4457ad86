"""``cnn-small``: the full-resolution network up to 32 px, the strided one above (issue 12); old run
directories of either still load; the strided network learns a tiny synthetic folder."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from visionbench.config import ClassifyConfig
from visionbench.engine.checkpoint import save_weights
from visionbench.engine.run_model import load_run_model
from visionbench.models import create_model
from visionbench.models.small import SmallCNN, StridedCNN, is_small_cnn_state, stem_stride


@pytest.mark.parametrize("size, kind", [(8, SmallCNN), (28, SmallCNN), (32, SmallCNN), (33, StridedCNN),
                                        (64, StridedCNN), (100, StridedCNN), (128, StridedCNN)])
@pytest.mark.parametrize("channels", [1, 3])
def test_cnn_small_network_follows_the_input_size(size: int, kind: type, channels: int) -> None:
    model = create_model("cnn-small", num_classes=5, in_channels=channels, image_size=size).eval()
    assert type(model) is kind
    with torch.no_grad():
        assert model(torch.rand(2, channels, size, size)).shape == (2, 5)


def test_strided_stem_brings_inputs_to_about_32_pixels() -> None:
    for size in (48, 64, 128, 224, 256):
        model = StridedCNN(3, 4, size)
        side = model.stem(torch.rand(1, 3, size, size)).shape[-1]
        assert 16 <= side <= 32, (size, side)
    assert [stem_stride(s) for s in (33, 64, 127, 128, 224)] == [2, 2, 3, 4, 7]


def test_strided_network_is_much_cheaper_than_the_full_resolution_one_at_64px() -> None:
    """What makes the step fast, counted (not timed: the machine may be busy): multiply-adds of
    the convolutions for one 64×64 image."""
    def conv_macs(model: torch.nn.Module) -> int:
        total = 0

        def count(module: torch.nn.Conv2d, _: object, output: torch.Tensor) -> None:
            nonlocal total
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw

        hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            model.eval()(torch.rand(1, 3, 64, 64))
        for hook in hooks:
            hook.remove()
        return total

    assert conv_macs(StridedCNN(3, 10, 64)) * 8 < conv_macs(SmallCNN(3, 10))  # 16M vs 155M


def _spec(num_classes: int, in_channels: int) -> SimpleNamespace:
    return SimpleNamespace(num_classes=num_classes, in_channels=in_channels)


@pytest.mark.parametrize("size", [8, 64])
def test_old_full_resolution_checkpoints_still_load(tmp_path: Path, size: int) -> None:
    """Runs above 32 px trained before the strided network hold SmallCNN weights: they get SmallCNN back."""
    old = SmallCNN(3, 4, width=32).eval()
    save_weights(old.state_dict(), tmp_path / "best.safetensors")
    model = load_run_model(tmp_path / "best.safetensors", ClassifyConfig(), _spec(4, 3), (size, size))
    assert type(model) is SmallCNN and not model.training
    images = torch.rand(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(images), old(images))


def test_strided_checkpoints_load_as_strided(tmp_path: Path) -> None:
    new = create_model("cnn-small", num_classes=4, in_channels=1, image_size=64).eval()
    assert not is_small_cnn_state(new.state_dict())
    save_weights(new.state_dict(), tmp_path / "best.safetensors")
    model = load_run_model(tmp_path / "best.safetensors", ClassifyConfig(), _spec(4, 1), (64, 64))
    assert type(model) is StridedCNN
    images = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(images), new(images))


def test_a_mismatched_checkpoint_is_still_refused(tmp_path: Path) -> None:
    save_weights(SmallCNN(3, 7, width=32).state_dict(), tmp_path / "best.safetensors")
    with pytest.raises(ValueError, match="does not fit this model"):
        load_run_model(tmp_path / "best.safetensors", ClassifyConfig(), _spec(4, 3), (64, 64))


def _synthetic_folder(root: Path, per_class: int = 24, side: int = 64) -> Path:
    """Three classes a small net tells apart only by spatial structure: horizontal stripes,
    vertical stripes, a bright square; random phase, period, position and noise."""
    rng = np.random.default_rng(0)
    grid = np.arange(side, dtype=np.float32)
    for name in ("horizontal", "vertical", "square"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            period, phase = rng.uniform(6, 12), rng.uniform(0, 12)
            if name == "horizontal":
                image = np.repeat((np.sin(2 * np.pi * (grid + phase) / period) > 0)[:, None], side, axis=1)
            elif name == "vertical":
                image = np.repeat((np.sin(2 * np.pi * (grid + phase) / period) > 0)[None, :], side, axis=0)
            else:
                image = np.zeros((side, side), dtype=bool)
                y, x = rng.integers(4, side - 28, size=2)
                image[y:y + 24, x:x + 24] = True
            pixels = 0.25 + 0.5 * image + rng.normal(0, 0.08, (side, side))
            rgb = np.clip(np.stack([pixels] * 3, axis=-1) * 255, 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / name / f"{i}.png")
    return root


def test_strided_network_learns_a_tiny_folder_at_64px(tmp_path: Path) -> None:
    from visionbench import train

    root = _synthetic_folder(tmp_path / "three", per_class=20)
    result = train(data=f"folder:{root}", epochs=6, batch_size=16, test_fraction=0.25, val_fraction=0.15,
                   seed=0, quiet=True, out=tmp_path / "run", workers=0)
    assert result.config.model == "cnn-small"
    assert json.loads((result.run_dir / "inference.json").read_text())["image_size"] == [64, 64]
    assert result.metrics["accuracy"]["value"] >= 0.6  # chance is 1/3; 1.0 on seeds 0 and 1


def test_an_old_full_resolution_run_resumes_and_extends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run above 32 px trained with the old full-resolution cnn-small resumes on SmallCNN (EMA
    validation copy and test included), instead of failing to load into the strided network."""
    from visionbench import train
    from visionbench.models import classifiers

    root = _synthetic_folder(tmp_path / "three", per_class=6, side=40)
    common = {"epochs": 1, "batch_size": 6, "seed": 0, "quiet": True, "workers": 0, "ema": True}
    with monkeypatch.context() as old_visionbench:  # what visionbench built for cnn-small before issue 12
        old_visionbench.setattr(classifiers, "FULL_RESOLUTION_MAX", 10_000)
        first = train(data=f"folder:{root}", out=tmp_path / "run", **common)
    assert is_small_cnn_state(load_file(str(first.run_dir / "checkpoints" / "best.safetensors")))
    extended = train(resume=first.run_dir, epochs=2, quiet=True, workers=0)
    history = [json.loads(line) for line in (first.run_dir / "history.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in history] == [1, 2]
    assert is_small_cnn_state(load_file(str(extended.run_dir / "checkpoints" / "best.safetensors")))
    assert "accuracy" in extended.metrics
