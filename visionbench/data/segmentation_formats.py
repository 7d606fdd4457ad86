"""Semantic segmentation datasets from files: a folder of images and PNG masks, Pascal VOC, COCO instances.

Every reader gives the segmentation sample contract of :class:`visionbench.data.shapes.ShapesSegmentation`::

    image: tv_tensors.Image uint8 [3, H, W]   (grayscale, palette and RGBA images converted to RGB)
    mask:  tv_tensors.Mask  int64 [H, W]      class indices in [0, K), 255 = ignore (IGNORE_INDEX)

Images and masks are decoded lazily with Pillow, one pair per ``__getitem__``; a constructor reads
only file lists, headers and annotation files. ``dataset.ids[i]`` is the item's file name relative to
its images folder (POSIX separators), a stable id for predictions files.

Three sources (:func:`load_segmentation_data` reads a data spec of each into three splits):

* ``masks:PATH`` (:class:`MaskFolderSegmentation`): ``PATH/images/**`` and ``PATH/masks/**.png``
  paired by relative path without extension; or split folders ``PATH/train/images``,
  ``PATH/train/masks``, ``PATH/val/…``, ``PATH/test/…``. Mask pixels are class indices (8- or 16-bit
  grayscale, or palette indices of a palette PNG, as :func:`visionbench.data.masks.read_mask`
  reads them). Classes come from ``PATH/classes.txt`` (one name a line), else ``class_0 … class_{K-1}``.
* ``voc:PATH`` (:class:`VocSegmentation`): Pascal VOC's ``ImageSets/Segmentation/<split>.txt``,
  ``JPEGImages/<id>.jpg`` and ``SegmentationClass/<id>.png`` (palette PNG whose index 255 marks
  object boundaries and "difficult" regions: ignored). 21 classes, ``background`` first.
* ``coco:ANNOTATIONS.json[:IMAGES]`` (:class:`CocoSemanticSegmentation`): COCO instances rasterised
  with pycocotools' mask API into one semantic mask per image (rule in the class docstring).

**Bad input** raises ``ValueError`` naming the file (and the record for COCO): missing folders,
files or split lists, unpaired images/masks, a non-PNG mask, two files with the same name but
different extensions, a mask whose size differs from its image's, mask values outside ``[0, K)``
other than the ignore index, an RGB mask, a malformed COCO annotation (polygon with fewer than 3
points, RLE whose size is not the image's or whose run lengths do not cover it). Checks that need
pixel data (sizes, values, RGB masks) run when the item is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from visionbench.data._detection_coco import _coco_file_name, _coco_size, coco_spec_paths
from visionbench.data._detection_records import _image_size, _read_lines, _require_files, _unique_names
from visionbench.data._detection_voc import VOC_CLASSES
from visionbench.data.folder import _check_fractions, read_image_rgb
from visionbench.data.masks import largest_mask_value, read_mask
from visionbench.data.splits import DatasetView, TaskData, random_split_indices
from visionbench.metrics.detection.coco_json import _check_known, _column, _read_json, _record_name, _unique_ids

SplitName = Literal["train", "val", "test"]

IGNORE_INDEX = 255  # the mask value every reader gives to pixels that are not counted
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIX = ".png"
SPLITS: tuple[SplitName, ...] = ("train", "val", "test")
# Pascal VOC segmentation: index 0 is background, then the 20 object classes in the devkit's order
# (VOCinit.m), which are the palette indices of SegmentationClass/*.png.
VOC_SEGMENTATION_CLASSES: tuple[str, ...] = ("background", *VOC_CLASSES)
_EXAMPLES = 5  # file names listed in an error message about many files

_MASKS_LAYOUT = (
    "Arrange the data as PATH/images/<name>.jpg with PATH/masks/<name>.png (same relative path), or as "
    "PATH/train/images + PATH/train/masks with optional PATH/val/… and PATH/test/…."
)


# --------------------------------------------------------------------------------------------
# The data contract
# --------------------------------------------------------------------------------------------


# The three splits of one segmentation dataset (``task="segment"``).
SegmentationData = TaskData


class _SegmentationFiles(Dataset):
    """Shared item logic: decode the image, get the mask from the subclass, check that sizes agree.

    Subclasses set ``image_paths`` (str), ``ids``, ``classes`` and implement :meth:`_target`.
    """

    image_paths: list[str]
    ids: list[str]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
        image = read_image_rgb(self.image_paths[index])  # (3, H, W) uint8; ValueError naming the file
        mask, source = self._target(index)  # (H, W) int64, values already checked
        if mask.shape != tuple(image.shape[1:]):
            height, width = mask.shape
            raise ValueError(
                f"mask size must equal its image's; got {width}x{height} (W x H) from {source} and "
                f"{image.shape[2]}x{image.shape[1]} in {self.image_paths[index]}. Resize the mask to the image with "
                "nearest-neighbour interpolation, or fix the pairing (or the annotation's width/height).")
        return tv_tensors.Image(image), tv_tensors.Mask(torch.from_numpy(mask))

    def _target(self, index: int) -> tuple[np.ndarray, str]:
        """``(int64 [H, W] mask, where it comes from)`` of item ``index``."""
        raise NotImplementedError

    def image_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each image, from the file headers (no pixel is decoded)."""
        return [_image_size(path) for path in self.image_paths]


def _checked_mask(mask: np.ndarray, *, num_classes: int, ignore_index: int, source: str, fix: str) -> np.ndarray:
    """``mask`` with ``ignore_index`` mapped to :data:`IGNORE_INDEX`, after refusing values outside
    ``[0, num_classes)`` other than ``ignore_index``; the error lists the bad values."""
    bad = (mask != ignore_index) & ((mask < 0) | (mask >= num_classes))
    if bad.any():
        values = np.unique(mask[bad])
        shown = ", ".join(str(v) for v in values[:10].tolist()) + (", …" if len(values) > 10 else "")
        raise ValueError(f"mask values must be class indices in [0, {num_classes}) or the ignore index {ignore_index}; "
                         f"got {shown} in {source}. {fix}")
    if ignore_index != IGNORE_INDEX:
        mask = np.where(mask == ignore_index, IGNORE_INDEX, mask)
    return mask


def _check_class_count(num_classes: Any, what: str) -> int:
    """A class count in ``[1, 255]``: 255 is the ignore value of the mask contract."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or not 1 <= num_classes <= 255:
        raise ValueError(f"{what} must be an int in [1, 255] (mask value 255 means ignore); got {num_classes!r}. "
                         "Pass the number of classes, background included.")
    return int(num_classes)


# --------------------------------------------------------------------------------------------
# masks:PATH — images and PNG masks paired by name
# --------------------------------------------------------------------------------------------


class MaskFolderSegmentation(_SegmentationFiles):
    """Images and PNG masks of class indices, paired by relative path without extension.

    Args:
        root: ``PATH`` with ``images/`` and ``masks/``, or with ``train/images`` and ``train/masks``
            (and optionally ``val/…``, ``test/…``): then every split's items are here and
            :attr:`split_indices` says which are which.
        num_classes: ``K``, the mask values ``0..K-1`` (``<= 255``). Default: the number of lines of
            ``PATH/classes.txt`` when it exists, else one more than the largest mask value found by
            reading every mask once (``ignore_index`` excluded).
        ignore_index: the mask value that marks pixels not to count (``>= K``); items give it as 255.

    Attributes:
        ids: the image path relative to its ``images/`` folder (``"a/x.jpg"``), prefixed by the
            split folder in the split layout (``"train/a/x.jpg"``).
        classes: ``classes.txt`` lines, else ``["class_0", …, "class_{K-1}"]``.
        split_indices: ``{"train": [...], "val": [...], ...}`` item positions per split folder found;
            empty for the single-folder layout.

    Images: any of ``.png .jpg .jpeg .bmp .tif .tiff .webp`` (any case); masks: ``.png`` only (a
    lossy or other format in ``masks/`` is refused). Hidden files and folders are skipped. Items
    raise ``ValueError`` naming the files for a mask of another size than its image, values
    ``>= K`` other than ``ignore_index``, and RGB masks.

    Example:
        >>> data = MaskFolderSegmentation("~/cells", num_classes=3)  # doctest: +SKIP
        >>> image, mask = data[0]  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], *, num_classes: int | None = None,
                 ignore_index: int = IGNORE_INDEX) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise ValueError(f"masks dataset root must be an existing directory; got {str(self.root)!r}. "
                             f"{_MASKS_LAYOUT}")
        self.image_paths, self.mask_paths, self.ids = [], [], []
        self.split_indices: dict[str, list[int]] = {}
        for split, folder in _mask_folders(self.root):
            start = len(self.image_paths)
            for name, image_path, mask_path in _pair_folder(folder):
                self.image_paths.append(str(image_path))
                self.mask_paths.append(str(mask_path))
                self.ids.append(f"{split}/{name}" if split else name)
            if split:
                self.split_indices[split] = list(range(start, len(self.image_paths)))
        if not self.image_paths:
            raise ValueError(f"masks dataset must hold at least one image with its mask; got none in {self.root}. "
                             f"{_MASKS_LAYOUT}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int | np.integer) or ignore_index < 0:
            raise ValueError(f"ignore_index must be a non-negative int; got {ignore_index!r}. Pass the mask value of "
                             "unlabelled pixels (255 by default).")
        self.ignore_index = int(ignore_index)
        self.classes = self._classes(num_classes)
        if self.ignore_index < len(self.classes):
            raise ValueError(f"ignore_index must not be a class index (>= {len(self.classes)}); got {ignore_index!r}. "
                             "Pass the value that marks unlabelled pixels, or fewer classes.")

    def _classes(self, num_classes: int | None) -> list[str]:
        classes_file = self.root / "classes.txt"
        if classes_file.is_file():
            names = _read_lines(classes_file)
            if not names or len(set(names)) != len(names):
                raise ValueError(f"classes.txt must list distinct class names, one a line; got {names!r} in "
                                 f"{classes_file}. Fix the file or remove it.")
            _check_class_count(len(names), f"the number of classes in {classes_file}")
            if num_classes is not None and num_classes != len(names):
                raise ValueError(f"num_classes must equal the {len(names)} names of {classes_file}; got "
                                 f"{num_classes!r}. Leave num_classes out or fix classes.txt.")
            return names
        if num_classes is None:
            num_classes = max(largest_mask_value(self.mask_paths, self.ignore_index, limit=256,
                                                       fix="a mask of a training set holds at most 255 classes") + 1, 1)
            _check_class_count(num_classes, f"one more than the largest mask value found in {self.root}")
        count = _check_class_count(num_classes, "num_classes")
        return [f"class_{k}" for k in range(count)]

    def _target(self, index: int) -> tuple[np.ndarray, str]:
        path = self.mask_paths[index]
        fix = (f"Pass num_classes > {len(self.classes) - 1} (or list every class in classes.txt), or relabel the "
               f"mask; unlabelled pixels must be {self.ignore_index} (ignore_index).")
        mask = _checked_mask(read_mask(Path(path)), num_classes=len(self.classes), ignore_index=self.ignore_index,
                             source=path, fix=fix)
        return mask, path


def _mask_folders(root: Path) -> list[tuple[str, Path]]:
    """``(split name or "", folder holding images/ and masks/)`` of either layout."""
    splits = [(s, root / s) for s in SPLITS if (root / s / "images").is_dir()]
    if not splits:
        return [("", root)]
    if splits[0][0] != "train":
        raise ValueError(f"split folders must include train/images; got only {[s for s, _ in splits]!r} in {root}. "
                         f"{_MASKS_LAYOUT}")
    if (root / "images").is_dir():
        raise ValueError(f"a masks dataset must use one layout; got both {root / 'images'} and {root / 'train'}. "
                         "Move the images of PATH/images into the split folders, or remove the split folders.")
    return splits


def _pair_folder(folder: Path) -> list[tuple[str, Path, Path]]:
    """``(image path relative to images/, image file, mask file)`` sorted by name; errors for
    missing folders, non-PNG masks and unpaired files."""
    images_dir, masks_dir = folder / "images", folder / "masks"
    for directory in (images_dir, masks_dir):
        if not directory.is_dir():
            raise ValueError(f"masks dataset folder must exist; got no directory {directory}. {_MASKS_LAYOUT}")
    images = _files_by_stem(images_dir)
    masks = _files_by_stem(masks_dir)
    for path in masks.values():
        if path.suffix.lower() != MASK_SUFFIX:
            raise ValueError(f"masks must be PNG files (lossless class indices); got {path}. Re-save it as a grayscale "
                             "or palette PNG of class indices (JPEG compression changes the values at edges).")
    images_only, masks_only = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if images_only or masks_only:
        def few(names: list[str], files: dict[str, Path], root: Path) -> str:
            shown = [files[n].relative_to(root).as_posix() for n in names[:_EXAMPLES]]
            return repr(shown)[:-1] + (", …]" if len(names) > _EXAMPLES else "]")

        raise ValueError(
            f"every image must have a mask with the same relative path (extension aside); got {len(images_only)} images "
            f"without mask {few(images_only, images, images_dir)} in {images_dir} and {len(masks_only)} masks without "
            f"image {few(masks_only, masks, masks_dir)} in {masks_dir}. Add the missing files or remove the extra ones.")
    return [(images[n].relative_to(images_dir).as_posix(), images[n], masks[n]) for n in sorted(images)]


def _files_by_stem(directory: Path) -> dict[str, Path]:
    """Image files under ``directory`` (recursive, hidden entries skipped) by relative path without
    extension; two files that differ only by extension are refused (which one pairs is ambiguous)."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(dirpath, filename)
            stem = path.relative_to(directory).with_suffix("").as_posix()
            if stem in found:
                raise ValueError(f"file names must be unique without their extension; got {found[stem].name!r} and "
                                 f"{filename!r} in {path.parent}. Remove or rename one of them.")
            found[stem] = path
    return found


# --------------------------------------------------------------------------------------------
# voc:PATH — Pascal VOC segmentation
# --------------------------------------------------------------------------------------------


class VocSegmentation(_SegmentationFiles):
    """Pascal VOC semantic segmentation (``VOC2012`` or ``VOC2007``).

    Args:
        root: the folder holding ``ImageSets/Segmentation`` (``VOCdevkit/VOC2012``), or a folder
            above it: ``root/VOC2012``, ``root/VOC2007``, ``root/VOCdevkit/VOC2012`` and
            ``root/VOCdevkit/VOC2007`` are tried in that order.
        split: the list ``ImageSets/Segmentation/<split>.txt`` (``"train"``, ``"val"``, ``"trainval"``).

    Item ``i`` is ``JPEGImages/<id>.jpg`` with ``SegmentationClass/<id>.png``, a palette PNG read as
    its palette indices: ``0`` background, ``1..20`` the classes of :data:`VOC_SEGMENTATION_CLASSES`,
    ``255`` object boundaries and difficult regions (ignored). ``ids`` are ``"<id>.jpg"``. Missing
    files are named at construction; other mask values raise when the item is read.

    Example:
        >>> data = VocSegmentation("VOCdevkit", split="val")  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train") -> None:
        self.root = _find_voc_root(Path(root).expanduser())
        split_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in split_file.parent.glob("*.txt"))
            raise ValueError(f"VOC segmentation split list must exist; got no file {split_file}. Pick one of "
                             f"{available!r} or write the list, one image id a line.")
        names = [line.split()[0] for line in _read_lines(split_file)]
        if not names:
            raise ValueError(f"VOC split list must hold at least one image id; got an empty file {split_file}. "
                             "List one image id a line.")
        _unique_names(names, str(split_file))
        self.split = split
        self.classes = list(VOC_SEGMENTATION_CLASSES)
        self.image_paths = [str(self.root / "JPEGImages" / f"{n}.jpg") for n in names]
        self.mask_paths = [str(self.root / "SegmentationClass" / f"{n}.png") for n in names]
        self.ids = [f"{n}.jpg" for n in names]
        for what, paths in (("image", self.image_paths), ("mask", self.mask_paths)):
            missing = [p for p in paths if not os.path.isfile(p)]
            if missing:
                raise ValueError(f"VOC {what} files must exist; got {len(missing)} missing, first {missing[0]!r}, listed "
                                 f"in {split_file}. Add the files or remove those ids from the list.")

    def _target(self, index: int) -> tuple[np.ndarray, str]:
        path = self.mask_paths[index]
        fix = "VOC masks hold 0 (background), 1..20 (classes) and 255 (boundary); re-export the palette PNG."
        return _checked_mask(read_mask(Path(path)), num_classes=len(self.classes), ignore_index=IGNORE_INDEX,
                             source=path, fix=fix), path


def _find_voc_root(path: Path) -> Path:
    """The first of ``path``, ``path/VOC2012``, ``path/VOC2007``, ``path/VOCdevkit/VOC20xx`` holding
    ``ImageSets/Segmentation``."""
    candidates = [path, path / "VOC2012", path / "VOC2007", path / "VOCdevkit" / "VOC2012", path / "VOCdevkit" / "VOC2007"]
    for candidate in candidates:
        if (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise ValueError(f"VOC root must hold ImageSets/Segmentation; got none in {[str(c) for c in candidates]}. Point "
                     "voc:PATH at VOCdevkit/VOC2012 (or its parent).")


# --------------------------------------------------------------------------------------------
# coco:ANNOTATIONS.json[:IMAGES] — instances rasterised to semantic masks
# --------------------------------------------------------------------------------------------


def _mask_api() -> Any:
    """pycocotools' ``mask`` module, imported on first use: it is the optional ``visionbench[coco]``
    extra (a :class:`~visionbench._extras.MissingExtraError` names it when missing)."""
    from visionbench._extras import import_optional

    return import_optional("pycocotools.mask", extra="coco", purpose="reading COCO segmentations (--data coco:…)")


@dataclass(frozen=True)
class _CocoImage:
    """One image of a COCO file: where it is, its size and its annotations in file order."""

    file_name: str
    path: str
    height: int
    width: int
    labels: list[int]  # class index (1 + position of the category id in the sorted ids)
    crowd: list[bool]
    segmentations: list[Any]
    where: list[str]  # "annotations[i] (id …)" of each, for messages


class CocoSemanticSegmentation(_SegmentationFiles):
    """COCO instances (polygons, uncompressed and compressed RLE) as one semantic mask per image.

    Args:
        annotations_json: a COCO instances file (``images``, ``annotations``, ``categories``).
        images_dir: the folder ``file_name`` is relative to; default the JSON's folder.

    Classes: ``classes[0] = "background"``, then the category names in ascending category id, so a
    category's mask value is ``1 + `` its position among the sorted ids (:attr:`category_ids`).

    **Rasterisation rule.** Each annotation is decoded with pycocotools (``frPyObjects`` +
    ``decode``, the same pixels as ``COCO.annToMask``; the polygons of one annotation are united).
    Non-crowd annotations are painted in file order, so where instances overlap the later one wins.
    Crowd annotations (``iscrowd = 1``) are written as ``255`` (ignore) only on pixels that no
    non-crowd annotation covers, whatever the order: a crowd region never hides a labelled instance.
    Every other pixel is background (0). Images without annotations are all background.

    Checks at construction (``ValueError`` naming the file and the annotation): the COCO structure
    (ids, image and category references, unique file names, existing image files), and each
    ``segmentation``: a list of polygons of at least 3 points with finite coordinates (an empty list
    is an empty mask), or an RLE whose ``size`` is the image's ``[height, width]`` and whose run
    lengths sum to ``height * width`` (pycocotools would decode a short RLE into uninitialised
    memory). More than 254 categories are refused (255 is the ignore value).

    Example:
        >>> data = CocoSemanticSegmentation("annotations/instances_val2017.json", "val2017")  # doctest: +SKIP
    """

    def __init__(self, annotations_json: str | os.PathLike[str],
                 images_dir: str | os.PathLike[str] | None = None) -> None:
        _mask_api()  # fail now, not at the first item, when pycocotools is missing
        self.source = str(annotations_json)
        self.images_dir = Path(annotations_json).parent if images_dir is None else Path(images_dir)
        self.category_ids, names, self._images = _read_coco_segmentation(Path(annotations_json), self.images_dir)
        self.classes = ["background", *names]
        self.image_paths = [image.path for image in self._images]
        self.ids = [image.file_name for image in self._images]

    def semantic_mask(self, index: int) -> np.ndarray:
        """The ``int64 [H, W]`` semantic mask of image ``index`` (the rule of the class docstring)."""
        image = self._images[index]
        mask_api = _mask_api()
        semantic = np.zeros((image.height, image.width), dtype=np.int64)
        labelled = np.zeros((image.height, image.width), dtype=bool)
        crowd = np.zeros((image.height, image.width), dtype=bool)
        for label, is_crowd, segmentation, what in zip(image.labels, image.crowd, image.segmentations, image.where,
                                                       strict=True):
            try:
                pixels = _decode(segmentation, image.height, image.width, mask_api)
            except (ValueError, TypeError) as exc:  # checked at construction; kept as a named error all the same
                raise ValueError(f"{what} must decode with pycocotools; got {type(exc).__name__} ({exc}) in "
                                 f"{self.source}. Fix or drop the annotation.") from None
            if is_crowd:
                crowd |= pixels
            else:
                semantic[pixels] = label  # file order: a later instance overwrites an earlier one
                labelled |= pixels
        semantic[crowd & ~labelled] = IGNORE_INDEX
        return semantic

    def _target(self, index: int) -> tuple[np.ndarray, str]:
        image = self._images[index]
        return self.semantic_mask(index), f"the annotations of {image.file_name!r} in {self.source}"

    def image_sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each image, as the annotation file states them."""
        return [(image.height, image.width) for image in self._images]


def _decode(segmentation: Any, height: int, width: int, mask_api: Any) -> np.ndarray:
    """``bool [H, W]`` pixels of one checked COCO segmentation, as ``COCO.annToMask`` decodes it
    (pycocotools ``coco.py`` ``annToRLE``: polygons merged, uncompressed RLE through ``frPyObjects``)."""
    if isinstance(segmentation, list):
        if not segmentation:
            return np.zeros((height, width), dtype=bool)
        rles = mask_api.frPyObjects(segmentation, height, width)
        return mask_api.decode(rles).any(axis=2)  # (H, W, polygons): union of the parts
    counts = segmentation["counts"]  # checked: its size is [height, width] (given as ints here)
    if isinstance(counts, list):
        rle = mask_api.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        rle = {"size": [height, width], "counts": counts.encode("ascii")}
    return mask_api.decode(rle).astype(bool)


def _read_coco_segmentation(path: Path, images_dir: Path) -> tuple[list[int], list[str], list[_CocoImage]]:
    """Category ids (ascending), their names and the checked images of a COCO instances file."""
    source = str(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations",
                                                                                       "categories")):
        raise ValueError(f"{source} must hold a JSON object with 'images', 'annotations' and 'categories' lists; got "
                         f"{type(data).__name__} without them. Pass a COCO instances file.")
    images, anns, cats = data["images"], data["annotations"], data["categories"]
    if not images:
        raise ValueError(f"a segmentation dataset must hold at least one image; got none in {source}. Add entries to "
                         "'images'.")
    image_ids = _column(images, "id", source, "images", kind="int")
    _unique_ids(image_ids, images, source, "images")
    category_ids = _column(cats, "id", source, "categories", kind="int")
    _unique_ids(category_ids, cats, source, "categories")
    if len(category_ids) > 254:
        raise ValueError(f"categories must number at most 254 (mask value 255 means ignore); got {len(category_ids)} "
                         f"in {source}. Merge or drop categories.")
    _unique_ids(_column(anns, "id", source, "annotations", kind="int"), anns, source, "annotations")
    image_id = _column(anns, "image_id", source, "annotations", kind="int")
    category_id = _column(anns, "category_id", source, "annotations", kind="int")
    iscrowd = _column(anns, "iscrowd", source, "annotations", kind="bool", default=0)
    _check_known(image_id, image_ids, anns, source, "annotations", "image_id", "the id of an entry of 'images'",
                 "Add the image to 'images' or drop the annotation.")
    _check_known(category_id, category_ids, anns, source, "annotations", "category_id",
                 "the id of an entry of 'categories'", "Add the category or drop the annotation.")
    sorted_ids = np.sort(category_ids)
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    labels = 1 + np.searchsorted(sorted_ids, category_id)  # background is 0

    file_names = [_coco_file_name(image, i, source) for i, image in enumerate(images)]
    _unique_names(file_names, source)
    paths = [str(images_dir / name) for name in file_names]
    _require_files(paths, source)
    sizes = [_coco_size(image, i, paths[i], source) for i, image in enumerate(images)]
    row_of = {int(v): i for i, v in enumerate(image_ids.tolist())}
    per_image: list[list[int]] = [[] for _ in images]
    for k, v in enumerate(image_id.tolist()):
        per_image[row_of[int(v)]].append(k)  # file order within an image: later annotations win

    records = []
    for i, rows in enumerate(per_image):
        height, width = sizes[i]
        where = [f"annotations{_record_name(anns, k)}['segmentation']" for k in rows]
        segmentations = []
        for k, what in zip(rows, where, strict=True):
            if "segmentation" not in anns[k]:
                raise ValueError(f"{what} must be present; got an annotation without it in {source}. Add its polygons "
                                 "or RLE, or drop the annotation (a box alone gives no mask).")
            segmentations.append(_checked_segmentation(anns[k]["segmentation"], height, width, what, source))
        records.append(_CocoImage(file_names[i], paths[i], height, width, [int(labels[k]) for k in rows],
                                  [bool(iscrowd[k]) for k in rows], segmentations, where))
    return sorted_ids.tolist(), [names[int(c)] for c in sorted_ids], records


def _checked_segmentation(segmentation: Any, height: int, width: int, what: str, source: str) -> Any:
    """``segmentation`` when it is polygons or an RLE pycocotools decodes safely at ``height x width``."""
    shown = repr(segmentation)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    if isinstance(segmentation, list):
        for polygon in segmentation:
            # Fewer than 6 numbers is no polygon (and pycocotools reads a first polygon of 4 as a box).
            ok = (isinstance(polygon, list) and len(polygon) >= 6 and len(polygon) % 2 == 0
                  and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in polygon))
            if not ok:
                raise ValueError(f"{what} must be a list of polygons [x1, y1, x2, y2, x3, y3, ...] (at least 3 points, "
                                 f"finite numbers); got {shown} in {source}. Fix the polygon or drop it.")
        return segmentation
    if not isinstance(segmentation, dict) or "counts" not in segmentation or "size" not in segmentation:
        raise ValueError(f"{what} must be polygons [[x1, y1, ...], ...] or an RLE {{'size': [h, w], 'counts': ...}}; "
                         f"got {shown} in {source}. Fix or drop the annotation.")
    if segmentation["size"] != [height, width]:
        raise ValueError(f"{what}['size'] must be the image's [height, width] = {[height, width]}; got "
                         f"{segmentation['size']!r} in {source}. Re-encode the mask at the image size.")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"{what}['counts'] must be non-negative integer run lengths; got {shown} in {source}. "
                             "Fix or drop the annotation.")
        runs = counts
    elif isinstance(counts, str):
        runs = _compressed_counts(counts, what, source)
    else:
        raise ValueError(f"{what}['counts'] must be a list of run lengths or a compressed RLE string; got "
                         f"{type(counts).__name__} in {source}. Fix or drop the annotation.")
    if sum(runs) != height * width:
        raise ValueError(f"{what}['counts'] must be run lengths covering the image, summing to height * width = "
                         f"{height * width}; got a sum of {sum(runs)} in {source}. Re-encode the mask.")
    return segmentation


def _compressed_counts(text: str, what: str, source: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (read only to check it before pycocotools decodes it).

    The format (pycocotools ``maskApi.c`` ``rleFrString``): each count is a little-endian sequence
    of 5-bit groups stored as characters ``48 + group``, bit 5 (``0x20``) meaning "another group
    follows", bit 4 of the last group the sign; from the third count on, the value is a difference
    to the count two places before.
    """
    def fail(reason: str) -> ValueError:
        return ValueError(f"{what}['counts'] must be a valid compressed RLE string; got {reason} in {source}. "
                          "Re-encode the mask with pycocotools.mask.encode.")

    counts: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                raise fail("a string that ends inside a count")
            group = ord(text[position]) - 48
            if not 0 <= group < 64:
                raise fail(f"the character {text[position]!r} at {position}")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # sign extension of the last group
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise fail(f"a negative run length at count {len(counts)}")
        counts.append(value)
    return counts


# --------------------------------------------------------------------------------------------
# Data specs and splits
# --------------------------------------------------------------------------------------------


def load_segmentation_data(spec: str, *, seed: int = 0, val_fraction: float = 0.1,
                           test_fraction: float = 0.2) -> SegmentationData:
    """Open a segmentation dataset named by a data spec, in three splits.

    Args:
        spec: ``"masks:PATH"``, ``"voc:PATH"`` or ``"coco:ANNOTATIONS.json[:IMAGES]"``.
        seed: seed of the random split (sources without their own split).
        val_fraction, test_fraction: shares of the random split, in ``[0, 1)`` with a sum below 1.

    Splits:

    * ``masks:`` with split folders: ``train/``, ``val/``, ``test/`` as given; a missing ``val/`` or
      ``test/`` is cut from ``train/`` at random (its fraction of the train items). Without split
      folders: a random split of all items (:func:`random_split_indices`).
    * ``voc:`` ``ImageSets/Segmentation/train.txt`` is train; ``val.txt`` is divided in file order,
      its first ``ceil(n / 2)`` ids are val and the rest test (deterministic; VOC's own test masks
      are not public). ``seed`` and the fractions are unused.
    * ``coco:`` a random split of the file's images.

    Returns:
        A :class:`SegmentationData` of :class:`~visionbench.data.splits.DatasetView` views (``ids`` kept).

    Raises:
        ValueError: an unknown spec, bad fractions, an empty training split, or any reader error.

    Example:
        >>> data = load_segmentation_data("voc:VOCdevkit")  # doctest: +SKIP
        >>> data.num_classes  # doctest: +SKIP
        21
    """
    _check_fractions(val_fraction, test_fraction)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}. Pass e.g. seed=0.")
    kind, _, rest = spec.partition(":")
    fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    if kind == "masks" and rest:
        splits = _mask_splits(MaskFolderSegmentation(rest), **fractions)
    elif kind == "voc" and rest:
        train, pool = VocSegmentation(rest, "train"), VocSegmentation(rest, "val")
        half = (len(pool) + 1) // 2
        splits = (DatasetView(train, range(len(train))), DatasetView(pool, range(half)),
                  DatasetView(pool, range(half, len(pool))))
    elif kind == "coco" and rest:
        dataset = CocoSemanticSegmentation(*coco_spec_paths(rest))
        splits = tuple(DatasetView(dataset, part)
                       for part in random_split_indices(len(dataset), **fractions))
    else:
        raise ValueError(f"segmentation data spec must be 'masks:PATH', 'voc:PATH' or 'coco:ANNOTATIONS.json[:IMAGES]'; "
                         f"got {spec!r}. Name the format and the path.")
    train, val, test = splits
    if not len(train):
        raise ValueError(f"training split must hold at least one image; got 0 from {spec!r}. Add images or lower "
                         f"val_fraction/test_fraction (now {val_fraction}/{test_fraction}).")
    sizes = _distinct_sizes(splits)
    return SegmentationData(train=train, val=val, test=test, classes=list(train.classes), in_channels=3,
                            image_size=sizes.pop() if len(sizes) == 1 else None, name=spec, task="segment")


def _distinct_sizes(splits: Sequence[DatasetView]) -> set[tuple[int, int]]:
    """The distinct ``(H, W)`` of the items of ``splits`` (each dataset's headers read once)."""
    per_dataset: dict[int, list[tuple[int, int]]] = {}
    sizes = set()
    for part in splits:
        dataset = part.dataset
        if id(dataset) not in per_dataset:
            per_dataset[id(dataset)] = dataset.image_sizes()
        sizes.update(per_dataset[id(dataset)][i] for i in part.indices)
    return sizes


def _mask_splits(dataset: MaskFolderSegmentation, *, val_fraction: float, test_fraction: float,
                 seed: int) -> tuple[DatasetView, DatasetView, DatasetView]:
    """Train/val/test views of a masks folder: the split folders, completed by a random cut of train."""
    if not dataset.split_indices:
        parts = random_split_indices(len(dataset), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        return tuple(DatasetView(dataset, part) for part in parts)  # type: ignore[return-value]
    given = dataset.split_indices
    pool = given["train"]
    train, val, test = random_split_indices(len(pool), val_fraction=0.0 if "val" in given else val_fraction,
                                            test_fraction=0.0 if "test" in given else test_fraction, seed=seed)
    chosen = {"train": [pool[i] for i in train], "val": given.get("val", [pool[i] for i in val]),
              "test": given.get("test", [pool[i] for i in test])}
    return tuple(DatasetView(dataset, chosen[s]) for s in SPLITS)  # type: ignore[return-value]


__all__ = [
    "IGNORE_INDEX", "VOC_SEGMENTATION_CLASSES", "CocoSemanticSegmentation", "MaskFolderSegmentation",
    "SegmentationData", "VocSegmentation", "load_segmentation_data", "random_split_indices",
]
