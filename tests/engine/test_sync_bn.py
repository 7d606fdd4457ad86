"""``--sync-bn`` on CPU: two gloo processes, each with half the batch, give the outputs, the
gradients, the step and the running statistics of one process with plain batch norm on the whole
batch (float rounding apart: the sums are taken in another order)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from visionbench.engine.sync_bn import AllReduceBatchNorm, convert_all_reduce_batchnorm, use_sync_batchnorm


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 3), nn.BatchNorm1d(3))


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 6, 6, generator=g) * 3 + 1, torch.randint(0, 3, (8,), generator=g)


def _step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, scale: float) -> dict[str, torch.Tensor]:
    """One SGD step; returns the outputs, the parameters after the step and the buffers."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(images)
    (nn.functional.cross_entropy(out, labels, reduction="sum") * scale).backward()
    optimizer.step()
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    return {"out": out.detach(), **{k: v.detach().clone() for k, v in core.state_dict().items()}}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    images, labels = _batch()
    part = slice(0, 4) if rank == 0 else slice(4, 8)
    model = nn.parallel.DistributedDataParallel(use_sync_batchnorm(_model(), torch.device("cpu")))
    # Each process's loss is its half's sum over the whole batch size; DDP averages over the 2
    # processes, so the 2x makes the step the one of the whole batch's mean loss.
    result = _step(model, images[part], labels[part], scale=2.0 / 8)
    torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_with_sync_bn_equal_one_process_on_the_whole_batch(tmp_path: Path) -> None:
    mp.start_processes(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, start_method="fork")
    images, labels = _batch()
    expected = _step(_model(), images, labels, scale=1.0 / 8)
    for rank, part in ((0, slice(0, 4)), (1, slice(4, 8))):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["out"], expected["out"][part], rtol=1e-5, atol=1e-5)
        assert set(got) == set(expected)  # same checkpoint keys as plain batch norm
        for name, value in expected.items():
            if name != "out":
                torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-5, msg=name)


def test_plain_batch_norms_per_process_would_differ() -> None:
    """The check above has teeth: per-half statistics give other outputs than the whole batch's."""
    images, _ = _batch()
    whole = _model()(images)
    half = _model()(images[:4])
    assert not torch.allclose(whole[:4], half, atol=1e-3)


def test_conversion_keeps_the_parameters_and_one_process_is_plain_batch_norm() -> None:
    model = _model()
    weight = model[1].weight
    converted = convert_all_reduce_batchnorm(model)
    assert isinstance(converted[1], AllReduceBatchNorm) and isinstance(converted[5], AllReduceBatchNorm)
    assert converted[1].weight is weight  # the optimizer's references stay valid
    images, _ = _batch()
    reference = _model()
    torch.testing.assert_close(converted(images), reference(images), rtol=0, atol=0)  # no process group
    torch.testing.assert_close(converted.state_dict(), reference.state_dict(), rtol=0, atol=0)  # running stats
    converted.eval()
    torch.testing.assert_close(converted(images), reference.eval()(images), rtol=0, atol=0)
