"""Paths built from file content stay inside their folder.

A file name read from a dataset (a COCO ``file_name``, a VOC ``<filename>`` or split id, a sample id)
is untrusted: ``"../../etc/hostname"`` or ``"/etc/hostname"`` joined to an output folder would write
(or, with ``--images symlink``, delete and replace) a file anywhere. :func:`inside` joins such a name
to its root only when the result stays in the root, symbolic links included.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


def inside(root: Path, name: str, what: str) -> Path:
    """``root / name``, refused unless it stays inside ``root``.

    Args:
        root: the folder written to (it may not exist yet).
        name: a relative path from file content, with ``/`` separators (``"train/cat/001.jpg"``).
        what: the record the name comes from, for the message (``"image 17 of instances.json"``).

    Raises:
        ValueError: an empty, absolute (POSIX or Windows) or ``..`` name, or one that leaves ``root``
            through a symbolic link already there; the message names the record and what to do.

    Example:
        >>> inside(Path("out"), "a/b.png", "image 1").as_posix()
        'out/a/b.png'
    """
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if (not name or PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute()
            or PureWindowsPath(name).drive or ".." in parts):
        raise ValueError(f"{what}: the file name must be a relative path inside the dataset; got {name!r} (absolute, "
                         "empty or with '..'). Fix the annotation: visionbench writes nothing outside its output folder.")
    path = root.joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise ValueError(f"{what}: the file name {name!r} leads outside {str(root)!r} through a symbolic link "
                         f"(to {real!r}). Remove the link or choose another output folder.")
    return path


__all__ = ["inside"]
