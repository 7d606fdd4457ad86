"""timm's models as ``--model timm:NAME`` (the optional ``visionbench[timm]`` extra).

Any name timm knows (``timm.list_models()``, about 1,300 architectures, optionally with a pretrained
tag: ``timm:convnext_nano.in12k_ft_in1k``) is a classifier, built by
``timm.create_model(NAME, pretrained=False, num_classes=K, in_chans=C)``. The names are not in the
static catalogue: :class:`visionbench.models._registry.ModelRegistry` asks this module about any
``timm:`` name, so ``visionbench list models`` stays free of torch and timm.

Pretrained weights never download: :func:`timm_pretrained_state` reads them from a local file or
from the local Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``), where ``hf download REPO FILE`` on a machine with internet puts them.
Only :func:`locate_timm_weights` with ``download=True`` (``--download-weights``) fetches into that
cache. :func:`timm_preprocessing` is the weights' evaluation transform, in the shape of
:func:`visionbench.models.pretrained.preprocessing`.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import importlib.metadata
import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from visionbench._extras import import_optional, install_hint
from visionbench.models.pretrained import MissingWeightsError

if TYPE_CHECKING:  # annotations only: this module is imported by the registry's timm checks
    import torch
    from torch import nn

PREFIX = "timm:"
# timm's Hugging Face repositories hold safetensors first, older ones a pickle-free-loaded .bin.
_HF_FILES = ("model.safetensors", "pytorch_model.bin")


class MissingTimmWeightsError(MissingWeightsError, FileNotFoundError):
    """A timm model's pretrained weights are not in the local Hugging Face cache. A
    :class:`~visionbench.models.pretrained.MissingWeightsError` (a ``ValueError``: the command line
    prints it as a clean error, as for torchvision's weights) and a ``FileNotFoundError``."""


def is_timm_name(name: str) -> bool:
    """Whether ``name`` asks for a timm model (``"timm:convnext_nano"``)."""
    return name.startswith(PREFIX)


def _timm(purpose: str) -> Any:
    return import_optional("timm", extra="timm", purpose=purpose)


def _arch(name: str) -> str:
    """``"timm:convnext_nano.in1k"`` → ``"convnext_nano.in1k"`` (the name timm takes)."""
    return name[len(PREFIX):] if is_timm_name(name) else name


def timm_names(pattern: str = "*") -> list[str]:
    """Sorted ``timm:NAME`` for every timm architecture whose NAME matches the shell-style
    ``pattern`` (``"convnext*"``); a :class:`~visionbench._extras.MissingExtraError` without timm."""
    timm = _timm(f"listing timm models {pattern!r}")
    return [PREFIX + n for n in timm.list_models() if fnmatch.fnmatchcase(n, pattern)]


def timm_listing_hint() -> str:
    """The line ``visionbench list models`` adds about timm, found without importing timm."""
    if importlib.util.find_spec("timm") is None:
        return (f"{PREFIX}NAME: timm's ~1,300 classifiers are available with "
                f"`{install_hint('timm')}`.")
    return (f"{PREFIX}NAME: any timm model also works as --model (timm {importlib.metadata.version('timm')} "
            f"installed); list them with `visionbench list models '{PREFIX}PATTERN'`, e.g. '{PREFIX}convnext*'.")


def check_timm_name(name: str) -> None:
    """Raise a ``ValueError`` suggesting close names unless timm knows ``name`` (``"timm:NAME"``)."""
    timm = _timm(f"--model {name}")
    arch = _arch(name)
    if arch and timm.is_model(arch):
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(PREFIX + c) for c in close)}?" if close else ""
    raise ValueError(
        f"model {name!r} must name a timm model; timm {timm.__version__} has no {arch!r}.{hint} "
        f"Run `visionbench list models 'timm:PATTERN'` (e.g. 'timm:convnext*') to see timm's models."
    )


def _pretrained_cfg(name: str) -> Any:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(_arch(name))


def timm_info(name: str) -> dict[str, Any]:
    """The registry metadata of ``timm:NAME`` (as a :class:`~visionbench.models.catalog.ModelSpec`
    gives it), from timm's pretrained config: its input side is the default size, and models whose
    input size is fixed at construction (ViTs) take multiples of it (built with ``img_size``)."""
    check_timm_name(name)
    cfg = _pretrained_cfg(name)
    side = int(cfg.input_size[-1]) if cfg is not None else 224
    fixed = bool(cfg is not None and cfg.fixed_input_size)
    return {"description": f"timm {_arch(name)} ({'input side a multiple of ' if fixed else 'trained at '}{side} px)",
            "min_size": side if fixed else 32, "size_multiple": side if fixed else 1, "default_size": side,
            "task": "classify", "options": (), "fixed_input_size": fixed}


def timm_builder(name: str) -> Callable[..., nn.Module]:
    """The builder of ``timm:NAME``: ``timm.create_model(NAME, pretrained=False, num_classes=K,
    in_chans=C)`` (random init; pretrained weights are loaded afterwards, see
    :func:`timm_pretrained_state`)."""
    fixed = timm_info(name)["fixed_input_size"]

    def build(*, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
        timm = _timm(f"--model {name}")
        size = {"img_size": image_size} if fixed else {}  # ViTs size their position embedding
        return timm.create_model(_arch(name), pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                 **size)

    build.__doc__ = f"timm's ``{_arch(name)}`` (random init) for any classes and channels."
    return build


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache that is searched: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (read at each call, so a changed environment is honoured)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser() / "hub"


def timm_weights_source(name: str) -> tuple[str, tuple[str, ...]]:
    """``(Hugging Face repo id, candidate file names)`` of ``timm:NAME``'s default pretrained
    weights, e.g. ``("timm/convnext_nano.in12k_ft_in1k", ("model.safetensors", "pytorch_model.bin"))``."""
    check_timm_name(name)
    cfg = _pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id:
        raise ValueError(f"timm model {name!r} must have pretrained weights on the Hugging Face hub to be loaded "
                         f"from its cache; timm lists none. Pass a local weights file instead (--weights FILE).")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
    return cfg.hf_hub_id.split("@")[0], files


def hf_url(repo: str, filename: str) -> str:
    """Where the Hugging Face hub serves ``filename`` of ``repo`` (its ``main`` revision)."""
    return f"https://huggingface.co/{repo}/resolve/main/{filename}"


def _cached_file(repo: str, files: tuple[str, ...]) -> tuple[str, Path] | None:
    """``(file name, path)`` of the first of ``files`` of ``repo`` in the local cache, or ``None``."""
    from huggingface_hub import try_to_load_from_cache  # a file-system lookup: never a request

    for filename in files:
        found = try_to_load_from_cache(repo, filename, cache_dir=hf_cache_dir())
        if isinstance(found, str):
            return filename, Path(found)
    return None


def cached_timm_weights(name: str) -> Path | None:
    """The cached file of ``timm:NAME``'s default pretrained weights when it is present, else
    ``None`` (also for a model timm lists no Hugging Face weights for)."""
    try:
        repo, files = timm_weights_source(name)
    except ValueError:
        return None
    found = _cached_file(repo, files)
    return None if found is None else found[1]


def locate_timm_weights(name: str, *, download: bool = False) -> tuple[str, str, Path]:
    """``(repo, file name, local path)`` of ``timm:NAME``'s default pretrained weights in the local
    Hugging Face cache (:func:`hf_cache_dir`); fetched into that cache only when ``download``.

    Raises:
        MissingTimmWeightsError: not in the cache (and ``download`` is false); the message names
            the repo, the file, the cache folder and the command that fetches it.
        ValueError: timm lists no Hugging Face weights for ``NAME``.
    """
    repo, files = timm_weights_source(name)
    found = _cached_file(repo, files)
    if found is not None:
        return repo, found[0], found[1]
    if download:
        return _download(repo, files)
    raise MissingTimmWeightsError(
        f"pretrained weights for {name!r} must be in the local Hugging Face cache {hf_cache_dir()}; found none of "
        f"{', '.join(files)} of repo {repo!r} there ({hf_url(repo, files[0])}). visionbench does not download by "
        f"itself. On a machine with internet run `hf download {repo} {files[0]}` (or `huggingface-cli download "
        f"{repo} {files[0]}`) and copy its cache folder here (HF_HUB_CACHE, else HF_HOME/hub, names the folder), "
        f"pass the file with --weights FILE, or pass --download-weights to let this run download it."
    )


def _download(repo: str, files: tuple[str, ...]) -> tuple[str, str, Path]:
    """Fetch the first of ``files`` that ``repo`` holds into the local cache (``--download-weights`` only)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError

    for filename in files:
        try:
            return repo, filename, Path(hf_hub_download(repo, filename, cache_dir=hf_cache_dir()))
        except EntryNotFoundError:  # older repos hold pytorch_model.bin instead of model.safetensors
            continue
    raise ValueError(f"Hugging Face repo {repo!r} must hold one of {', '.join(files)}; it holds none. Download the "
                     f"weights by hand and pass them with --weights FILE.")


def timm_preprocessing(name: str) -> dict[str, Any]:
    """The evaluation transform of ``timm:NAME``'s pretrained weights, from timm's pretrained config,
    as :func:`visionbench.models.pretrained.preprocessing` gives torchvision's: ``crop_size`` (the
    input side), ``resize_size`` (``floor(crop / crop_pct)``, the short side timm's own eval
    transform resizes to), ``mean`` and ``std``.

    Only the centre crop is reproduced: timm's rarer ``crop_mode`` ``squash``/``border`` and its
    interpolation (often bicubic) are not (the pipeline resizes bilinearly, then crops the centre).

    Raises:
        ValueError: timm has no pretrained config for ``NAME``.
    """
    check_timm_name(name)
    cfg = _pretrained_cfg(name)
    if cfg is None:
        raise ValueError(f"timm model {name!r} must have a pretrained config for its preprocessing; timm has none. "
                         "Train it without --pretrained.")
    crop = int(cfg.input_size[-1])  # (C, H, W); timm's pretrained classifiers are square
    crop_pct = cfg.crop_pct or 0.875  # timm's DEFAULT_CROP_PCT when a config leaves it out
    return {"resize_size": math.floor(crop / crop_pct), "crop_size": crop,
            "mean": tuple(float(v) for v in cfg.mean), "std": tuple(float(v) for v in cfg.std)}


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a pickle-free ``torch.load(weights_only=True)``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            return state[key]
    return state


def timm_pretrained_state(name: str, file: str | Path | None = None, *, image_size: int | None = None
                          ) -> dict[str, torch.Tensor]:
    """The pretrained state dict of ``timm:NAME`` (or ``NAME``), never downloaded.

    The weights come from ``file`` when given, else from the local Hugging Face cache
    (:func:`hf_cache_dir`; the repo and file names are timm's, :func:`timm_weights_source`). They
    pass through timm's own loading (its per-model key conversions) into ``NAME`` built with its
    pretrained classes and 3 channels, and that model's ``state_dict()`` is returned: keys as
    :func:`timm_builder`'s model has them, the head and stem still at the checkpoint's shapes, for
    the caller to adapt (visionbench/models/pretrained.py). For models whose input size is fixed at
    construction (ViTs), ``image_size`` builds that model at the run's side, so timm's loader
    resamples the position embedding to it as timm's own fine-tuning does.

    Raises:
        MissingTimmWeightsError: (a ``FileNotFoundError``) the weights are not in the cache; the
            message names the repo, the file and the command that fetches it on a machine with internet.

    Example:
        >>> state = timm_pretrained_state("timm:resnet18.a1_in1k")  # doctest: +SKIP
    """
    timm = _timm(f"pretrained weights for {name}")
    check_timm_name(name)
    if file is None:
        path = locate_timm_weights(name)[2]
    else:
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"weights file must exist; got {str(path)!r} for {name!r}. Check the path.")
    state = _read_state(path)
    # timm's own loader maps old checkpoint layouts onto the model (its per-model filter functions);
    # handing it the state dict itself keeps it away from files and the network.
    size = {"img_size": image_size} if image_size and timm_info(name)["fixed_input_size"] else {}
    with _offline():
        model = timm.create_model(_arch(name), pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **size)
    return model.state_dict()


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """Hugging Face hub offline mode while timm loads: a second guard (the state dict is already in
    memory) so that no code path of timm's can reach the network."""
    import huggingface_hub.constants as hub_constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), hub_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"], hub_constants.HF_HUB_OFFLINE = "1", True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


__all__ = ["PREFIX", "MissingTimmWeightsError", "cached_timm_weights", "check_timm_name", "hf_cache_dir", "hf_url",
           "is_timm_name", "locate_timm_weights", "timm_builder", "timm_info", "timm_names", "timm_preprocessing",
           "timm_pretrained_state", "timm_weights_source"]
