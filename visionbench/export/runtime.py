"""Load an exported model file safely and run it like the run's own model.

:func:`load_exported` opens ``.onnx`` (onnxruntime), ``.pt`` (TorchScript, ``torch.jit.load``) or
``.pt2`` (``torch.export.load``) files. Where ``export.json`` sits beside the file (as
``visionbench export`` writes it), the file's size and SHA-256 are checked against it first, so a
truncated or corrupted copy is named as such before any loader reads it; a file that no loader can
read is reported the same way, naming the file and how to get a good one.

Loading runs no Python code from the file: ONNX files are data (protobuf); ``.pt2`` archives are
read with ``torch.load`` forced to ``weights_only`` (``TORCH_FORCE_WEIGHTS_ONLY_LOAD``), which
``torch.export.load`` would otherwise fall back from; TorchScript files hold a graph of torch
operators, run as is — load only TorchScript files you trust.

:class:`TaskModel` wraps a loaded file in the interface of the run's own model (classifiers and
segmenters: ``images -> logits``; detectors: ``list of images -> list of {"boxes", "scores",
"labels"}``), so the engine's evaluation and ``predict`` code run an exported file unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from visionbench._extras import import_optional
from visionbench.export.formats import FORMATS, quiet_exporters
from visionbench.export.wrappers import INPUT_NAME

EXPORT_JSON = "export.json"
SUFFIXES = {suffix: fmt for fmt, suffix in FORMATS.items()}


def sha256_of(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_format(path: Path) -> str:
    """The export format of ``path`` from its suffix (``onnx``, ``torchscript`` or ``pt2``)."""
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"model file must end in {', '.join(SUFFIXES)} (ONNX, TorchScript, torch.export); got "
                         f"{str(path)!r}. Give a file written by `visionbench export`.")
    return fmt


def read_export_json(folder: Path) -> dict[str, Any] | None:
    """``folder/export.json`` as a dict, or ``None`` when there is none.

    Raises:
        ValueError: the file is not a JSON object; the message names it and how to recover.
    """
    path = folder / EXPORT_JSON
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} must be the JSON object `visionbench export` writes; got unreadable content "
                         f"({error}). Export the run again to rewrite it.") from None
    if not isinstance(info, dict) or not isinstance(info.get("files"), dict):
        raise ValueError(f"{str(path)!r} must be the JSON object `visionbench export` writes, with a 'files' table; "
                         "got something else. Export the run again to rewrite it.")
    return info


def verify_file(path: Path, info: dict[str, Any]) -> None:
    """Check ``path``'s size and SHA-256 against its entry in ``export.json`` (``info``).

    Raises:
        ValueError: the file is not listed, or its bytes differ (truncated or corrupt).
    """
    entry = info["files"].get(path.name)
    if not isinstance(entry, dict):
        listed = ", ".join(sorted(info["files"])) or "none"
        raise ValueError(f"model file {str(path)!r} must be listed in the export.json beside it; got only {listed}. "
                         "Use a file of that export, or export the run again to this folder.")
    size = path.stat().st_size
    if size != entry.get("bytes") or sha256_of(path) != entry.get("sha256"):
        raise ValueError(f"model file {str(path)!r} must match the export.json beside it ({entry.get('bytes')} bytes, "
                         f"SHA-256 {str(entry.get('sha256'))[:12]}…); got {size} bytes with other content: the file is "
                         "truncated or corrupt. Copy the export folder again, or export the run again with "
                         f"`visionbench export RUN --format {info.get('format', 'onnx')}`.")


@contextlib.contextmanager
def _weights_only_loads() -> Iterator[None]:
    """Force every ``torch.load`` to ``weights_only=True`` while the block runs (see the module docstring)."""
    saved = {key: os.environ.pop(key, None) for key in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD",
                                                        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


@dataclass
class ExportedModel:
    """A loaded export: call it with an input batch to get its output tensors (on the CPU).

    Attributes:
        path: the file. format: ``onnx``, ``torchscript`` or ``pt2``. device: where it runs.
        dtype: the input dtype it takes (``float32``, or ``float16`` for half-precision exports).
    """

    path: Path
    format: str
    device: torch.device
    dtype: torch.dtype
    run: Callable[[Tensor], tuple[Tensor, ...]]

    def __call__(self, images: Tensor) -> tuple[Tensor, ...]:
        """The outputs for ``images`` (float ``[N, C, H, W]``, preprocessed as ``export.json`` says)."""
        return self.run(images)


def _onnx_runner(path: Path, device: torch.device, threads: int) -> tuple[Callable[[Tensor], tuple[Tensor, ...]],
                                                                            torch.dtype]:
    """An onnxruntime session of ``path`` (CPU, or CUDA where onnxruntime has its CUDA provider)."""
    ort = import_optional("onnxruntime", extra="export", purpose=f"running the ONNX model {str(path)!r}")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(f"running {str(path)!r} on CUDA needs onnxruntime's CUDA provider; got only "
                             f"{ort.get_available_providers()}. Install onnxruntime-gpu, or run it on the CPU.")
        providers = [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # the same count as torch's, so latencies compare
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings are about its own graph rewrites
    session = ort.InferenceSession(str(path), options, providers=providers)
    half = session.get_inputs()[0].type == "tensor(float16)"

    def run(images: Tensor) -> tuple[Tensor, ...]:
        array = images.detach().to("cpu", torch.float16 if half else torch.float32).contiguous().numpy()
        return tuple(torch.from_numpy(out) for out in session.run(None, {INPUT_NAME: array}))

    return run, torch.float16 if half else torch.float32


def _torch_runner(module: Any, device: torch.device) -> Callable[[Tensor], tuple[Tensor, ...]]:
    """Call a loaded TorchScript or ``torch.export`` module, outputs as a tuple on the CPU."""
    def run(images: Tensor) -> tuple[Tensor, ...]:
        with torch.no_grad():
            out = module(images.to(device))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return tuple(t.detach().cpu() for t in outputs)

    return run


def _parameter_dtype(module: Any) -> torch.dtype:
    """The dtype of a loaded module's first floating parameter (float32 when it has none)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def _open(path: Path, fmt: str, device: torch.device, threads: int) -> tuple[Callable[[Tensor], tuple[Tensor, ...]],
                                                                           torch.dtype]:
    """The runner and input dtype of ``path`` in format ``fmt``; any loader error propagates."""
    if fmt == "onnx":
        return _onnx_runner(path, device, threads)
    if fmt == "torchscript":
        with quiet_exporters():
            module = torch.jit.load(str(path), map_location=device).eval()
        return _torch_runner(module, device), _parameter_dtype(module)
    with _weights_only_loads(), quiet_exporters():
        module = torch.export.load(str(path)).module()
    module = module.to(device)
    return _torch_runner(module, device), _parameter_dtype(module)


def load_exported(path: str | Path, *, device: str | torch.device = "cpu", threads: int | None = None,
                  verify: bool = True) -> ExportedModel:
    """Load an exported model file to run it.

    Args:
        path: a ``.onnx``, ``.pt`` (TorchScript) or ``.pt2`` file.
        device: where to run it (CPU by default; CUDA for half-precision exports).
        threads: CPU threads of onnxruntime (default: torch's current count).
        verify: check the file against ``export.json`` beside it, when there is one.

    Raises:
        ValueError: the file is missing, of an unknown kind, does not match ``export.json``, or
            cannot be read (truncated or corrupt); the message names the file and what to do.
        MissingExtraError: an ONNX file without onnxruntime (``pip install 'visionbench[export]'``).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist. Give a file written by `visionbench export`.")
    fmt = file_format(path)
    info = read_export_json(path.parent) if verify else None
    if info is not None:
        verify_file(path, info)
    torch_device = torch.device(device)
    try:
        run, dtype = _open(path, fmt, torch_device, threads or torch.get_num_threads())
    except ValueError:
        raise
    except ImportError:
        raise
    except Exception as error:  # noqa: BLE001 - every loader has its own errors; all mean "unreadable"
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise ValueError(f"model file {str(path)!r} must be a readable {fmt} model; got a file its loader refuses "
                         f"({first}): it is truncated, corrupt or not a {fmt} export. Export the run again with "
                         f"`visionbench export RUN --format {fmt}`.") from None
    return ExportedModel(path=path, format=fmt, device=torch_device, dtype=dtype, run=run)


class TaskModel(nn.Module):
    """An :class:`ExportedModel` behind the run's model interface (module docstring).

    Args:
        exported: the loaded file.
        task: ``classify``, ``segment`` or ``detect``.
        input_size: ``(H, W)`` a detector was exported at: images of another size are resized to
            it and their boxes scaled back (``None``: images are given as they are).
    """

    def __init__(self, exported: ExportedModel, task: str, input_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.exported, self.task, self.input_size = exported, task, input_size

    def forward(self, images: Tensor | list[Tensor]) -> Tensor | list[dict[str, Tensor]]:
        """Logits (classify, segment) or one detection dict per image (detect), on the input's device."""
        if self.task != "detect":
            assert isinstance(images, Tensor)
            return self.exported(images.to(self.exported.dtype))[0].float().to(images.device)
        return self._detect(list(images))

    def _detect(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """Run the images in groups of one size (the exported graph takes a stacked batch)."""
        from torchvision.transforms.v2 import functional as tvf

        from visionbench.data.task_transforms import rescale_boxes

        results: list[dict[str, Tensor] | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((int(image.shape[-2]), int(image.shape[-1])), []).append(index)
        for size, indices in groups.items():
            batch = torch.stack([images[i] for i in indices])
            if self.input_size is not None and size != tuple(self.input_size):
                batch = tvf.resize(batch, list(self.input_size), antialias=True)
            boxes, scores, labels, counts = self.exported(batch.to(self.exported.dtype))
            for row, index in enumerate(indices):
                n = int(counts[row])
                found = boxes[row, :n].float()
                if self.input_size is not None and size != tuple(self.input_size):
                    found = rescale_boxes(found, tuple(self.input_size), size)
                device = images[index].device
                results[index] = {"boxes": found.to(device), "scores": scores[row, :n].float().to(device),
                                  "labels": labels[row, :n].to(torch.int64).to(device)}
        return [r for r in results if r is not None]


__all__ = ["EXPORT_JSON", "ExportedModel", "TaskModel", "file_format", "load_exported", "read_export_json",
           "sha256_of", "verify_file"]
