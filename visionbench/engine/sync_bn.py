"""``--sync-bn``: batch-norm statistics over the whole distributed batch, not each process's part.

On CUDA this is :class:`torch.nn.SyncBatchNorm` (what Lightning's ``sync_batchnorm`` and timm's
``--sync-bn`` use). torch's class refuses CPU tensors, so on CPU (gloo) each ``BatchNorm*d`` is
replaced by :class:`AllReduceBatchNorm`, which computes the same statistics with two autograd-aware
all-reduces (:func:`torch.distributed.nn.functional.all_reduce`): the sums give the global mean,
then the sums of squared deviations from it give the global (biased) variance, as one process
would compute them over the concatenated batch. The gradient flows through both reductions, so it
equals the gradient of one process on the whole batch (up to float rounding). In eval mode, or
with one process, both are plain batch norm on the running statistics. The parameters and buffers
are the original module's (the optimizer's references stay valid; checkpoints keep their keys).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


class AllReduceBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are reduced over every process of the default group."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"batch norm input must be [N, C, ...]; got shape {tuple(input.shape)}.")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Normalise ``input`` with the global batch's mean and variance (training, several
        processes) or as :class:`torch.nn.BatchNorm2d` does (otherwise)."""
        self._check_input_dim(input)
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        dims = [d for d in range(input.dim()) if d != 1]
        local_count = input.numel() // input.shape[1]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = all_reduce(torch.tensor([float(local_count)], dtype=input.dtype, device=input.device))
        mean = all_reduce(input.sum(dim=dims)) / count
        centred = input - mean.reshape(shape)
        var = all_reduce((centred * centred).sum(dim=dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self._update_running_stats(mean.detach(), var.detach(), float(count))
        out = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            out = out * self.weight.reshape(shape) + self.bias.reshape(shape)
        return out

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        """As :func:`torch.nn.functional.batch_norm` does: unbiased variance, momentum or
        cumulative average."""
        self.num_batches_tracked.add_(1)
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased, alpha=momentum)


def _all_reduce_copy(module: nn.modules.batchnorm._BatchNorm) -> AllReduceBatchNorm:
    """An :class:`AllReduceBatchNorm` holding ``module``'s own parameters and buffers."""
    out = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, device=None, dtype=None)
    out.weight, out.bias = module.weight, module.bias
    out.running_mean, out.running_var = module.running_mean, module.running_var
    out.num_batches_tracked = module.num_batches_tracked
    out.train(module.training)
    return out


def convert_all_reduce_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm1d/2d/3d`` replaced by an :class:`AllReduceBatchNorm`
    sharing its tensors (frozen batch norms of a fine-tuned backbone included: in eval mode they
    still read their running statistics)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, AllReduceBatchNorm):
        return _all_reduce_copy(module)
    for name, child in module.named_children():
        converted = convert_all_reduce_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module


def use_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` with synchronised batch norms for ``device`` (see the module docstring)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return convert_all_reduce_batchnorm(model)


def count_batchnorms(model: nn.Module) -> int:
    """How many batch-norm layers ``model`` has (for the log line)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


__all__ = ["AllReduceBatchNorm", "convert_all_reduce_batchnorm", "count_batchnorms", "use_sync_batchnorm"]
