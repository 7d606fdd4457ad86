"""torchvision's pretrained weights, read from the local torch hub cache and never downloaded unasked.

Pure functions, usable on their own (the backbone options of detectors and segmenters reuse them):

* :func:`resolve_weights` turns a model name and a weights name (``None``/``"DEFAULT"``,
  ``"IMAGENET1K_V1"`` or ``"ResNet18_Weights.IMAGENET1K_V1"``) into torchvision's weights enum;
* :func:`weights_file` is where torchvision keeps that enum's file:
  ``$TORCH_HOME/hub/checkpoints/<basename of its url>`` (:func:`torch.hub.get_dir`);
* :func:`locate_weights` returns that file, or fails at once naming the file, the URL and the
  command that fetches it (:func:`fetch_command`); only ``download=True`` downloads;
* :func:`verify_weights_file` checks the SHA-256 prefix torchvision puts in the file name;
* :func:`read_pretrained` does all of that and reads the state dict (``weights_only=True``) in the
  key layout of today's torchvision modules (:func:`rename_legacy_keys`: DenseNet's files predate it);
* :func:`preprocessing` is the weights' own evaluation transform (resize, crop, mean, std).

Files that do not match the model visionbench builds with ``weights=None`` are fitted afterwards
by :func:`visionbench.models.adapt.fit_state_dict` (heads, stems, ViT position embeddings;
GoogLeNet's and Inception v3's auxiliary heads dropped). Those two were trained on inputs in
``[-1, 1]``; torchvision's pretrained builders set ``transform_input=True`` to map ImageNet-normalised
inputs there, which only works for 3 channels and is no part of the state dict, so a run's rebuilt
model would lose it. :func:`preprocessing` gives their true normalisation (mean = std = 0.5) instead:
the same input reaches the network, for any channel count, and ``inference.json`` keeps it.

torch and torchvision are imported inside the functions, so importing this module is cheap and
``visionbench list models`` stays free of them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A weights enum value as users type it: "IMAGENET1K_V1", "DEFAULT" or "ResNet18_Weights.IMAGENET1K_V1".
_WEIGHTS_NAME = re.compile(r"^(?:[A-Za-z0-9_]+_Weights\.)?[A-Z][A-Z0-9_]*$")
# torchvision's file names end in "-<first hex digits of the SHA-256>.<ext>" (torch.hub.HASH_REGEX).
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")
# DenseNet's published files name a dense layer's modules "norm.1", "conv.2" (dots in module names,
# no longer allowed); today's modules are "norm1", "conv2". torchvision's densenet._load_state_dict
# renames them the same way.
_LEGACY_DENSE_LAYER = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(weight|bias|running_mean|running_var|num_batches_tracked)$")
# Weights whose torchvision builder sets transform_input=True: trained on (x - 0.5) / 0.5 inputs.
_HALF_NORMALISED = ("GoogLeNet_Weights", "Inception_V3_Weights")


class MissingWeightsError(ValueError):
    """A weights file is not in the local torch hub cache (the message says how to fetch it)."""


@dataclass(frozen=True)
class PretrainedFile:
    """Which pretrained weights a model was given, as a run records them (``weights.json``).

    Attributes:
        name: the enum (``"ResNet18_Weights.IMAGENET1K_V1"``) or the file path as given.
        file: absolute path of the file read.
        sha256: hex SHA-256 of that file.
        url: where the file comes from (``None`` for a local file of our own).
    """

    name: str
    file: str
    sha256: str
    url: str | None = None


def is_weights_name(text: str) -> bool:
    """Whether ``--weights text`` names a weights enum rather than a file: it is no existing file and
    looks like ``IMAGENET1K_V1``, ``DEFAULT`` or ``ResNet18_Weights.IMAGENET1K_V1``.

    Example:
        >>> is_weights_name("IMAGENET1K_V1"), is_weights_name("runs/x/checkpoints/best.safetensors")
        (True, False)
    """
    return bool(_WEIGHTS_NAME.match(text)) and not Path(text).exists()


def resolve_weights(model: str, name: str | None = None) -> Any:
    """torchvision's weights enum member ``name`` of ``model`` (``None`` or ``"DEFAULT"``: its default).

    Args:
        model: a torchvision builder name, e.g. ``"resnet18"``.
        name: ``"IMAGENET1K_V1"``, ``"ResNet18_Weights.IMAGENET1K_V1"``, ``"DEFAULT"`` or ``None``.

    Raises:
        ValueError: the model has no torchvision weights, or none of that name (the message lists them).

    Example:
        >>> resolve_weights("resnet18", "IMAGENET1K_V1").url.rsplit("/", 1)[1]
        'resnet18-f37072fd.pth'
    """
    from torchvision.models import get_model_weights, get_weight

    try:
        enum = get_model_weights(model)
    except (ValueError, KeyError):
        raise ValueError(f"model {model!r} has no torchvision pretrained weights, so --pretrained / --weights NAME "
                         "cannot apply; choose a torchvision model (e.g. --model resnet18) or give --weights FILE "
                         "(a .safetensors or .pt state dict).") from None
    available = ", ".join(member.name for member in enum)
    if name is None or name == "DEFAULT":
        return enum.DEFAULT
    if "." in name:
        try:
            member = get_weight(name)
        except (ValueError, KeyError, AttributeError):
            member = None
        if member is None or type(member) is not enum:
            raise ValueError(f"weights must be one of {enum.__name__}'s ({available}) for model {model!r}; got "
                             f"{name!r}. Give e.g. --weights {enum.DEFAULT.name}, or --pretrained for the default.")
        return member
    if name not in enum.__members__:
        raise ValueError(f"weights must be one of {enum.__name__}'s ({available}) for model {model!r}; got {name!r}. "
                         f"Give e.g. --weights {enum.DEFAULT.name}, or --pretrained for the default.")
    return enum[name]


def full_name(weights: Any) -> str:
    """``"ResNet18_Weights.IMAGENET1K_V1"``: the name :func:`torchvision.models.get_weight` reads."""
    return f"{type(weights).__name__}.{weights.name}"


def weights_file(weights: Any) -> Path:
    """Where torchvision keeps ``weights``: ``torch.hub.get_dir()/checkpoints/<basename of its url>``
    (``$TORCH_HOME/hub/checkpoints/…``, by default ``~/.cache/torch/hub/checkpoints/…``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch_command(weights: Any) -> str:
    """The one command that puts ``weights``' file in the cache, on a machine with internet."""
    return (f"python -c \"import torchvision; torchvision.models.get_weight('{full_name(weights)}')"
            f".get_state_dict(progress=True)\"")


def locate_weights(weights: Any, *, download: bool = False) -> Path:
    """The local file of ``weights``; downloaded into the torch hub cache only when ``download``.

    Raises:
        MissingWeightsError: the file is not in the cache (and ``download`` is false); the message
            names the file, the URL and the commands that fetch it.
    """
    path = weights_file(weights)
    if path.is_file():
        return path
    if download:
        from torch.hub import load_state_dict_from_url

        load_state_dict_from_url(weights.url, progress=True, check_hash=True, weights_only=True)
        return path
    raise MissingWeightsError(
        f"pretrained weights {full_name(weights)} must be in the local torch hub cache; there is no file "
        f"{str(path)!r}. visionbench does not download by itself. On a machine with internet run\n"
        f"  {fetch_command(weights)}\n"
        f"(or: curl -L {weights.url} -o {path}), copy the file to {str(path)!r} (TORCH_HOME sets the folder), "
        "or pass --download-weights to let this run download it.")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights_file(path: Path) -> str:
    """Check ``path`` against the SHA-256 prefix in its torchvision file name; return its SHA-256.

    Raises:
        ValueError: the file's hash does not start with the digits in its name (truncated or
            replaced download); the message says how to fetch it again.
    """
    sha256 = file_sha256(path)
    prefix = expected_sha256_prefix(path)
    if prefix and not sha256.startswith(prefix):
        raise ValueError(f"pretrained weights file {str(path)!r} must have a SHA-256 starting with {prefix!r} "
                         f"(the digits in its name); got {sha256[:len(prefix)]!r} (sha256 {sha256}). The "
                         "file is truncated or not the one torchvision publishes: delete it and fetch it again.")
    return sha256


def expected_sha256_prefix(path: Path) -> str | None:
    """The first hex digits of the SHA-256 that torchvision puts in a file name after the last
    ``-`` (``resnet18-f37072fd.pth``: ``"f37072fd"``), or ``None`` when the name has none."""
    match = _HASH_IN_NAME.search(path.name)
    return match.group(1) if match and match.group(1) else None


def read_state_dict(path: Path) -> dict[str, Any]:
    """A torchvision ``.pth`` state dict, read with ``weights_only=True`` (no code runs)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise ValueError(f"cannot read pretrained weights {str(path)!r}: {error}. Delete the file and fetch it "
                         "again.") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{str(path)!r} must hold a state dict (name → tensor); got {type(state).__name__}. "
                         "Delete the file and fetch it again.")
    return state


def rename_legacy_keys(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with DenseNet's old dense-layer names (``…denselayer1.norm.1.weight``) renamed to
    today's (``…denselayer1.norm1.weight``), order and module versions kept; other names unchanged.

    Example:
        >>> list(rename_legacy_keys({"features.denseblock1.denselayer1.conv.2.weight": 0}))
        ['features.denseblock1.denselayer1.conv2.weight']
    """
    from collections import OrderedDict

    renamed: dict[str, Any] = OrderedDict()
    for key, value in state.items():
        match = _LEGACY_DENSE_LAYER.match(key)
        renamed[f"{match.group(1)}{match.group(2)}.{match.group(3)}" if match else key] = value
    if hasattr(state, "_metadata"):
        renamed._metadata = state._metadata  # type: ignore[attr-defined]
    return renamed


def read_pretrained(weights: Any, *, download: bool = False) -> tuple[dict[str, Any], PretrainedFile]:
    """Locate, verify and read ``weights``: its state dict (old DenseNet key names renamed,
    :func:`rename_legacy_keys`) and what a run records of it."""
    path = locate_weights(weights, download=download)
    sha256 = verify_weights_file(path)
    record = PretrainedFile(name=full_name(weights), file=str(path.resolve()), sha256=sha256, url=weights.url)
    return rename_legacy_keys(read_state_dict(path)), record


def preprocessing(weights: Any) -> dict[str, Any]:
    """The evaluation transform ``weights`` were trained with: ``resize_size`` (short side, pixels),
    ``crop_size`` (centre crop side), ``mean`` and ``std`` (per RGB channel, of ``[0, 1]`` images).

    GoogLeNet's and Inception v3's weights get mean = std = 0.5, the normalisation they were trained
    with (torchvision's ImageNet statistics assume its ``transform_input=True``; module docstring).

    Example:
        >>> preprocessing(resolve_weights("resnet18"))["resize_size"], preprocessing(resolve_weights("resnet18"))["crop_size"]
        (256, 224)
    """
    transform = weights.transforms()

    def side(value: Any) -> int:
        return int(value[0] if isinstance(value, (list, tuple)) else value)

    mean, std = tuple(float(v) for v in transform.mean), tuple(float(v) for v in transform.std)
    if type(weights).__name__ in _HALF_NORMALISED:
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    return {"resize_size": side(transform.resize_size), "crop_size": side(transform.crop_size), "mean": mean, "std": std}


def local_default_weights(model: str) -> Path | None:
    """The cached file of ``model``'s default torchvision weights when it is present, else ``None``
    (also for models without torchvision weights)."""
    try:
        path = weights_file(resolve_weights(model))
    except ValueError:
        return None
    return path if path.is_file() else None


__all__ = ["MissingWeightsError", "PretrainedFile", "expected_sha256_prefix", "fetch_command", "file_sha256", "full_name", "is_weights_name", "local_default_weights",
           "locate_weights", "preprocessing", "read_pretrained", "read_state_dict", "rename_legacy_keys", "resolve_weights",
           "verify_weights_file", "weights_file"]
