"""The wide model zoo: every torchvision classifier, and timm's as ``timm:NAME``.

torchvision's ~80 classifiers are too big to train on the test CPU (up to 644M parameters), so each
is built and run on the *meta* device (shapes only, no memory, no arithmetic) at its minimum size
with 1 and 3 channels; a sample of the unusual ones (aux heads, 75 px minimum, RegNet) runs for real.
``tests/models/test_registry.py`` trains one step of every classifier not in :data:`CPU_HEAVY`.
timm's tests use its tiny ``test_*`` models and a fake Hugging Face cache; no test touches the network.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from visionbench._extras import MissingExtraError
from visionbench.models import MODELS, create_model, list_models, model_input_size
from visionbench.models.catalog import TORCHVISION_CLASSIFIERS

NUM_CLASSES = 5

CPU_HEAVY = frozenset({
    # Over ~1.5 s to build and step on one CPU thread (over ~30M parameters, or a heavy stem):
    # built and run on the meta device below instead of for real in test_registry.py.
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "densenet161", "efficientnet_b5",
    "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s",
    "inception_v3", "maxvit_t", "regnet_x_16gf", "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_8gf",
    "resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d", "swin_b", "swin_s", "swin_v2_b", "swin_v2_s",
    "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vit_b_32",
    "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
})
"""Classifiers test_registry.py does not train for real (vit_b_16, 86M, stays: it always was)."""

# Unusual entries run for real: aux heads off (googlenet, inception_v3 at its 75 px minimum),
# RegNet (which the meta device cannot build unaided), a fire-module net and a small ViT-free net.
REAL_SAMPLE = ("googlenet", "inception_v3", "regnet_x_400mf", "squeezenet1_0")


# --------------------------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------------------------


def test_the_catalogue_names_every_torchvision_classifier() -> None:
    import torchvision.models as tvm

    # Drift: a torchvision upgrade that adds or removes a classifier fails here; update
    # TORCHVISION_CLASSIFIERS (and its sizes) in visionbench/models/catalog.py.
    assert sorted(TORCHVISION_CLASSIFIERS) == sorted(tvm.list_models(module=tvm))
    assert set(TORCHVISION_CLASSIFIERS) <= set(list_models(task="classify"))
    assert CPU_HEAVY <= set(TORCHVISION_CLASSIFIERS)  # no stale names


@pytest.fixture()
def meta_regnet(monkeypatch: pytest.MonkeyPatch) -> None:
    """RegNet computes its block widths with torch ops, which the meta device cannot turn into
    Python numbers: compute them on the CPU (the model itself is still built on meta)."""
    from torchvision.models.regnet import BlockParams

    compute = BlockParams.from_init_params.__func__  # type: ignore[attr-defined]

    def on_cpu(cls: type, *args: object, **kwargs: object) -> object:
        with torch.device("cpu"):
            return compute(cls, *args, **kwargs)

    monkeypatch.setattr(BlockParams, "from_init_params", classmethod(on_cpu))


@pytest.mark.parametrize("name", TORCHVISION_CLASSIFIERS)
def test_every_torchvision_classifier_runs_at_its_minimum_size(name: str, meta_regnet: None) -> None:
    info = MODELS.info(name)
    side = model_input_size(name, (1, 1))[0]  # the catalogue's minimum, rounded up to its multiple
    assert side % info["size_multiple"] == 0 and info["min_size"] <= side < info["min_size"] + info["size_multiple"]
    assert info["default_size"] % info["size_multiple"] == 0 and info["default_size"] >= info["min_size"]
    for channels, size in ((1, side), (3, side)):
        with torch.device("meta"):
            model = create_model(name, num_classes=NUM_CLASSES, in_channels=channels, image_size=size)
        with torch.no_grad():
            logits = model.eval()(torch.empty(2, channels, size, size, device="meta"))
        assert logits.shape == (2, NUM_CLASSES), f"{name} at {channels}x{size}x{size}"


@pytest.mark.parametrize("name", REAL_SAMPLE)
def test_a_sample_trains_for_real_at_its_minimum_size(name: str) -> None:
    torch.manual_seed(0)
    side = model_input_size(name, (1, 1))[0]
    for channels in (1, 3):
        model = create_model(name, num_classes=NUM_CLASSES, in_channels=channels, image_size=side).train()
        logits = model(torch.randn(2, channels, side, side))  # a plain tensor in train mode: no aux heads
        assert isinstance(logits, torch.Tensor) and logits.shape == (2, NUM_CLASSES)
        logits.square().mean().backward()
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_sizes_of_the_unusual_classifiers() -> None:
    assert model_input_size("maxvit_t", (32, 32)) == (224, 224)
    assert model_input_size("maxvit_t", (300, 300)) == (448, 448)
    assert model_input_size("vit_h_14", (8, 8)) == (42, 42)
    assert model_input_size("inception_v3", None) == (299, 299)
    assert model_input_size("alexnet", (32, 32)) == (64, 64)


# --------------------------------------------------------------------------------------------
# timm
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def timm() -> object:
    return pytest.importorskip("timm")


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", ["timm:test_convnext", "timm:test_vit"])
def test_a_timm_model_builds_for_any_classes_and_channels(name: str, timm: object) -> None:
    assert name in MODELS and MODELS.info(name)["task"] == "classify"
    side = model_input_size(name, (32, 32))[0]
    assert side == (160 if name.endswith("vit") else 32)  # a ViT keeps its trained side (or multiples)
    for channels in (1, 3):
        model = create_model(name, num_classes=NUM_CLASSES, in_channels=channels, image_size=side)
        logits = model.train()(torch.randn(2, channels, side, side))
        assert logits.shape == (2, NUM_CLASSES)


def test_an_unknown_timm_name_suggests_close_ones(timm: object) -> None:
    MODELS.check("timm:convnext_nano")
    MODELS.check("timm:convnext_nano.in12k_ft_in1k")  # with a pretrained tag
    with pytest.raises(ValueError, match=r"timm:convnext_nan.*Did you mean 'timm:convnext_nano'.*"
                                         r"visionbench list models 'timm:PATTERN'"):
        MODELS.check("timm:convnext_nan")
    assert "timm:convnext_nan" not in MODELS


def test_the_config_check_accepts_timm_names(timm: object) -> None:
    from visionbench.config import ClassifyConfig, validate

    assert validate(ClassifyConfig(model="timm:test_resnet")).model == "timm:test_resnet"
    with pytest.raises(ValueError, match="Did you mean 'timm:test_resnet'"):
        validate(ClassifyConfig(model="timm:test_resnt"))


def test_without_timm_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench import cli

    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'visionbench\[timm\]'"):
        MODELS.check("timm:convnext_nano")
    assert cli.main(["list", "models", "timm:*"]) == 1
    assert "pip install 'visionbench[timm]'" in capsys.readouterr().err
    assert cli.main(["list", "models"]) == 0
    assert "pip install 'visionbench[timm]'" in capsys.readouterr().err


def test_list_models_points_to_timm_and_lists_it_by_pattern(timm: object,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from visionbench import cli

    assert cli.main(["list", "models"]) == 0
    out, err = capsys.readouterr()
    assert "timm:" not in out and "visionbench list models 'timm:PATTERN'" in err  # stdout: registered names only
    assert cli.main(["list", "models", "timm:test_vit*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["timm:test_vit", "timm:test_vit2", "timm:test_vit3",
                                                   "timm:test_vit4", "timm:test_vit_relpos"]
    assert lines[0].split()[1] == "classify" and "160 px" in lines[0]


def _fake_hf_cache(home: Path, repo: str, filename: str, state: dict[str, torch.Tensor]) -> Path:
    """Write ``state`` where ``hf download repo filename`` would put it under ``HF_HOME=home``."""
    from safetensors.torch import save_file

    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0123abcd")
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / filename))
    return snapshot / filename


def test_timm_pretrained_state_reads_the_local_hf_cache_bit_for_bit(
        timm: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    from visionbench.models.timm_backend import timm_pretrained_state, timm_weights_source

    repo, files = timm_weights_source("timm:test_convnext")
    assert repo == "timm/test_convnext.r160_in1k" and files[0] == "model.safetensors"
    torch.manual_seed(1)
    saved = timm.create_model("test_convnext").state_dict()  # type: ignore[attr-defined]
    _fake_hf_cache(tmp_path, repo, files[0], saved)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    state = timm_pretrained_state("timm:test_convnext")
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    # Loaded into a model of other classes and channels by the caller: everything but head and stem fits.
    model: nn.Module = create_model("timm:test_convnext", num_classes=NUM_CLASSES, in_channels=1, image_size=32)
    mismatched = {k for k, v in model.state_dict().items() if v.shape != state[k].shape}
    assert mismatched == {"stem.0.weight", "head.fc.weight", "head.fc.bias"}


def test_timm_pretrained_state_without_the_cache_names_repo_file_and_command(
        timm: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None) -> None:
    from visionbench.models.timm_backend import timm_pretrained_state

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        timm_pretrained_state("timm:test_convnext")
    message = str(info.value)
    assert str(tmp_path / "hub") in message and "repo 'timm/test_convnext.r160_in1k'" in message
    assert "`hf download timm/test_convnext.r160_in1k model.safetensors`" in message


def test_timm_pretrained_state_from_a_local_file(timm: object, tmp_path: Path, no_network: None) -> None:
    from safetensors.torch import save_file

    from visionbench.models.timm_backend import timm_pretrained_state

    saved = timm.create_model("test_resnet").state_dict()  # type: ignore[attr-defined]
    save_file({k: v.contiguous() for k, v in saved.items()}, str(tmp_path / "w.safetensors"))
    state = timm_pretrained_state("test_resnet", file=tmp_path / "w.safetensors")
    assert all(torch.equal(state[k], saved[k]) for k in saved)
