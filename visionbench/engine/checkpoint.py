"""Atomic checkpoints: weights as safetensors, loop state as a weights-only torch file.

Every file is written to a temporary name in the same directory, flushed to disk, then renamed
over the old one with ``os.replace`` (atomic on POSIX), so a process killed mid-write leaves the
previous checkpoint intact and loadable.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # safetensors writes through a private temporary file (mode 0600); give the checkpoint the
        # mode every other run file gets, so runs shared with a group or copied stay readable.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as error:  # a full disk, a quota, a read-only mount: the previous file is untouched
        kept = "the previous version is kept" if path.exists() else "nothing was written"
        raise ValueError(f"cannot write {str(path)!r}: {error.strerror or error}; {kept}. Free disk space (or fix "
                         "the folder's permissions), then run the same command again (--resume for a training "
                         "run).") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` when its process was killed
    mid-write (``.NAME.tmp-PID``); only call it while holding the run's lock (no other writer).
    Returns what was deleted."""
    removed = []
    for path in folder.glob(".*.tmp-*") if folder.is_dir() else ():
        if path.is_file() and path.name.rpartition(".tmp-")[2].isdigit():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def current_umask() -> int:
    """The process umask (read by setting and restoring it: POSIX offers no plain getter)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def save_weights(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a model's ``state_dict`` as safetensors, atomically."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def non_finite_tensors(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` holding NaN or ±inf (empty: all finite)."""
    return [name for name, t in state_dict.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_finite_weights(state_dict: dict[str, torch.Tensor], source: str, fix: str) -> None:
    """Raise :class:`~visionbench.engine.NonFiniteLossError` when a weight is NaN or ±inf: such a file
    would predict nothing but NaN, and written over a good checkpoint it would lose the run.

    Args:
        source: what the weights are (a file, or "the model after epoch 3"), for the message.
        fix: what the user should do, for the message.
    """
    from visionbench.engine import NonFiniteLossError

    bad = non_finite_tensors(state_dict)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise NonFiniteLossError(f"{source} must have finite weights; {len(bad)} tensor(s) hold NaN or inf ({shown}). "
                                 f"{fix}")


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pt``/``.pth`` file (weights only, never code).

    Raises:
        ValueError: missing or unreadable file, with the path and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist. Give a .safetensors or .pt file.")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message suggests weights_only=False, which would run the file's code.
        if "GLOBAL" not in str(error):  # not a refused object: bytes that are no pickle at all
            raise ValueError(
                f"cannot read weights from {str(path)!r}: it is neither a safetensors file nor a PyTorch "
                "checkpoint (the bytes do not parse). The file is corrupt or of another kind; re-export the "
                "weights (safetensors preferred)."
            ) from None
        raise ValueError(
            f"refusing to load {str(path)!r}: it holds pickled Python objects, not only tensors, and "
            "loading it could run code. Save model.state_dict() (safetensors preferred) and use that file."
        ) from None
    except (SafetensorError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise ValueError(
            f"cannot read weights from {str(path)!r}: {error}. The file is truncated or not a "
            "state dict; re-export it (safetensors preferred)."
        ) from None
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{str(path)!r} does not hold a state dict (name → tensor). Save model.state_dict().")
    return loaded


def load_weights_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model``, explaining mismatches instead of dumping torch's error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        details = "; ".join(
            part for part in (
                f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}" if missing else "",
                f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}" if unexpected else "",
                f"shape {wrong_shape[:2]}" if wrong_shape else "",
            ) if part
        )
        raise ValueError(
            f"checkpoint {source!r} does not fit this model ({details}). It was saved from a "
            "different model, number of classes or input channels; use the same --model and --data."
        )
    # A plain dict lacks the module versions torch's state dicts carry in ``_metadata``; MNASNet's
    # loader refuses a state without its version, so the model's own versions go with the tensors.
    versioned = OrderedDict(state_dict)
    versioned._metadata = getattr(expected, "_metadata", None)  # type: ignore[attr-defined]
    model.load_state_dict(versioned)


def save_state(state: dict[str, Any], path: Path) -> None:
    """Write the training-loop state (optimizer, scheduler, RNGs, position) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """Read a state file written by :func:`save_state` (``weights_only=True``: no code runs)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"cannot read training state {str(path)!r}: {error}. The run cannot be resumed from it.") from None
