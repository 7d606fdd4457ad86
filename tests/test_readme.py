"""The README stands alone in a clone: every file it points to is inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _referenced_files(text: str) -> set[str]:
    """Markdown link targets and backticked paths of documents (``x/y.md``, ``../z.md``)."""
    links = {target for target in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in target}
    documents = set(re.findall(r"`([^`\s]+\.(?:md|txt|yaml|yml|toml))`", text))
    return {target.split("#")[0] for target in links | documents if target.split("#")[0]}


def test_every_file_the_readme_names_exists_in_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in _referenced_files(text):
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT), f"README.md points outside the repository: {target}"
        assert path.exists() or "/" not in target, f"README.md points to a missing file: {target}"
