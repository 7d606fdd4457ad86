"""Fine-tuning controls: a frozen backbone, unfrozen at an epoch, a backbone LR scale, exact resume
across the unfreeze, and ImageNet backbones for torchvision detectors/segmenters from the local cache."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.engine.cli_runs import assert_same_checkpoints, finish, start_visionbench
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir
from visionbench.engine.finetune import backbone_frozen
from visionbench.engine.optim import build_optimizer, decay_groups, lr_factor_fn, scale_backbone_lr
from visionbench.models import pretrained
from visionbench.models.backbones import load_pretrained_backbone
from visionbench.models.parts import set_backbone_trainable, split_backbone
from visionbench.models.small import MLP, SmallCNN


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ----------------------------------------------------------------------------------- split


def test_split_puts_the_final_layer_in_the_head() -> None:
    backbone, head = split_backbone(SmallCNN(3, 10))
    assert [tuple(p.shape) for p in head] == [(10, 128), (10,)]
    mlp = MLP(1, (8, 8), 5)
    backbone, head = split_backbone(mlp)
    assert [p is q for p, q in zip(head, mlp.net[-1].parameters(), strict=True)] == [True, True]
    assert len(backbone) == 4


def test_split_of_torchvision_classifier_and_detector() -> None:
    from visionbench.models import create_model

    resnet = create_model("resnet18", num_classes=3, in_channels=3, image_size=32)
    _, head = split_backbone(resnet)
    assert [p is q for p, q in zip(head, resnet.fc.parameters(), strict=True)] == [True, True]
    detector = create_model("tiny_fcos", num_classes=2, in_channels=3, image_size=64)
    backbone, _ = split_backbone(detector)
    assert {id(p) for p in backbone} == {id(p) for p in detector.backbone.parameters()}


# ----------------------------------------------------------------------------------- freeze


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_frozen_backbone_is_unchanged_after_steps(optimizer: str) -> None:
    torch.manual_seed(0)
    model = SmallCNN(3, 4)
    opt = build_optimizer(optimizer, model.parameters(), lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.1)
    model.train()
    assert set_backbone_trainable(model, False)
    assert not set_backbone_trainable(model, False)  # already frozen: nothing changes
    backbone_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("head.")}
    head_before = model.head[1].weight.detach().clone()
    for _ in range(2):
        loss = nn.functional.cross_entropy(model(torch.rand(8, 3, 16, 16)), torch.randint(0, 4, (8,)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    after = model.state_dict()
    for key, value in backbone_before.items():  # weights and batch-norm running statistics alike
        assert torch.equal(value, after[key]), key
    assert not torch.equal(head_before, model.head[1].weight)
    assert set_backbone_trainable(model, True)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_backbone_by_epoch() -> None:
    config = SimpleNamespace(freeze_backbone=True, unfreeze_at=3)
    assert [backbone_frozen(config, epoch) for epoch in range(4)] == [True, True, False, False]
    assert not any(backbone_frozen(SimpleNamespace(freeze_backbone=False, unfreeze_at=2), e) for e in range(3))
    assert all(backbone_frozen(SimpleNamespace(freeze_backbone=True, unfreeze_at=0), e) for e in range(3))


def test_backbone_lr_scale_gives_each_group_its_lr_through_the_schedule() -> None:
    model = SmallCNN(3, 4)
    groups = scale_backbone_lr(decay_groups(model, 0.05), model, 0.1, 0.2)
    optimizer = build_optimizer("adamw", groups, lr=0.2, momentum=0.9, nesterov=False, weight_decay=0.05)
    backbone = {id(p) for p in split_backbone(model)[0]}
    factor = lr_factor_fn("cosine", total_steps=10, warmup_steps=2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for step in range(4):
        for group in optimizer.param_groups:
            in_backbone = {id(p) in backbone for p in group["params"]}
            assert len(in_backbone) == 1
            expected = 0.2 * (0.1 if in_backbone.pop() else 1.0) * factor(step)
            assert group["lr"] == pytest.approx(expected, rel=1e-12)
        optimizer.step()
        scheduler.step()
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 0.0, 0.05, 0.05]
    plain = scale_backbone_lr(model.parameters(), model, 0.5, 1.0)  # classifiers' single group
    assert [g.get("lr", "optimizer's") for g in plain] == ["optimizer's", 0.5]


# ----------------------------------------------------------------------------------- in a run


@pytest.mark.parametrize(("epochs", "unfreeze_at"), [("1", "0"), ("2", "2")])
def test_frozen_run_keeps_the_backbone_of_its_weights_until_the_unfreeze(tmp_path: Path, epochs: str,
                                                                         unfreeze_at: str) -> None:
    torch.manual_seed(1)
    init = tmp_path / "init.safetensors"
    save_file({k: v.contiguous() for k, v in SmallCNN(1, 10).state_dict().items()}, str(init))
    finish(start_visionbench("train", "--data", "digits", "--model", "cnn-small", "--epochs", epochs, "--batch-size", "64",
                         "--weights", str(init), "--freeze-backbone", "--unfreeze-at", unfreeze_at, "--quiet",
                         "--out", str(tmp_path / "run")))
    start, end = load_file(str(init)), load_file(str(tmp_path / "run" / rundir.LAST_WEIGHTS))
    unfrozen = unfreeze_at != "0"
    for key in start:  # batch-norm statistics included: frozen norms stay in eval mode
        assert torch.equal(start[key], end[key]) == (not unfrozen and not key.startswith("head.")), key


FREEZE_ARGS = [
    "train", "--data", "digits", "--model", "cnn-small", "--epochs", "3", "--batch-size", "16",
    "--checkpoint-every", "7", "--augment", "light", "--quiet", "--seed", "5",
    "--freeze-backbone", "--unfreeze-at", "3", "--backbone-lr-scale", "0.3",
]


def test_sigkill_in_a_frozen_epoch_then_resume_across_the_unfreeze_is_bitwise_equal(tmp_path: Path) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference_process = start_visionbench(*FREEZE_ARGS, "--out", str(reference))
    process = start_visionbench(*FREEZE_ARGS, "--out", str(interrupted))
    deadline, state = time.monotonic() + 240, None
    while time.monotonic() < deadline and process.poll() is None:  # kill inside epoch 2, still frozen
        path = interrupted / rundir.LAST_STATE
        state = ckpt.load_state(path)["progress"] if path.exists() else None
        if state and state["epoch"] == 1 and state["step_in_epoch"] > 0:
            process.send_signal(signal.SIGKILL)
            process.wait()
            break
        time.sleep(0.01)
    finish(reference_process)
    assert state and state["epoch"] == 1 and state["step_in_epoch"] > 0, "the kill must land inside epoch 2"
    assert not (interrupted / rundir.METRICS).exists()

    finish(start_visionbench("train", "--resume", str(interrupted), "--quiet"))

    assert_same_checkpoints(reference, interrupted)
    history = [{k: v for k, v in r.items() if k != "seconds"} for r in rundir.read_history(reference)]
    assert history == [{k: v for k, v in r.items() if k != "seconds"} for r in rundir.read_history(interrupted)]


# ----------------------------------------------------------------------------------- backbone weights


def _fake_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, classifier: nn.Module, file_name: str) -> dict:
    """A random ImageNet classifier's state dict saved under ``TORCH_HOME`` with torchvision's file name.
    Its hash cannot match the one in the name, so the name check is replaced by a plain SHA-256."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(pretrained, "verify_weights_file", pretrained.file_sha256)
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in classifier.state_dict().items()}
    torch.save(state, folder / file_name)
    return state


@pytest.mark.parametrize(("model_name", "classifier", "file_name", "prefix", "strip"), [
    ("fasterrcnn_mobilenet_v3_large_fpn", "mobilenet_v3_large", "mobilenet_v3_large-8738ca79.pth",
     "model.backbone.body.", "features."),
    ("lraspp_mobilenet_v3_large", "mobilenet_v3_large", "mobilenet_v3_large-8738ca79.pth", "model.backbone.",
     "features."),
])
def test_pretrained_backbone_is_loaded_bit_for_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None,
                                                   model_name: str, classifier: str, file_name: str, prefix: str,
                                                   strip: str) -> None:
    import torchvision.models as tvm

    from visionbench.models import create_model

    state = _fake_cache(tmp_path, monkeypatch, getattr(tvm, classifier)(), file_name)
    model = create_model(model_name, num_classes=3, in_channels=3, image_size=64)
    record = load_pretrained_backbone(model, model_name)
    assert record.file == str((tmp_path / "torch" / "hub" / "checkpoints" / file_name).resolve())
    loaded = model.state_dict()
    for key, value in state.items():
        if key.startswith(("classifier.", "fc.")):
            continue
        assert torch.equal(loaded[prefix + key.removeprefix(strip)], value), key


def test_pretrained_backbone_through_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                no_network: None) -> None:
    import torchvision.models as tvm

    from visionbench.config import SegmentConfig
    from visionbench.engine.run_model import architecture_only, build_model

    state = _fake_cache(tmp_path, monkeypatch, tvm.mobilenet_v3_large(), "mobilenet_v3_large-8738ca79.pth")
    config = SegmentConfig(model="lraspp_mobilenet_v3_large", pretrained_backbone=True)
    data = SimpleNamespace(num_classes=3, in_channels=3)
    model = build_model(config, data, (64, 64))
    assert torch.equal(model.model.backbone.state_dict()["0.0.weight"], state["features.0.0.weight"])
    assert architecture_only(config).pretrained_backbone is False  # rebuilt models get the run's own weights


def test_missing_backbone_file_names_file_url_and_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          no_network: None) -> None:
    from visionbench.models import create_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    model = create_model("deeplabv3_mobilenet_v3_large", num_classes=2, in_channels=3, image_size=64)
    with pytest.raises(pretrained.MissingWeightsError) as error:
        load_pretrained_backbone(model, "deeplabv3_mobilenet_v3_large")
    message = str(error.value)
    assert "mobilenet_v3_large-8738ca79.pth" in message and "https://download.pytorch.org" in message
    assert "--download-weights" in message and "get_weight" in message


def test_unsupported_pretrained_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="--pretrained-backbone must be used with one of"):
        load_pretrained_backbone(nn.Linear(1, 1), "tiny_fcos")
