"""Multi-label image classification from a folder tree: each image sits in every one of its label folders.

``--multilabel --data folder:ROOT`` reads the layouts of :mod:`visionbench.data.folder` with label
folders in place of class folders::

    ROOT/<label>/<image>            one pool, split at random with split_seed
    ROOT/train/<label>/<image>      given splits; val/ and test/ are optional, and a missing one is
    ROOT/val/<label>/<image>        split off train at random (val_fraction / test_fraction)
    ROOT/test/<label>/<image>
    ROOT/_none/<image>              (or ROOT/<split>/_none/…) images with no label

An image with several labels appears in each of its label folders under the same relative file name
(a copy, a symlink or a hard link): ``ROOT/cat/001.jpg`` and ``ROOT/sofa/001.jpg`` are one image
with the labels {cat, sofa}. An image's label set is the set of folders it appears in; its id is
that relative name (``001.jpg``, or ``train/001.jpg`` in the split layout), so the same name in two
splits is two images. Labels are the sorted folder names (of ``train/`` when it exists); a label
folder of ``val/`` or ``test/`` must also exist in ``train/``. Images are found as the folder reader
finds them (recursively, by extension, hidden entries skipped).

Copies must be byte-identical: two files of one name whose bytes differ are two different photos
that would silently be merged into one sample, so that is an error naming both files.

``_none`` holds images with no label. The name starts with ``_`` so that it is no plausible label
(``none``, ``other`` or ``background`` are real labels in some datasets) while staying visible: a
dot-folder would be skipped as hidden, as everywhere else. An image in ``_none/`` that also appears
in a label folder is an error (it cannot have no label and a label).

The split rules are those of the label CSV (:mod:`visionbench.data.multilabel`): a seeded random
split (a stratified one does not apply to label sets), unless the folder gives the splits.
"""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import torch

from visionbench.data._base import ClassificationData
from visionbench.data.folder import _check_fractions, _image_files, _refuse_split_without_train, read_image_rgb
from visionbench.data.multilabel import MultiLabelImageDataset
from visionbench.data.splits import random_split_indices

NO_LABEL = "_none"  # the folder of images without any label
SPLITS = ("train", "val", "test")
_LAYOUT = (f"Arrange the images as ROOT/<label>/<image> (an image with several labels in each of its label folders, "
           f"same file name; images with no label in ROOT/{NO_LABEL}/), or the same under ROOT/train/ with optional "
           "ROOT/val/ and ROOT/test/.")


def _folder_names(directory: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``directory``."""
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def _label_names(directory: Path) -> list[str]:
    """The label folders of ``directory`` (every sub-folder but ``_none``); at least one."""
    labels = [name for name in _folder_names(directory) if name != NO_LABEL]
    if not labels:
        raise ValueError(f"multi-label image folder must contain at least one label folder besides {NO_LABEL}/; got "
                         f"none in {directory}. {_LAYOUT}")
    return labels


def _same_file(first: Path, other: Path) -> bool:
    """Whether two files hold the same bytes (the same file through a link counts without reading it)."""
    try:
        return os.path.samefile(first, other) or filecmp.cmp(first, other, shallow=False)
    except OSError as error:  # a broken symlink, a file removed meanwhile
        raise ValueError(f"image file must be readable; got {type(error).__name__} ({error}) comparing {first} and "
                         f"{other}. Fix or remove the broken file or link.") from None


def _check_copy(first: Path, other: Path) -> None:
    """Two files of one relative name in two label folders must be one image."""
    if not _same_file(first, other):
        raise ValueError(f"files of the same name in two label folders must be the same image (identical bytes); got "
                         f"different bytes in {first} and {other}. Rename one of them if they are different photos, "
                         "or replace one by a copy of (or a link to) the other.")


def _collect(directory: Path, folders: list[str]) -> dict[str, list[tuple[str, Path]]]:
    """Relative image name → ``(folder, file)`` of each folder it appears in (``folders`` order)."""
    copies: dict[str, list[tuple[str, Path]]] = {}
    for name in folders:
        folder = directory / name
        for file in _image_files(folder):
            key = file.relative_to(folder).as_posix()
            if key in copies:
                _check_copy(copies[key][0][1], file)
            copies.setdefault(key, []).append((name, file))
    return copies


def _scan(directory: Path, labels: list[str], prefix: str) -> MultiLabelImageDataset:
    """The images under ``directory/<label>/`` and ``directory/_none/``, one sample per relative name,
    sorted by it, with the multi-hot target of the folders it appears in; ids ``prefix + name``."""
    found = _folder_names(directory)
    unknown = [name for name in found if name not in labels and name != NO_LABEL]
    if unknown:
        raise ValueError(f"label folders of {directory.name}/ must also exist in train/; got {unknown!r} in "
                         f"{directory}. Add those labels to {directory.parent / 'train'} or remove the folders.")
    copies = _collect(directory, found)
    index = {name: k for k, name in enumerate(labels)}
    keys = sorted(copies)
    targets = torch.zeros(len(keys), len(labels))
    for row, key in enumerate(keys):
        files = dict(copies[key])  # folder -> file
        if NO_LABEL in files and len(files) > 1:
            labelled = next(file for folder, file in files.items() if folder != NO_LABEL)
            raise ValueError(f"an image in {NO_LABEL}/ must have no label; got {files[NO_LABEL]} and the same image in "
                             f"{labelled}. Remove it from {NO_LABEL}/ or from its label folders.")
        targets[row, [index[folder] for folder in files if folder != NO_LABEL]] = 1.0
    return MultiLabelImageDataset([copies[key][0][1] for key in keys], targets, [prefix + key for key in keys], labels)


def _split_off(given: dict[str, MultiLabelImageDataset], *, seed: int, val_fraction: float,
               test_fraction: float) -> dict[str, MultiLabelImageDataset]:
    """Complete ``given`` to train/val/test, cutting the missing splits from ``given["train"]`` at random."""
    missing = [name for name in ("val", "test") if name not in given]
    if not missing:
        return given
    pool = given["train"]
    parts = random_split_indices(len(pool), val_fraction=val_fraction if "val" in missing else 0.0,
                                 test_fraction=test_fraction if "test" in missing else 0.0, seed=seed)
    train, val, test = (pool.take(part) for part in parts)
    return {"train": train, "val": given.get("val", val), "test": given.get("test", test)}


def load_multilabel_folder(path: str, *, seed: int, val_fraction: float, test_fraction: float) -> ClassificationData:
    """Read a multi-label folder tree (see the module docstring) and split it.

    Args:
        path: the dataset root.
        seed: seed of the random split of what the folders do not split.
        val_fraction, test_fraction: shares held out when there is no ``val/`` / ``test/``, in ``[0, 1)``.

    Returns:
        :class:`~visionbench.data._base.ClassificationData` whose splits are
        :class:`~visionbench.data.multilabel.MultiLabelImageDataset` (targets ``float32 [N, L]``),
        ``classes`` the L labels, ``in_channels`` 3, ``image_size`` that of the first training image.

    Raises:
        ValueError: no label folder, files of one name with different bytes (naming both), an image
            both in ``_none/`` and in a label folder, an empty folder, a ``val/``/``test/`` label
            absent from ``train/``, bad fractions, or an empty training split.

    Example:
        >>> data = load_multilabel_folder("~/scenes", seed=0, val_fraction=0.1, test_fraction=0.2)
        >>> data.train.targets().shape[1] == data.num_classes
        True
    """
    _check_fractions(val_fraction, test_fraction)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"image folder must be an existing directory; got {str(root)!r}. {_LAYOUT}")
    if (root / "train").is_dir():
        labels = _label_names(root / "train")
        given = {name: _scan(root / name, labels, f"{name}/") for name in SPLITS if (root / name).is_dir()}
    else:
        _refuse_split_without_train(root)
        labels = _label_names(root)
        given = {"train": _scan(root, labels, "")}
    splits = _split_off(given, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    if not len(splits["train"]):
        raise ValueError(f"training split must hold at least one image; got 0 in {root}. Add images or lower "
                         f"val_fraction/test_fraction (now {val_fraction}/{test_fraction}).")
    height, width = read_image_rgb(splits["train"].paths[0]).shape[1:]
    return ClassificationData(train=splits["train"], val=splits["val"], test=splits["test"], classes=labels,
                              in_channels=3, image_size=(int(height), int(width)), name=f"folder:{path}")


__all__ = ["NO_LABEL", "load_multilabel_folder"]
