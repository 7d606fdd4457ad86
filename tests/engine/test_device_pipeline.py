"""The training input pipeline and the GPU habits of issue 13: the persistent training loader,
in-memory data on the device, the device-side loss tally, fused optimizers, ``--channels-last``,
``--compile``, and exact resume with the batched ``standard`` augmentation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import visionbench
from visionbench.config import ClassifyConfig
from visionbench.engine import NonFiniteLossError, classify, rundir
from visionbench.engine import train as engine_train
from visionbench.engine.batches import loader_batches
from visionbench.engine.device_habits import compiled, prepare_model
from visionbench.engine.loaders import fits_on_device, place_train_data, train_loader
from visionbench.engine.loss_tally import LossTally
from visionbench.engine.optim import build_optimizer
from visionbench.engine.runtime import Runtime
from visionbench.losses import create_loss
from visionbench.losses.device_checks import device_asserts

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _folder(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def _epoch(bundle, config, runtime, epoch: int, start: int = 0) -> list:  # noqa: ANN001
    with loader_batches(train_loader(bundle, config, runtime, epoch=epoch, start_batch=start)) as batches:
        return list(batches)


def _same(first: list, second: list) -> bool:
    return len(first) == len(second) and all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))


def test_persistent_workers_serve_every_epoch_with_the_batches_of_fresh_loaders(tmp_path: Path) -> None:
    config = ClassifyConfig(data=f"folder:{_folder(tmp_path / 'data')}", batch_size=4, image_size=16, seed=3,
                            val_fraction=0.2, test_fraction=0.2)
    bundle = classify.build_data(config)
    with_workers = Runtime(device=torch.device("cpu"), workers=1)
    epochs = [_epoch(bundle, config, with_workers, epoch) for epoch in range(2)]
    loader = bundle.loaders["train"][1]
    assert loader.persistent_workers and loader._iterator is not None  # the workers outlive the epoch
    resumed = _epoch(bundle, config, with_workers, 1, start=2)  # a resume inside epoch 2
    assert bundle.loaders["train"][1] is loader
    fresh = classify.build_data(config)
    in_process = Runtime(device=torch.device("cpu"), workers=0)
    assert _same(epochs[0], _epoch(fresh, config, in_process, 0))
    assert _same(epochs[1], _epoch(fresh, config, in_process, 1))
    assert _same(resumed, epochs[1][2:])
    assert not _same(epochs[0], epochs[1])
    engine_train.close_train_loader(bundle)
    assert "train" not in bundle.loaders and loader._iterator is None


def test_in_memory_data_is_placed_on_the_device_only_when_it_fits() -> None:
    assert fits_on_device(25, 100) and not fits_on_device(26, 100)
    bundle = classify.build_data(ClassifyConfig(augment="standard"))
    train = bundle.train
    assert train.gathers and train.stored_bytes() > train.base.images.numel()  # padded and mirrored
    cpu = torch.device("cpu")
    assert place_train_data(train, cpu, workers=0)  # where it already is
    assert not place_train_data(train, cpu, workers=1)  # worker processes load it: it stays on the host
    assert not place_train_data(classify.build_data(ClassifyConfig(augment="randaugment")).train, cpu, workers=0)


def test_loss_tally_sums_as_python_floats_and_finds_non_finite_losses() -> None:
    losses = torch.rand(50, generator=torch.Generator().manual_seed(0)) * 3
    progress = SimpleNamespace(loss_sum=0.25, step_in_epoch=3, epoch=1)
    tally, expected = LossTally(progress, torch.device("cpu")), 0.25
    for loss in losses:
        tally.add(loss, 13)
        expected += float(loss) * 13  # what the loop summed before
    tally.flush(progress)
    assert progress.loss_sum == expected  # bitwise: exact resume and train_loss unchanged
    progress.step_in_epoch = 9
    tally.add(torch.tensor(float("nan")), 4)
    with pytest.raises(NonFiniteLossError, match="loss is nan at a step of epoch 2 between steps 4 and 9"):
        tally.flush(progress)


def test_fused_optimizers_on_the_cpu_step_like_the_plain_ones() -> None:
    for name in ("sgd", "adam", "adamw"):
        torch.manual_seed(0)
        weights = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
        copies = [torch.nn.Parameter(w.detach().clone()) for w in weights]
        fused = build_optimizer(name, weights, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.01,
                                device=torch.device("cpu"))
        plain = build_optimizer(name, copies, lr=0.1, momentum=0.9, nesterov=False, weight_decay=0.01)
        assert fused.defaults["fused"] and not plain.defaults.get("fused")
        for _ in range(3):
            for params, optimizer in ((weights, fused), (copies, plain)):
                optimizer.zero_grad()
                sum((p ** 2).sum() for p in params).backward()
                optimizer.step()
        for w, c in zip(weights, copies, strict=True):
            torch.testing.assert_close(w, c)


def test_channels_last_and_compile_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = prepare_model(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(2, 2)),
                          SimpleNamespace(channels_last=True))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    calls = []

    class Compiled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = inner

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            calls.append(images.shape[0])
            return self._orig_mod(images)

    monkeypatch.setattr(torch, "compile", Compiled)
    assert compiled(model, SimpleNamespace(compile=False)) is model
    once = compiled(model, SimpleNamespace(compile=True))
    assert compiled(once, SimpleNamespace(compile=True)) is once  # compiled once, not per epoch
    result = visionbench.train(model="cnn-small", epochs=2, channels_last=True, compile=True, augment="standard",
                               out=tmp_path / "run", quiet=True, test_fraction=0.7)
    assert result.config.channels_last and result.config.compile
    assert len(calls) == rundir.read_history(result.run_dir)[-1]["step"]  # every training step, no evaluation
    assert result.metrics["accuracy"]["value"] > 0.3  # it trained (chance: 0.1)


class _Interrupted(RuntimeError):
    """Stands in for a killed process."""


def test_resume_with_batched_standard_augmentation_and_erasing_is_bitwise(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    options = {"data": "digits", "model": "cnn-small", "epochs": 2, "batch_size": 32, "test_fraction": 0.7,
               "checkpoint_every": 7, "augment": "standard", "random_erase": 0.5, "mixup": 0.2, "seed": 4,
               "quiet": True}
    reference = visionbench.train(out=tmp_path / "reference", **options)
    real_step, steps = engine_train.train_step, {"n": 0}

    def step_then_stop(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        steps["n"] += 1
        if steps["n"] == 17:  # epoch 2 (12 steps an epoch); the last checkpoint is at step 14
            raise _Interrupted
        return real_step(*args, **kwargs)

    monkeypatch.setattr(engine_train, "train_step", step_then_stop)
    with pytest.raises(_Interrupted):
        visionbench.train(out=tmp_path / "interrupted", **options)
    monkeypatch.setattr(engine_train, "train_step", real_step)
    state = engine_train.ckpt.load_state(tmp_path / "interrupted" / rundir.LAST_STATE)
    assert state["progress"]["epoch"] == 1 and state["progress"]["step_in_epoch"] == 2
    visionbench.train(resume=tmp_path / "interrupted", quiet=True)
    expected = load_file(str(reference.run_dir / rundir.LAST_WEIGHTS))
    actual = load_file(str(tmp_path / "interrupted" / rundir.LAST_WEIGHTS))
    assert all(torch.equal(expected[key], actual[key]) for key in expected)
    assert rundir.read_history(reference.run_dir)[-1]["train_loss"] == rundir.read_history(tmp_path / "interrupted")[-1][
        "train_loss"]


def test_device_asserts_leave_cpu_label_errors_as_they_are() -> None:
    loss = create_loss("cross_entropy", num_classes=3)
    with device_asserts(), pytest.raises(ValueError, match="label 5 but the model has 3 outputs"):
        loss(torch.randn(2, 3), torch.tensor([0, 5]))


# ----------------------------------------------------------------------------------- CUDA


@CUDA
def test_cuda_in_memory_training_data_lives_and_is_augmented_on_the_gpu() -> None:
    config = ClassifyConfig(augment="standard", random_erase=0.25, batch_size=64)
    bundle = classify.build_data(config)
    runtime = Runtime(device=torch.device("cuda"))
    batches = _epoch(bundle, config, runtime, 0)
    assert bundle.train.device.type == "cuda" and all(images.is_cuda and labels.is_cuda for images, labels in batches)
    on_cpu = _epoch(classify.build_data(config), config, Runtime(device=torch.device("cpu")), 0)
    for (gpu_images, gpu_labels), (cpu_images, cpu_labels) in zip(batches, on_cpu, strict=True):
        torch.testing.assert_close(gpu_images.cpu(), cpu_images, atol=1e-6, rtol=0)
        assert torch.equal(gpu_labels.cpu(), cpu_labels)


@CUDA
def test_cuda_per_sample_batches_are_pinned_and_finished_on_the_gpu() -> None:
    config = ClassifyConfig(augment="randaugment", mixup=0.2, batch_size=64)
    bundle = classify.build_data(config)
    batches = _epoch(bundle, config, Runtime(device=torch.device("cuda")), 0)
    assert bundle.train.device.type == "cpu"  # per-sample policy: loaded on the host
    assert all(images.is_cuda and images.dtype == torch.float32 and labels.shape[1] == 10 for images, labels in batches)
    on_cpu = _epoch(classify.build_data(config), config, Runtime(device=torch.device("cpu")), 0)
    for (gpu_images, _), (cpu_images, _) in zip(batches, on_cpu, strict=True):
        torch.testing.assert_close(gpu_images.cpu(), cpu_images, atol=1e-5, rtol=0)


@CUDA
def test_cuda_training_epoch_with_the_gpu_habits(tmp_path: Path) -> None:
    result = visionbench.train(model="cnn-small", epochs=2, device="cuda", augment="standard", channels_last=True,
                               compile=True, deterministic=False, out=tmp_path / "run", quiet=True)
    assert result.metrics["accuracy"]["value"] > 0.8


@CUDA
def test_cuda_losses_check_labels_without_a_host_sync_inside_a_step() -> None:
    loss = create_loss("cross_entropy", num_classes=4)
    logits, labels = torch.randn(6, 4, device="cuda"), torch.tensor([0, 1, 2, 3, 0, 1], device="cuda")
    with device_asserts():
        inside = loss(logits, labels)
    torch.testing.assert_close(inside, loss(logits, labels))
    with pytest.raises(ValueError, match="label 4"):  # outside a step: the error names the label at once
        loss(logits, torch.tensor([0, 4, 1, 2, 3, 0], device="cuda"))
