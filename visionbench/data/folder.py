"""Image classification from a folder tree (torchvision's ImageFolder layout).

Two layouts are read::

    PATH/<class>/<image>            one pool, split with a seeded stratified split
    PATH/train/<class>/<image>      given splits; val/ and test/ are optional, and a missing
    PATH/val/<class>/<image>        one is split off train (val_fraction / test_fraction)
    PATH/test/<class>/<image>

Images are found recursively under each class folder by extension (torchvision's
``IMG_EXTENSIONS``, any case); hidden files and folders (``.DS_Store``, macOS ``._x.jpg``,
``.ipynb_checkpoints``) are skipped. Images are decoded lazily, one per ``__getitem__``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms.functional import pil_to_tensor

from visionbench.data._base import ClassificationData, stratified_split

_LAYOUT = (
    "Arrange the images as PATH/<class>/<image>.jpg (one folder per class), or as "
    "PATH/train/<class>/<image>.jpg with optional PATH/val/<class>/… and PATH/test/<class>/… "
    "folders."
)


class ImageFileDataset(Dataset):
    """Images on disk, decoded on access.

    Args:
        paths: image files, one per sample.
        labels: class index of each sample.
        ids: one stable string id per sample (the path relative to the dataset root).

    A sample is ``(uint8 [3, H, W], label)``; see :func:`read_image_rgb`.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], labels: Sequence[int], ids: Sequence[str]) -> None:
        assert len(paths) == len(labels) == len(ids)
        self.paths = [str(p) for p in paths]  # plain strings: cheap to pickle to loader workers
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1))
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return read_image_rgb(self.paths[index]), int(self.labels[index])

    def targets(self) -> torch.Tensor:
        """All labels as ``int64 [N]`` (used for class-balanced sampling and split checks)."""
        return self.labels


def read_image_rgb(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode an image file to RGB.

    Args:
        path: any format PIL reads (grayscale, palette and RGBA are converted to RGB).

    Returns:
        ``uint8 [3, H, W]``.

    Raises:
        ValueError: the file is missing, corrupt, truncated, not an image, or a decompression
            bomb; the message names the file.
    """
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode.startswith("I;16"):  # 16-bit grey: convert("RGB") would clip every value above 255
                return _sixteen_bit_grey_as_rgb8(image)
            rgb = None if mode in ("I", "F") else image.convert("RGB")  # a full decode: truncation surfaces here
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise ValueError(
            f"image must be a readable image file; got {type(exc).__name__} ({exc}) in {path}. "
            "Remove or replace the file."
        ) from None
    if rgb is None:
        raise ValueError(
            f"image must have 8 or 16 bits per sample to be trained on; got mode {mode!r} (32-bit "
            f"{'integer' if mode == 'I' else 'float'} samples, whose value range is unknown) in {path}. "
            "Convert it to an 8- or 16-bit PNG or TIFF, scaled to that range."
        )
    return pil_to_tensor(rgb)  # (3, H, W) uint8


def _sixteen_bit_grey_as_rgb8(image: Image.Image) -> torch.Tensor:
    """A 16-bit grey image as ``uint8 [3, H, W]``, its full range 0..65535 scaled to 0..255 (rounded):
    the models take 8-bit inputs scaled to [0, 1], so 16-bit data keeps its range, not its low bits."""
    grey = np.asarray(image, dtype=np.uint16).astype(np.uint32)
    eight = ((grey * 255 + 32767) // 65535).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(eight, (3, *eight.shape))))


def load_folder(
    path: str | os.PathLike[str], *, seed: int, val_fraction: float, test_fraction: float
) -> ClassificationData:
    """Read an image-folder dataset (see the module docstring for the two layouts).

    Classes are the sorted class-folder names (of ``train/`` when it exists). Splits not given as
    folders are cut from the pool (or from ``train/``) with :func:`stratified_split` and ``seed``.

    Args:
        path: the dataset root.
        seed: seed of the split.
        val_fraction: share held out for validation when there is no ``val/``, in ``[0, 1)``.
        test_fraction: share held out for testing when there is no ``test/``, in ``[0, 1)``.

    Returns:
        Splits of :class:`ImageFileDataset` with ids = paths relative to ``path`` (POSIX
        separators, e.g. ``"train/cat/001.jpg"``); ``in_channels`` 3; ``image_size`` = ``(H, W)``
        of the first training image (the transform preset resizes every image later).

    Raises:
        ValueError: no class folders, an empty class folder, a ``val/``/``test/`` class absent
            from ``train/``, bad fractions, or an unreadable first training image.

    Example:
        >>> data = load_folder("~/pets", seed=0, val_fraction=0.1, test_fraction=0.2)
        >>> data.train.ids[0]
        'abyssinian/001.jpg'
    """
    _check_fractions(val_fraction, test_fraction)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder must be an existing directory; got {str(root)!r}. {_LAYOUT}")
    if (root / "train").is_dir():
        classes = _class_names(root / "train")
        given = {name: _scan(root / name, root, classes) for name in ("train", "val", "test") if (root / name).is_dir()}
    else:
        _refuse_split_without_train(root)
        classes = _class_names(root)
        given = {"train": _scan(root, root, classes)}
    _refuse_files_seen_twice(given, root)
    splits = _split_off(given, {"val": val_fraction, "test": test_fraction}, seed)
    if not len(splits["train"]):
        raise ValueError(
            f"training split must hold at least one image; got 0 in {root}. Add images or lower "
            f"val_fraction/test_fraction (now {val_fraction}/{test_fraction})."
        )
    height, width = read_image_rgb(splits["train"].paths[0]).shape[1:]
    return ClassificationData(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        classes=classes,
        in_channels=3,
        image_size=(int(height), int(width)),
        name=f"folder:{path}",
    )


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Require both fractions in ``[0, 1)`` with a sum below 1 (train keeps the rest)."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1); got {value!r}. Pass e.g. 0.1.")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1; got {val_fraction!r} + {test_fraction!r}. "
            "Lower one of them so that some images are left for training."
        )


def _refuse_split_without_train(root: Path) -> None:
    """``val/`` or ``test/`` without ``train/`` would silently become classes; refuse it."""
    present = [name for name in ("val", "test") if (root / name).is_dir()]
    if present:
        raise ValueError(
            f"split folders must include train/; got {present!r} without train/ in {root}. Add "
            "PATH/train/<class>/… (val/ and test/ are optional), or rename the folders if they "
            "really are classes."
        )


def _class_names(directory: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``directory``; a ``ValueError`` if none."""
    names = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    if not names:
        raise ValueError(f"image folder must contain one sub-folder per class; got none in {directory}. {_LAYOUT}")
    return names


def _scan(directory: Path, root: Path, classes: list[str]) -> ImageFileDataset:
    """All images under ``directory/<class>/``, labelled by position in ``classes``."""
    found = _class_names(directory)
    unknown = [name for name in found if name not in classes]
    if unknown:
        raise ValueError(
            f"class folders of {directory.name}/ must also exist in train/; got {unknown!r} in "
            f"{directory}. Add those classes to {root / 'train'} or remove the folders."
        )
    index = {name: label for label, name in enumerate(classes)}
    paths, labels = [], []
    for name in found:
        files = _image_files(directory / name)
        paths += files
        labels += [index[name]] * len(files)
    return ImageFileDataset(paths, labels, [p.relative_to(root).as_posix() for p in paths])


def _image_files(class_dir: Path) -> list[Path]:
    """Image files under ``class_dir`` (recursive, following folder links, hidden entries skipped),
    sorted by path. A folder reached a second time through links (a loop, or two links to one
    folder) is skipped with a warning: a loop once turned 30 images into 1,230."""
    files, visited, again = [], set(), []
    for dirpath, dirnames, filenames in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            again.append(dirpath)
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        files += [Path(dirpath, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMG_EXTENSIONS)]
    if again:
        warnings.warn(f"{class_dir}: skipped {len(again)} folder(s) reached again through symbolic links (a link "
                      f"loop or a second link to one folder), e.g. {again[0]}; each image is read once.", stacklevel=2)
    if not files:
        raise ValueError(
            f"class folder must contain at least one image ({', '.join(IMG_EXTENSIONS)}); got none "
            f"in {class_dir}. Add images to it or remove the folder."
        )
    return sorted(files)


def _refuse_files_seen_twice(given: dict[str, ImageFileDataset], root: Path) -> None:
    """Refuse one image file reached by two paths (links): in two classes it would carry two labels,
    in two splits it would be trained on and tested on."""
    first: dict[str, str] = {}
    for dataset in given.values():
        for path, image_id in zip(dataset.paths, dataset.ids, strict=True):
            real = os.path.realpath(path)
            if real in first:
                raise ValueError(
                    f"each image must appear once in image folder {root}; got {first[real]!r} and {image_id!r}, which "
                    f"are the same file {real!r} (through a symbolic link). It would get two labels or sit in two "
                    "splits: remove one of the links.")
            first[real] = image_id


def _split_off(
    given: dict[str, ImageFileDataset], fractions: dict[str, float], seed: int
) -> dict[str, ImageFileDataset]:
    """Complete ``given`` to train/val/test, cutting the missing splits from ``given["train"]``."""
    missing = [name for name in ("val", "test") if name not in given]
    if not missing:
        return given
    pool = given["train"]
    shares = [fractions[name] for name in missing]
    parts = stratified_split(pool.targets().numpy(), (1.0 - sum(shares), *shares), seed=seed)
    cut = {name: _take(pool, index) for name, index in zip(("train", *missing), parts, strict=True)}
    return {**given, **cut}


def _take(dataset: ImageFileDataset, index: np.ndarray) -> ImageFileDataset:
    """The samples of ``dataset`` at ``index``."""
    rows = index.tolist()
    return ImageFileDataset(
        [dataset.paths[i] for i in rows],
        [int(dataset.labels[i]) for i in rows],
        [dataset.ids[i] for i in rows],
    )
