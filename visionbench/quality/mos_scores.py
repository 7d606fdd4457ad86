"""The human scores of ``visionbench quality REF DIST --mos scores.csv``: reading the scores file,
matching its rows to the image pairs, and adding the agreement (:mod:`visionbench.quality.mos`)
to a quality result.

**The scores file** is a CSV file (UTF-8, a byte-order mark accepted, comma-separated, one header
line; header names are case-insensitive, other columns are ignored):

- ``dist`` (or ``file``): the distorted image, as a path relative to DIST (``/`` or ``\\``);
- ``score`` (or ``mos``, or ``dmos``): its score, one per file (average the ratings first);
- ``ref`` (optional): its reference, as a path relative to REF. Without it the images pair by
  relative path as in every folder comparison; with it each row names its own pair, so one
  reference serves many distortions (the layout of LIVE, CSIQ or TID);
- ``type`` (optional): the distortion type, for a per-type breakdown.

A ``dmos`` column, or ``dmos=True`` (``--dmos``), says a lower score means better quality.

**Scores and pairs must match**, never silently: a scored file that does not exist is an error,
and so is a scored file without a reference of the same relative path, or a pair of REF and DIST
without a score, unless ``partial`` (``--mos-partial``) is given: then they are left out of the
agreement (unscored pairs are still measured) and listed in ``metrics.json``'s ``mos`` section and
its warnings. With a ``ref`` column, images of DIST that no row names are not measured, and a
warning says how many. Every error names the file, the line and the fix.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from visionbench.quality.mos import DEFAULT_RESAMPLES, MIN_ITEMS, agreement_section

DIST_COLUMNS = ("dist", "file")
SCORE_COLUMNS = ("score", "mos", "dmos")
SHOWN = 5  # names listed in an error or a warning


@dataclass(frozen=True)
class ScoreRow:
    """One row of the scores file: its line number, the distorted file (relative to DIST,
    ``/``-separated), the score, and the reference (relative to REF) and type when given."""

    line: int
    dist: str
    score: float
    ref: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Scores:
    """A scores file's rows, the name of its score column and whether lower scores are better."""

    path: Path
    rows: list[ScoreRow]
    column: str
    dmos: bool
    has_ref: bool
    has_type: bool


def _error(path: Path, line: int | None, message: str) -> ValueError:
    where = f"{path}, line {line}" if line else str(path)
    return ValueError(f"scores file {where}: {message}")


def read_scores(path: str | Path, *, dmos: bool = False) -> Scores:
    """Read and check a scores file (see the module docstring).

    Args:
        path: the CSV file.
        dmos: lower scores mean better quality (also implied by a ``dmos`` column).

    Raises:
        ValueError: naming the file, the line and the fix, for an unreadable file, a missing or
            ambiguous column, an empty, non-numeric or non-finite score, a path outside DIST or
            REF, a file scored twice, or fewer than 3 rows.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            records = []
            for cells in reader:
                records.append((reader.line_num, cells))  # line_num: the line the record ends on
    except FileNotFoundError:
        raise ValueError(f"scores file {path} does not exist; give the CSV file of the scores.") from None
    except UnicodeDecodeError as error:
        raise _error(path, None, f"is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8 "
                                 "(\"CSV UTF-8\" in a spreadsheet).") from None
    except csv.Error as error:
        raise _error(path, None, f"is not a readable CSV file ({error}).") from None
    records = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    if not records:
        raise _error(path, None, "is empty; write a header line (dist,score) and one row per distorted file.")
    header_line, header = records[0]
    columns = _columns(path, header_line, [cell.strip().lower() for cell in header])
    score_name = header[columns["score"]].strip().lower()
    if dmos and score_name == "mos":
        raise _error(path, header_line, "the score column is named 'mos' but dmos was asked for (--dmos, lower is "
                                        "better); rename the column to 'dmos' or 'score', or drop --dmos.")
    rows = [_row(path, line, cells, columns, len(header)) for line, cells in records[1:]]
    _check_unique(path, rows)
    if len(rows) < MIN_ITEMS:
        raise _error(path, None, f"has {len(rows)} score row(s); correlations need at least {MIN_ITEMS}.")
    return Scores(path, rows, score_name, dmos or score_name == "dmos", "ref" in columns, "type" in columns)


def _columns(path: Path, line: int, names: list[str]) -> dict[str, int]:
    """The index of the ``dist``, ``score`` and (when present) ``ref`` and ``type`` columns."""
    found = {}
    for role, choices in (("dist", DIST_COLUMNS), ("score", SCORE_COLUMNS), ("ref", ("ref",)), ("type", ("type",))):
        present = [name for name in choices if name in names]
        if len(present) > 1 or any(names.count(name) > 1 for name in present):
            raise _error(path, line, f"the header has more than one {role} column ({', '.join(present)}); keep one.")
        if present:
            found[role] = names.index(present[0])
    missing = [role for role in ("dist", "score") if role not in found]
    if missing:
        hint = " (the file must be comma-separated)" if any(";" in n or "\t" in n for n in names) else ""
        raise _error(path, line, f"the header {','.join(names)!r} has no {' or '.join(missing)} column{hint}; name "
                                 "the columns dist (or file), score (or mos, dmos), and optionally ref and type.")
    return found


def _row(path: Path, line: int, cells: list[str], columns: dict[str, int], width: int) -> ScoreRow:
    """One checked row."""
    if len(cells) != width:
        raise _error(path, line, f"has {len(cells)} field(s) but the header has {width}; quote fields that contain "
                                 "commas.")
    text = cells[columns["score"]].strip()
    try:
        score = float(text)
    except ValueError:
        raise _error(path, line, f"score {text!r} is not a number; write it with a decimal point (e.g. 3.5).") from None
    if not math.isfinite(score):
        raise _error(path, line, f"score {text!r} is not finite; give a number or remove the row.")
    ref = _relative(path, line, cells[columns["ref"]], "ref", "REF") if "ref" in columns else None
    kind = cells[columns["type"]].strip() if "type" in columns else None
    if kind == "":
        raise _error(path, line, "the type is empty; give every row a type, or remove the type column.")
    return ScoreRow(line, _relative(path, line, cells[columns["dist"]], "dist", "DIST"), score, ref, kind)


def _relative(path: Path, line: int, text: str, column: str, folder: str) -> str:
    """A path cell as a normalised relative path (``/``-separated, no ``.`` parts)."""
    name = text.strip().replace("\\", "/")
    parts = [part for part in PurePosixPath(name).parts if part != "."]
    if not name:
        raise _error(path, line, f"the {column} path is empty; give the file's path relative to {folder}.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise _error(path, line, f"{column} path {text.strip()!r} is not inside {folder}; write it relative to "
                                 f"{folder} (e.g. blur/image_1.png).")
    return "/".join(parts)


def _check_unique(path: Path, rows: list[ScoreRow]) -> None:
    """Each distorted file scored once."""
    seen: dict[str, int] = {}
    for row in rows:
        if row.dist in seen:
            raise _error(path, row.line, f"{row.dist!r} is scored again (first on line {seen[row.dist]}); give one "
                                         "score per file (average its ratings first).")
        seen[row.dist] = row.line


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names[:SHOWN]) + (f", … ({len(names)} in all)" if len(names) > SHOWN else "")


class MosPlan:
    """The scores matched to the pairs of REF and DIST, before anything is measured.

    ``reference`` is what the measurement takes as REF: the REF folder itself, or, when the
    scores name each pair's reference, a temporary folder of links laid out like DIST (link
    ``d`` points at the reference of ``d``), so pairing by relative path measures exactly the
    listed pairs. :meth:`apply` adds the agreement to the result and removes that folder.
    """

    def __init__(self, scores: Scores, ref: Path, dist: Path, *, partial: bool, resamples: int, seed: int) -> None:
        self.scores, self.ref, self.dist = scores, ref, dist
        self.partial, self.resamples, self.seed = partial, resamples, seed
        self.warnings: list[str] = []
        self.unscored: list[str] = []  # pairs measured without a score (partial only)
        self.unpaired_scores: list[str] = []  # scored files without a reference (partial only)
        self.unlisted: list[str] = []  # images of DIST that no row names (with a ref column; not measured)
        self._links: tempfile.TemporaryDirectory[str] | None = None
        self.reference = ref

    def link_references(self) -> None:
        """Lay out the temporary REF folder of a scores file with a ``ref`` column."""
        self._links = tempfile.TemporaryDirectory(prefix="visionbench-mos-")
        root = Path(self._links.name)
        for row in self.scores.rows:
            link = root / row.dist
            link.parent.mkdir(parents=True, exist_ok=True)
            _link(self.ref / str(row.ref), link)
        self.reference = root

    def real_paths(self, message: str) -> str:
        """``message`` (e.g. a measurement error) with the temporary links' paths replaced by the
        reference files they stand for, so the error names the user's files."""
        if self._links is None:
            return message
        root = Path(self._links.name)
        for row in sorted(self.scores.rows, key=lambda r: -len(r.dist)):  # longest first: no partial replacement
            message = message.replace(str(root / row.dist), str(self.ref / str(row.ref)))
        return message

    def close(self) -> None:
        """Remove the temporary REF folder (if any)."""
        if self._links is not None:
            self._links.cleanup()
            self._links = None

    def apply(self, result: Any) -> Any:
        """``result`` (a :class:`~visionbench.quality.assessment.QualityResult`) with the agreement
        under ``pooled["mos"]``, a ``score`` (and ``type``) column in its rows, the scores file in
        its settings, and, with a ``ref`` column, the unlisted images of DIST as its unpaired."""
        from visionbench.quality.catalog import QUALITY_METRICS

        self.close()
        by_name = {row.dist: row for row in self.scores.rows}
        metrics = list(result.settings["metrics"])
        scored = [(row, by_name[row["item"]]) for row in result.rows if row["item"] in by_name]
        values = {m: [float(item[m]) for item, _ in scored] for m in metrics}
        section = {"scores_file": str(self.scores.path), "scale": "dmos" if self.scores.dmos else "mos",
                   "higher_score_is_better": not self.scores.dmos, "num_scored": len(scored),
                   "resamples": self.resamples, "seed": self.seed, "level": 0.95}
        section.update(agreement_section(
            values, [s.score for _, s in scored], higher_is_better={m: QUALITY_METRICS[m].higher_is_better for m in metrics},
            dmos=self.scores.dmos, types=[s.type for _, s in scored] if self.scores.has_type else None,
            resamples=self.resamples, seed=self.seed))
        if self.partial:
            section["left_out"] = {"unscored_pairs": self.unscored, "unpaired_scores": self.unpaired_scores}
        if self.unlisted:
            section["unlisted_images"] = self.unlisted
        self._non_finite_warnings(section)
        rows = [dict(row, score=by_name[row["item"]].score if row["item"] in by_name else None,
                     **({"type": by_name[row["item"]].type if row["item"] in by_name else None}
                        if self.scores.has_type else {})) for row in result.rows]
        settings = dict(result.settings, mos=str(self.scores.path), dmos=self.scores.dmos)
        pooled = dict(result.pooled, settings=settings, mos=section)
        unpaired = {"reference_only": [], "distorted_only": []} if self.scores.has_ref else result.unpaired
        return dataclasses.replace(result, rows=rows, pooled=pooled, settings=settings, unpaired=unpaired)

    def _non_finite_warnings(self, section: dict[str, Any]) -> None:
        for metric, entry in section["metrics"].items():
            if entry.get("non_finite_items"):
                self.warnings.append(f"{entry['non_finite_items']} scored pair(s) have a non-finite {metric} (identical "
                                     f"images give PSNR = inf) and are left out of its agreement; cap PSNR with "
                                     "--psnr-cap 100 to keep them.")


def _link(target: Path, link: Path) -> None:
    """``link`` → ``target``: a symbolic link, else a hard link, else a copy (Windows without the
    privilege to make links)."""
    for make in (os.symlink, os.link):
        try:
            make(target.resolve(), link)
            return
        except OSError:
            continue
    shutil.copyfile(target, link)


def prepare_mos(scores_file: str | Path, ref: str | Path, dist: str | Path, *, dmos: bool = False,
                partial: bool = False, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> MosPlan:
    """Read the scores and match them to REF and DIST (two folders) before anything is measured.

    Args:
        scores_file: the CSV of scores (see the module docstring).
        ref, dist: the reference and distorted folders.
        dmos: lower scores mean better quality.
        partial: allow pairs without a score and scores without a pair (left out, listed).
        resamples, seed: the bootstrap resamples of the intervals.

    Raises:
        ValueError: the scores file is malformed, REF or DIST is not a folder, a scored file or
            its reference does not exist, or (without ``partial``) scores and pairs differ.
    """
    from visionbench.quality.assessment import IMAGE_SUFFIXES

    ref, dist = Path(ref), Path(dist)
    if not (ref.is_dir() and dist.is_dir()):
        raise ValueError(f"--mos compares two folders of images; got {str(ref)!r} and {str(dist)!r}. Put the "
                         "references and the distorted images in two folders.")
    scores = read_scores(scores_file, dmos=dmos)
    plan = MosPlan(scores, ref, dist, partial=partial, resamples=resamples, seed=seed)
    _check_files(scores, dist, "dist", "DIST", IMAGE_SUFFIXES)
    if scores.has_ref:
        _check_files(scores, ref, "ref", "REF", IMAGE_SUFFIXES)
        listed = {row.dist for row in scores.rows}
        plan.unlisted = [name for name in _images(dist, IMAGE_SUFFIXES) if name not in listed]
        if plan.unlisted:
            plan.warnings.append(f"{len(plan.unlisted)} image(s) of {dist} are not in {scores.path} and are not "
                                 f"measured ({_listed(plan.unlisted)}); add their scores to include them.")
        plan.link_references()
        return plan
    _match_by_relative_path(plan, IMAGE_SUFFIXES)
    return plan


def _images(folder: Path, suffixes: set[str]) -> list[str]:
    """The images under ``folder``, as sorted relative ``/``-paths."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in suffixes)


def _check_files(scores: Scores, folder: Path, column: str, name: str, suffixes: set[str]) -> None:
    """Every file named in ``column`` is an image that exists under ``folder``."""
    bad = [row for row in scores.rows if Path(getattr(row, column)).suffix.lower() not in suffixes]
    if bad:
        raise _error(scores.path, bad[0].line, f"{column} {getattr(bad[0], column)!r} is not an image file name "
                                               f"({', '.join(sorted(suffixes))}); name the image file itself.")
    missing = [row for row in scores.rows if not (folder / getattr(row, column)).is_file()]
    if missing:
        lines = ", ".join(f"line {row.line}: {getattr(row, column)!r}" for row in missing[:SHOWN])
        more = f", … ({len(missing)} in all)" if len(missing) > SHOWN else ""
        raise _error(scores.path, missing[0].line, f"{len(missing)} {column} file(s) do not exist in {name} "
                                                   f"{folder} ({lines}{more}); fix the paths (relative to {name}) or "
                                                   "remove the rows.")


def _match_by_relative_path(plan: MosPlan, suffixes: set[str]) -> None:
    """Scores against the pairs by relative path: differences are errors unless ``partial``."""
    from visionbench.data.pairing import pair_by_relative_path

    pairs, _, _ = pair_by_relative_path(plan.ref, plan.dist, suffixes)
    paired = {name for name, _, _ in pairs}
    scored = {row.dist: row for row in plan.scores.rows}
    plan.unpaired_scores = sorted(name for name in scored if name not in paired)
    plan.unscored = sorted(name for name in paired if name not in scored)
    problems = []
    if plan.unpaired_scores:
        lines = ", ".join(f"line {scored[n].line}: {n!r}" for n in plan.unpaired_scores[:SHOWN])
        problems.append(f"{len(plan.unpaired_scores)} scored file(s) have no reference of the same relative path in "
                        f"{plan.ref} ({lines}{', …' if len(plan.unpaired_scores) > SHOWN else ''})")
    if plan.unscored:
        problems.append(f"{len(plan.unscored)} pair(s) of {plan.ref} and {plan.dist} have no score in "
                        f"{plan.scores.path} ({_listed(plan.unscored)})")
    if problems and not plan.partial:
        raise ValueError("; ".join(problems) + ". Fix the names, add a ref column naming each file's reference, or "
                         "pass --mos-partial (mos_partial=True) to leave them out of the agreement.")
    plan.warnings.extend(f"{problem}; left out of the agreement (--mos-partial)." for problem in problems)
    if len(plan.scores.rows) - len(plan.unpaired_scores) < MIN_ITEMS:
        raise ValueError(f"only {len(plan.scores.rows) - len(plan.unpaired_scores)} scored file(s) of "
                         f"{plan.scores.path} have a reference in {plan.ref}; correlations need at least {MIN_ITEMS}.")
