"""``--pretrained`` and ``--weights FILE`` for timm models (``--model timm:NAME``).

Every test uses timm's tiny ``test_*`` models and builds its own "pretrained" file: a random timm
state dict written into a fake Hugging Face cache in a temporary ``HF_HUB_CACHE``, laid out as
``hf download`` leaves it. Sockets are blocked (as in ``test_pretrained.py``), so nothing here can
reach the network; the one download path is tested with ``hf_hub_download`` replaced.
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
from PIL import Image
from safetensors.torch import save_file

import visionbench
from tests.network_guard import blocked_network
from visionbench import config as cfg
from visionbench.engine import initial_weights, rundir
from visionbench.engine.inference_spec import read_inference_spec
from visionbench.engine.run_model import build_model_and_weights, load_run_model
from visionbench.models import timm_backend

timm = pytest.importorskip("timm")

MODEL = "timm:test_resnet"
REPO = "timm/test_resnet.r160_in1k"  # timm's pretrained_cfg.hf_hub_id of test_resnet
URL = f"https://huggingface.co/{REPO}/resolve/main/model.safetensors"
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a snapshot is named by a 40-hex commit
STEM, HEAD = "conv1.0.weight", ("fc.weight", "fc.bias")  # test_resnet's first conv (deep stem) and classifier


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    with blocked_network():
        yield

@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face hub cache, the one searched (``HF_HUB_CACHE`` wins over ``HF_HOME``)."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def saved_state() -> dict[str, torch.Tensor]:
    """test_resnet's state dict with every float tensor random (batch-norm statistics included, so
    a loader that kept the model's own init could not pass for one that read the file)."""
    torch.manual_seed(5)
    state = timm.create_model("test_resnet").state_dict()
    return {name: (torch.rand_like(t) + 0.5 if name.endswith("running_var") else torch.randn_like(t))
            if t.is_floating_point() else t for name, t in state.items()}


def _put_in_cache(cache: Path, repo: str, state: dict[str, torch.Tensor], filename: str = "model.safetensors") -> Path:
    """Write ``state`` where ``hf download repo filename`` puts it: the snapshot of ``refs/main``."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / filename))
    return snapshot / filename


@pytest.fixture
def cached(hub_cache: Path, saved_state: dict[str, torch.Tensor]) -> Path:
    return _put_in_cache(hub_cache, REPO, saved_state)


def _build(num_classes: int = 3, in_channels: int = 3, **overrides: object) -> tuple[torch.nn.Module, object]:
    config = cfg.resolve(overrides={"model": MODEL, "pretrained": True, **overrides})
    return build_model_and_weights(config, SimpleNamespace(num_classes=num_classes, in_channels=in_channels), (64, 64))


def _write_folder(root: Path, classes: tuple[str, ...], per_class: int = 8, size: int = 40) -> Path:
    rng = np.random.default_rng(len(classes))
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name / f"{i:02d}.png")
    return root


# ------------------------------------------------------------------------------ finding the file


def test_the_fake_cache_is_where_huggingface_hub_and_timm_look(cached: Path, hub_cache: Path) -> None:
    from huggingface_hub import try_to_load_from_cache

    assert timm_backend.timm_weights_source(MODEL)[0] == REPO
    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=hub_cache) == str(cached)
    assert timm_backend.locate_timm_weights(MODEL) == (REPO, "model.safetensors", cached)
    assert timm_backend.cached_timm_weights(MODEL) == cached
    assert timm_backend.hf_url(REPO, "model.safetensors") == URL


def test_missing_cache_fails_naming_repo_file_folder_and_command(hub_cache: Path) -> None:
    config = cfg.resolve(overrides={"model": MODEL, "pretrained": True})
    with pytest.raises(timm_backend.MissingTimmWeightsError) as caught:
        initial_weights.check_available(config)
    message = str(caught.value)
    assert f"repo {REPO!r}" in message and "model.safetensors" in message and str(hub_cache) in message
    assert f"`hf download {REPO} model.safetensors`" in message and URL in message
    assert "--download-weights" in message
    # Both a FileNotFoundError and the torchvision path's MissingWeightsError (a ValueError: a clean CLI error).
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)
    assert timm_backend.cached_timm_weights(MODEL) is None


def test_missing_cache_is_a_cli_error_before_any_data_is_read(hub_cache: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench.cli import main

    missing = tmp_path / "no-such-folder"  # reading the data first would fail on this folder instead
    code = main(["train", "--data", f"folder:{missing}", "--model", MODEL, "--pretrained", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and f"hf download {REPO} model.safetensors" in err and "no-such-folder" not in err
    assert not (tmp_path / "run" / initial_weights.WEIGHTS_RECORD).exists()


def test_download_happens_only_when_asked(hub_cache: Path, saved_state: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_download(repo_id: str, filename: str, *, cache_dir: Path) -> str:
        calls.append((repo_id, filename, Path(cache_dir)))
        return str(_put_in_cache(Path(cache_dir), repo_id, saved_state, filename))

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    with pytest.raises(timm_backend.MissingTimmWeightsError):
        _build()
    initial_weights.check_available(cfg.resolve(overrides={"model": MODEL, "pretrained": True,
                                                           "download_weights": True}))
    assert calls == []  # neither a missing file nor the early check downloads
    model, (record, _) = _build(num_classes=1000, download_weights=True)
    assert calls == [(REPO, "model.safetensors", hub_cache)]
    assert record.url == URL and torch.equal(model.state_dict()["layer1.0.conv1.weight"],
                                             saved_state["layer1.0.conv1.weight"])


# ------------------------------------------------------------------------------ loading and fitting


def test_pretrained_loads_bit_for_bit(cached: Path, saved_state: dict[str, torch.Tensor]) -> None:
    model, (record, report) = _build(num_classes=1000)
    loaded = model.state_dict()
    assert loaded.keys() == saved_state.keys() and all(torch.equal(loaded[k], v) for k, v in saved_state.items())
    assert report.adapted == [] and report.reinitialised == [] and len(report.kept) == len(saved_state)
    assert record.name == MODEL and record.file == str(cached.absolute()) and record.url == URL
    assert record.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()


def test_head_is_reinitialised_and_a_grey_stem_sums_rgb(cached: Path, saved_state: dict[str, torch.Tensor]) -> None:
    model, (record, report) = _build(num_classes=3, in_channels=1)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved_state.items() if k not in (STEM, *HEAD))
    assert torch.equal(loaded[STEM], saved_state[STEM].sum(dim=1, keepdim=True))
    assert loaded["fc.weight"].shape == (3, saved_state["fc.weight"].shape[1]) and loaded["fc.bias"].shape == (3,)
    assert report.adapted == [f"{STEM}: 3 → 1 input channels (summed over RGB)"]
    assert [r.split(":")[0] for r in report.reinitialised] == list(HEAD)
    assert "re-initialised 2 (fc.weight: 1000 → 3 classes" in initial_weights.describe(record, report)


def test_a_four_channel_stem_repeats_rgb_scaled(cached: Path, saved_state: dict[str, torch.Tensor]) -> None:
    model, (_, report) = _build(num_classes=3, in_channels=4)
    rgb = saved_state[STEM]
    assert torch.equal(model.state_dict()[STEM], torch.cat([rgb, rgb[:, :1]], dim=1) * 0.75)
    assert report.adapted == [f"{STEM}: 3 → 4 input channels (RGB repeated, scaled by 3/C)"]


def test_weights_names_are_refused_for_timm_models(tmp_path: Path) -> None:
    named = cfg.resolve(overrides={"model": MODEL, "pretrained": True, "weights": "IMAGENET1K_V1"})
    with pytest.raises(ValueError, match=r"tag in the model name.*timm:resnet18\.a1_in1k"):
        initial_weights.check_available(named)
    (tmp_path / "w.pt").write_bytes(b"")
    with_file = cfg.resolve(overrides={"model": MODEL, "pretrained": True, "weights": str(tmp_path / "w.pt")})
    with pytest.raises(ValueError, match="pretrained must be false with --weights FILE"):
        initial_weights.check_available(with_file)
    missing = cfg.resolve(overrides={"model": MODEL, "weights": str(tmp_path / "nope.safetensors")})
    with pytest.raises(ValueError, match=r"does not exist.*--pretrained and a tag in the name"):
        build_model_and_weights(missing, SimpleNamespace(num_classes=3, in_channels=3), (64, 64))


# ------------------------------------------------------------------------------ --weights FILE


def test_weights_file_of_a_timm_state_dict(tmp_path: Path, saved_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "test_resnet.pth"
    torch.save(saved_state, path)
    config = cfg.resolve(overrides={"model": MODEL, "weights": str(path)})
    model, (record, report) = build_model_and_weights(config, SimpleNamespace(num_classes=3, in_channels=1), (64, 64))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved_state.items() if k not in (STEM, *HEAD))
    assert torch.equal(loaded[STEM], saved_state[STEM].sum(dim=1, keepdim=True)) and len(report.reinitialised) == 2
    assert record.name == str(path) and record.url is None
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert initial_weights.weights_preprocessing(config) is None  # a file: the dataset's own preprocessing


def test_weights_file_in_an_original_layout_goes_through_timms_conversion(tmp_path: Path) -> None:
    """ConvNeXt's original (Facebook) layout keeps the final norm and head at the top (``norm.*``,
    ``head.weight``); timm's checkpoint filter renames them to ``head.norm.*`` and ``head.fc.*``."""
    torch.manual_seed(2)
    timm_state = {k: torch.randn_like(v) for k, v in timm.create_model("test_convnext").state_dict().items()}
    original = {k.replace("head.norm.", "norm.").replace("head.fc.", "head."): v for k, v in timm_state.items()}
    assert set(original) != set(timm_state)
    path = tmp_path / "convnext_original.safetensors"
    save_file(original, str(path))
    config = cfg.resolve(overrides={"model": "timm:test_convnext", "weights": str(path)})
    model, (_, report) = build_model_and_weights(config, SimpleNamespace(num_classes=3, in_channels=3), (64, 64))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in timm_state.items() if not k.startswith("head.fc."))
    assert [r.split(":")[0] for r in report.reinitialised] == ["head.fc.weight", "head.fc.bias"]

    wrong = tmp_path / "other.safetensors"
    save_file({"not.a.tensor.of.convnext": torch.zeros(2)}, str(wrong))
    with pytest.raises(ValueError, match=r"must be a checkpoint of timm:test_convnext; timm cannot load them"):
        build_model_and_weights(cfg.resolve(overrides={"model": "timm:test_convnext", "weights": str(wrong)}),
                                SimpleNamespace(num_classes=3, in_channels=3), (64, 64))


# ------------------------------------------------------------------------------ preprocessing and hints


def test_preprocessing_follows_timms_pretrained_config() -> None:
    config = cfg.resolve(overrides={"model": MODEL, "pretrained": True})
    expected = {"resize_size": 168, "crop_size": 160, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    assert initial_weights.weights_preprocessing(config) == expected  # 168 = floor(160 / crop_pct 0.95)
    imagenet = initial_weights.weights_preprocessing(cfg.resolve(overrides={"model": "timm:test_efficientnet",
                                                                            "pretrained": True}))
    assert imagenet["mean"] == pytest.approx((0.485, 0.456, 0.406)) and imagenet["std"] == pytest.approx((0.229, 0.224, 0.225))
    assert initial_weights.pretrained_input(expected, None, 3) == ((160, 160), 168, (0.5,) * 3, (0.5,) * 3)
    assert initial_weights.pretrained_input(expected, 64, 1) == ((64, 64), 67, (0.5,), (0.5,))  # 64 * 168 / 160
    assert initial_weights.weights_preprocessing(cfg.resolve(overrides={"model": MODEL})) is None


def test_small_dataset_hint_names_the_cached_timm_weights(cached: Path) -> None:
    hint = initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": MODEL}), 120)
    assert hint is not None and str(cached) in hint and "--pretrained" in hint
    assert initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": MODEL}), 5000) is None
    assert initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": MODEL, "pretrained": True}), 120) is None
    # timm lists no Hugging Face weights for test_vit4: nothing to point at.
    assert initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": "timm:test_vit4"}), 120) is None


def test_no_hint_when_the_timm_weights_are_not_cached(hub_cache: Path) -> None:
    assert initial_weights.small_dataset_hint(cfg.resolve(overrides={"model": MODEL}), 120) is None


# ------------------------------------------------------------------------------ a whole run


def test_pretrained_timm_run_records_weights_predicts_alike_and_fine_tunes_on(
        cached: Path, saved_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    folder = _write_folder(tmp_path / "pets", ("a", "b", "c"))
    run = visionbench.train(data=f"folder:{folder}", model=MODEL, pretrained=True, image_size=64, epochs=1,
                            batch_size=8, quiet=True, device="cpu", workers=0, out=tmp_path / "run").run_dir
    record = json.loads((run / initial_weights.WEIGHTS_RECORD).read_text())
    assert record["name"] == MODEL and record["file"] == str(cached.absolute()) and record["url"] == URL
    assert record["sha256"] == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert [r.split(":")[0] for r in record["reinitialised"]] == list(HEAD) and record["adapted"] == []
    assert record["kept"] == len(saved_state) - 2
    assert f"initial weights {MODEL}" in (run / rundir.LOG).read_text()

    spec = read_inference_spec(run)
    assert spec.image_size == (64, 64) and spec.resize_size == 67  # round(64 * 168 / 160)
    assert spec.mean == pytest.approx((0.5, 0.5, 0.5)) and spec.std == pytest.approx((0.5, 0.5, 0.5))

    cached.unlink()  # predicting loads the run's own weights strictly, not the cached file
    image = folder / "a" / "00.png"
    rows = visionbench.predict(run, [image], out=tmp_path / "pred", device="cpu").rows
    model = load_run_model(run / rundir.BEST_WEIGHTS, cfg.resolve(config_file=run / rundir.CONFIG), spec,
                           spec.image_size)
    from torchvision.transforms import v2

    pixels = torch.from_numpy(np.array(Image.open(image).convert("RGB"))).permute(2, 0, 1)
    expected = v2.Compose([v2.Resize(67, antialias=True), v2.CenterCrop(64), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(list(spec.mean), list(spec.std))])(pixels)
    with torch.no_grad():
        probs = torch.softmax(model(expected[None]), dim=1)[0]
    assert rows[0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)

    # The run's own checkpoint (3 classes) as --weights FILE of a 2-class, 1-channel model: same
    # tensor names, so it is fitted directly (timm's loader would refuse its 3-class head).
    best = run / rundir.BEST_WEIGHTS
    from safetensors.torch import load_file

    trained = load_file(str(best))
    config = cfg.resolve(overrides={"model": MODEL, "weights": str(best)})
    model, (_, report) = build_model_and_weights(config, SimpleNamespace(num_classes=2, in_channels=1), (64, 64))
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.items() if k not in (STEM, *HEAD))
    assert torch.equal(loaded[STEM], trained[STEM].sum(dim=1, keepdim=True))
    assert [r.split(":")[0] for r in report.reinitialised] == list(HEAD)


def test_a_vit_at_another_size_gets_its_position_embedding_resampled_by_timm(hub_cache: Path) -> None:
    """timm's ViTs are built for one input side; weights trained at 160 px fine-tune at 64 px the way
    timm fine-tunes them: its loader resamples the position embedding (class token kept)."""
    from timm.layers import resample_abs_pos_embed

    torch.manual_seed(6)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v
             for k, v in timm.create_model("test_vit").state_dict().items()}
    _put_in_cache(hub_cache, "timm/test_vit.r160_in1k", state)
    config = cfg.resolve(overrides={"model": "timm:test_vit", "pretrained": True})
    model, (_, report) = build_model_and_weights(config, SimpleNamespace(num_classes=3, in_channels=3), (64, 64))
    loaded = model.state_dict()
    grid = model.patch_embed.grid_size
    expected = resample_abs_pos_embed(state["pos_embed"], new_size=grid, num_prefix_tokens=model.num_prefix_tokens)
    assert loaded["pos_embed"].shape == expected.shape and torch.equal(loaded["pos_embed"], expected)
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k not in ("pos_embed", "head.weight", "head.bias"))
    assert [r.split(":")[0] for r in report.reinitialised] == ["head.weight", "head.bias"]
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, 64, 64)).shape == (2, 3)
