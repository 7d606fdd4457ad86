"""Pretrained weights from the local torch hub cache, and fine-tuning that adapts heads and stems.

Every test builds its own "pretrained" file (a torchvision resnet18's random state dict saved
under the file name torchvision expects, inside a temporary ``TORCH_HOME``) and runs with sockets
blocked, so nothing here can reach the network.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

import visionbench
from tests.network_guard import blocked_network
from visionbench import config as cfg
from visionbench.engine import classify, initial_weights, rundir
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.run_model import build_model_and_weights, load_run_model
from visionbench.models import adapt, pretrained

RESNET18_FILE = "resnet18-f37072fd.pth"
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    with blocked_network():
        yield

@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.fixture
def cached_resnet18(torch_home: Path, resnet18_state: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake weights under torchvision's exact file name; the hash check is pointed at this
    file's real SHA-256 (no file of ours can carry the published ``f37072fd`` prefix)."""
    path = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    path.parent.mkdir(parents=True)
    torch.save(resnet18_state, path)
    real = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(pretrained, "expected_sha256_prefix", lambda p: real[:8] if p.name == RESNET18_FILE else None)
    return path


def _resnet(num_classes: int = 3, in_channels: int = 3, **overrides: object) -> tuple[torch.nn.Module, object]:
    config = cfg.resolve(overrides={"model": "resnet18", "pretrained": True, **overrides})
    data = SimpleNamespace(num_classes=num_classes, in_channels=in_channels)
    return build_model_and_weights(config, data, (64, 64))


def _write_folder(root: Path, classes: tuple[str, ...], per_class: int = 10, size: int = 32) -> Path:
    rng = np.random.default_rng(len(classes))
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


# ------------------------------------------------------------------------------ finding the file


def test_weights_names_resolve_to_the_enum_and_its_cache_file(torch_home: Path) -> None:
    short = pretrained.resolve_weights("resnet18", "IMAGENET1K_V1")
    assert short is pretrained.resolve_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    assert short is pretrained.resolve_weights("resnet18") is pretrained.resolve_weights("resnet18", "DEFAULT")
    assert pretrained.weights_file(short) == torch_home / "hub" / "checkpoints" / RESNET18_FILE
    assert pretrained.is_weights_name("IMAGENET1K_V1") and not pretrained.is_weights_name("runs/x/best.safetensors")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):  # the names the model has are listed
        pretrained.resolve_weights("resnet18", "IMAGENET1K_V2")
    with pytest.raises(ValueError, match="ResNet18_Weights"):  # another model's enum
        pretrained.resolve_weights("resnet18", "ResNet34_Weights.IMAGENET1K_V1")
    with pytest.raises(ValueError, match="no torchvision pretrained weights"):
        pretrained.resolve_weights("cnn-small")


def test_missing_file_fails_at_once_naming_file_url_and_command(torch_home: Path) -> None:
    with pytest.raises(pretrained.MissingWeightsError) as caught:
        _resnet()
    message = str(caught.value)
    assert str(torch_home / "hub" / "checkpoints" / RESNET18_FILE) in message
    assert RESNET18_URL in message
    assert "torchvision.models.get_weight('ResNet18_Weights.IMAGENET1K_V1').get_state_dict(progress=True)" in message
    assert "--download-weights" in message


def test_missing_file_is_a_clean_cli_error(torch_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from visionbench.cli import main

    folder = _write_folder(tmp_path / "pets", ("a", "b"))
    code = main(["train", "--data", f"folder:{folder}", "--model", "resnet18", "--pretrained", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path / "run")])
    assert code == 2 and RESNET18_FILE in capsys.readouterr().err


def test_a_file_whose_hash_does_not_match_its_name_is_refused(torch_home: Path, resnet18_state: dict) -> None:
    path = torch_home / "hub" / "checkpoints" / RESNET18_FILE
    path.parent.mkdir(parents=True)
    torch.save(resnet18_state, path)  # a random state dict cannot have the published f37072fd… hash
    with pytest.raises(ValueError, match="SHA-256 starting with 'f37072fd'"):
        _resnet()


def test_download_happens_only_when_asked(torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr("torch.hub.load_state_dict_from_url", lambda url, **kw: calls.append(url))
    weights = pretrained.resolve_weights("resnet18")
    with pytest.raises(pretrained.MissingWeightsError):
        pretrained.locate_weights(weights)
    assert calls == []
    pretrained.locate_weights(weights, download=True)
    assert calls == [RESNET18_URL]


# ------------------------------------------------------------------------------ adapting


def test_pretrained_loads_bit_for_bit_and_replaces_the_head(cached_resnet18: Path, resnet18_state: dict) -> None:
    model, (record, report) = _resnet(num_classes=1000)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in resnet18_state.items())
    assert report.reinitialised == [] and report.adapted == [] and len(report.kept) == len(resnet18_state)

    model, (record, report) = _resnet(num_classes=3)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in resnet18_state.items() if not k.startswith("fc."))
    assert loaded["fc.weight"].shape == (3, 512) and loaded["fc.bias"].shape == (3,)
    assert [r.split(":")[0] for r in report.reinitialised] == ["fc.weight", "fc.bias"]
    assert record.name == "ResNet18_Weights.IMAGENET1K_V1" and record.file == str(cached_resnet18.resolve())
    assert record.sha256 == hashlib.sha256(cached_resnet18.read_bytes()).hexdigest()
    assert "re-initialised 2 (fc.weight: 1000 → 3 classes" in initial_weights.describe(record, report)


def test_weights_name_loads_the_same_file(cached_resnet18: Path, resnet18_state: dict) -> None:
    model, (record, _) = _resnet(num_classes=1000, pretrained=False, weights="IMAGENET1K_V1")
    assert record.name == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(model.state_dict()["conv1.weight"], resnet18_state["conv1.weight"])


def test_grayscale_stem_is_the_sum_over_rgb(cached_resnet18: Path, resnet18_state: dict) -> None:
    model, (_, report) = _resnet(num_classes=3, in_channels=1)
    assert torch.equal(model.state_dict()["conv1.weight"], resnet18_state["conv1.weight"].sum(dim=1, keepdim=True))
    assert report.adapted == ["conv1.weight: 3 → 1 input channels (summed over RGB)"]


def test_four_channel_stem_repeats_rgb_scaled() -> None:
    rgb = torch.randn(8, 3, 3, 3)
    four = adapt.adapt_input_conv(rgb, 4)
    assert torch.equal(four[:, :3], rgb * 0.75) and torch.equal(four[:, 3], rgb[:, 0] * 0.75)
    assert torch.allclose(four.sum(dim=1), rgb.sum(dim=1) * 0.75 + rgb[:, 0] * 0.75)


def test_other_mismatches_are_errors_naming_the_tensors(resnet18_state: dict) -> None:
    model_state = dict(resnet18_state)
    model_state["layer1.0.conv1.weight"] = torch.zeros(32, 64, 3, 3)
    with pytest.raises(ValueError, match=r"layer1.0.conv1.weight: file \(64, 64, 3, 3\) vs model \(32, 64, 3, 3\)"):
        adapt.fit_state_dict(model_state, resnet18_state, "x.pth", num_classes=1000)
    stored = {k: v for k, v in resnet18_state.items() if k != "layer4.1.bn2.weight"}
    with pytest.raises(ValueError, match="layer4.1.bn2.weight .* missing"):
        adapt.fit_state_dict(dict(resnet18_state), stored, "x.pth", num_classes=1000)


def test_pretrained_with_a_weights_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"")
    config = cfg.resolve(overrides={"model": "resnet18", "pretrained": True, "weights": str(tmp_path / "w.pt")})
    with pytest.raises(ValueError, match="pretrained must be false with --weights FILE"):
        initial_weights.weights_enum(config)
    detector = cfg.resolve(overrides={"task": "detect", "model": "fasterrcnn_resnet50_fpn", "pretrained": True})
    with pytest.raises(ValueError, match="--pretrained-backbone"):
        initial_weights.weights_enum(detector)


# ------------------------------------------------------------------------------ preprocessing


def test_pretrained_data_uses_the_weights_preprocessing(tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "pets", ("a", "b"))
    config = cfg.resolve(overrides={"model": "resnet18", "pretrained": True, "data": f"folder:{folder}"})
    bundle = classify.build_data(config)
    assert bundle.image_size == (224, 224) and bundle.resize_size == 256
    assert bundle.mean == pytest.approx((0.485, 0.456, 0.406)) and bundle.std == pytest.approx((0.229, 0.224, 0.225))
    images, _ = bundle.test[(0, 0, [0])]
    assert images.shape == (1, 3, 224, 224)
    plain = classify.build_data(cfg.resolve(overrides={"model": "resnet18", "data": f"folder:{folder}"}))
    assert plain.resize_size is None


def test_small_dataset_hint_names_the_cached_weights(cached_resnet18: Path) -> None:
    config = cfg.resolve(overrides={"model": "resnet18"})
    assert "--pretrained" in initial_weights.small_dataset_hint(config, 120)
    assert initial_weights.small_dataset_hint(config, 5000) is None
    assert initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": "resnet18", "pretrained": True}), 120) is None
    assert initial_weights.small_dataset_hint(cfg.resolve(), 120) is None  # cnn-small has no torchvision weights


# ------------------------------------------------------------------------------ whole runs


def test_pretrained_run_records_weights_and_predict_reproduces_its_preprocessing(
        cached_resnet18: Path, tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "pets", ("a", "b", "c"))
    run = visionbench.train(data=f"folder:{folder}", model="resnet18", pretrained=True, image_size=64, epochs=1,
                            batch_size=8, quiet=True, device="cpu", workers=0, out=tmp_path / "run").run_dir
    record = json.loads((run / initial_weights.WEIGHTS_RECORD).read_text())
    assert record["name"] == "ResNet18_Weights.IMAGENET1K_V1" and record["file"] == str(cached_resnet18.resolve())
    assert record["sha256"] == hashlib.sha256(cached_resnet18.read_bytes()).hexdigest()
    assert record["url"] == RESNET18_URL and [r.split(":")[0] for r in record["reinitialised"]] == ["fc.weight", "fc.bias"]
    log = (run / rundir.LOG).read_text()
    assert "initial weights ResNet18_Weights.IMAGENET1K_V1" in log and "re-initialised 2" in log

    spec = read_inference_spec(run)
    assert spec.image_size == (64, 64) and spec.resize_size == 73  # 64 * 256 / 224
    assert spec.mean == pytest.approx((0.485, 0.456, 0.406)) and spec.std == pytest.approx((0.229, 0.224, 0.225))

    cached_resnet18.unlink()  # predicting loads the run's own weights strictly, not the pretrained file
    image = folder / "a" / "00.png"
    rows = visionbench.predict(run, [image], out=tmp_path / "pred", device="cpu").rows
    config = cfg.resolve(config_file=run / rundir.CONFIG)
    model = load_run_model(run / rundir.BEST_WEIGHTS, config, spec, spec.image_size)
    from torchvision.transforms import v2

    pixels = torch.from_numpy(np.array(Image.open(image).convert("RGB"))).permute(2, 0, 1)
    expected = v2.Compose([v2.Resize(73, antialias=True), v2.CenterCrop(64), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(list(spec.mean), list(spec.std))])(pixels)
    with torch.no_grad():
        probs = torch.softmax(model(expected[None]), dim=1)[0]
    assert rows[0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_own_run_fine_tunes_onto_other_classes(tmp_path: Path) -> None:
    first = _write_folder(tmp_path / "three", ("a", "b", "c"))
    second = _write_folder(tmp_path / "two", ("x", "y"))
    common = {"model": "cnn-small", "image_size": 32, "epochs": 1, "batch_size": 8, "quiet": True, "device": "cpu",
              "workers": 0}
    source = visionbench.train(data=f"folder:{first}", out=tmp_path / "first", **common).run_dir
    best = source / rundir.BEST_WEIGHTS
    run = visionbench.train(data=f"folder:{second}", weights=str(best), out=tmp_path / "second", **common).run_dir
    record = json.loads((run / initial_weights.WEIGHTS_RECORD).read_text())
    assert record["name"] == str(best) and record["sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert len(record["reinitialised"]) == 2 and record["adapted"] == [] and record["kept"] > 0
    assert "re-initialised 2" in (run / rundir.LOG).read_text()
    assert (run / rundir.METRICS).is_file()


def test_fine_tuning_reads_safetensors_with_other_classes(tmp_path: Path) -> None:
    """The refusal of issue 12 (``fc.weight: file (1000, 512) vs model (2, 512)``) is now a head swap."""
    torch.manual_seed(0)
    state = torchvision.models.resnet18(weights=None).state_dict()
    save_file(state, str(tmp_path / "r18.safetensors"))
    config = cfg.resolve(overrides={"model": "resnet18", "weights": str(tmp_path / "r18.safetensors")})
    model, (record, report) = build_model_and_weights(config, SimpleNamespace(num_classes=2, in_channels=1), (64, 64))
    assert model.fc.weight.shape == (2, 512) and len(report.reinitialised) == 2 and len(report.adapted) == 1
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
