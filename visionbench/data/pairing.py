"""Pairing the files of two folders by relative path, for every command that compares a folder of
references with a folder of outputs (``quality``, ``evaluate --task segment``)."""

from __future__ import annotations

from pathlib import Path


def pair_by_relative_path(
    left: Path, right: Path, suffixes: set[str], *, ignore_suffix: bool = False
) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """Files of ``left`` and ``right`` (recursively, by lower-case suffix) with the same relative path.

    Args:
        left, right: the two folders.
        suffixes: file suffixes to consider (``{".png", …}``).
        ignore_suffix: pair ``a/x.png`` with ``a/x.bmp`` (the key is the path without its suffix).

    Returns:
        ``(name, left file, right file)`` sorted by name, then the names found only in ``left``
        and only in ``right``.
    """

    def files(root: Path) -> dict[str, Path]:
        found = {}
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix.lower() in suffixes:
                relative = path.relative_to(root)
                found[(relative.with_suffix("") if ignore_suffix else relative).as_posix()] = path
        return found

    a, b = files(left), files(right)
    common = sorted(set(a) & set(b))
    return [(name, a[name], b[name]) for name in common], sorted(set(a) - set(b)), sorted(set(b) - set(a))
