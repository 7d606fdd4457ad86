"""Every reader over its hostile corpus: a clear ValueError naming the file (and record), or a
correct result; and nothing written outside the case's folder (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.hostile import corpus, corpus_binary, corpus_layouts
from tests.hostile.corpus import Case
from visionbench.config import resolve
from visionbench.data.cifar import read_cifar_batch
from visionbench.data.detection_formats import VocDetection, YoloDetection, read_detection
from visionbench.data.masks import read_mask
from visionbench.data.mnist import read_idx
from visionbench.data.predictions import read_predictions_file
from visionbench.data.segmentation_formats import MaskFolderSegmentation
from visionbench.metrics.detection import load_coco_ground_truth, load_coco_results
from visionbench.sweep.space import read_space

REPO = Path(__file__).resolve().parents[2]


def params(cases: list[Case]) -> list[Any]:
    """The cases as pytest params; a case with a ``bug`` is a strict xfail (its expectation kept)."""
    ids = [case.id for case in cases]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    return [pytest.param(case, id=case.id, marks=pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}"))
            if case.bug else pytest.param(case, id=case.id) for case in cases]


def _snapshot(tmp_path: Path, work: Path) -> dict[str, Any]:
    """Every file and folder under ``tmp_path`` but ``work`` (size, mtime), and the names beside ``tmp_path``."""
    tree = {}
    for path in sorted(tmp_path.rglob("*")):
        if path == work or work in path.parents:
            continue
        stat = path.stat()
        tree[str(path.relative_to(tmp_path))] = (path.is_dir(), stat.st_size, stat.st_mtime_ns)
    return {"tree": tree, "beside": sorted(os.listdir(tmp_path.parent))}


@contextmanager
def outside_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The case's folder ``tmp_path/work``; the working directory and a sentinel file lie beside it,
    and nothing outside ``work`` may change while the reader runs."""
    work, cwd = tmp_path / "work", tmp_path / "cwd"
    work.mkdir()
    cwd.mkdir()
    (tmp_path / "sentinel.txt").write_text("untouched")
    monkeypatch.chdir(cwd)  # a reader writing to a relative path would write here
    before = _snapshot(tmp_path, work)
    yield work
    assert _snapshot(tmp_path, work) == before
    assert (tmp_path / "sentinel.txt").read_text() == "untouched"


def check_case(case: Case, read: Callable[[Any], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the case's input, read it, and check the expected outcome."""
    with outside_unchanged(tmp_path, monkeypatch) as work:
        argument = case.build(work)
        if case.expect == "ok":
            result = read(argument)
            assert case.check is not None and case.check(result), f"{case.id}: parsed, but not as expected"
            return
        with pytest.raises(ValueError) as info:  # any other exception type fails the test
            read(argument)
    message = str(info.value)
    name = case.file or Path(str(argument)).name
    assert name in message, f"the message must name {name!r}: {message}"
    for marker in case.where:
        assert marker in message, f"the message must contain {marker!r}: {message}"


def test_the_corpus_is_large_enough() -> None:
    counts = {name: len(cases) for name, cases in ALL.items()}
    assert sum(counts.values()) >= 300, counts
    assert all(sum(c.expect == "ok" for c in cases) >= 1 for cases in ALL.values())


@pytest.mark.parametrize("case", params(corpus.prediction_text_cases()))
def test_predictions_text(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_predictions_file, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_binary.npz_cases()))
def test_predictions_npz(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_predictions_file, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus.coco_ground_truth_cases()))
def test_coco_ground_truth(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, load_coco_ground_truth, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus.coco_results_cases()))
def test_coco_results(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ground_truth = load_coco_ground_truth(corpus.coco_data())
    check_case(case, lambda path: load_coco_results(path, ground_truth), tmp_path, monkeypatch)


@pytest.mark.filterwarnings("ignore:.*were clamped")
@pytest.mark.parametrize("case", params(corpus.coco_dataset_cases()))
def test_coco_dataset(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_detection, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_layouts.voc_cases()))
def test_voc(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, lambda root: VocDetection(root, "trainval"), tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_layouts.yolo_label_cases() + corpus_layouts.yolo_yaml_cases()))
def test_yolo(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, lambda path: YoloDetection(path, "train"), tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_binary.idx_cases()))
def test_idx(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_idx, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_binary.cifar_cases()))
def test_cifar(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_cifar_batch, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_binary.mask_cases()))
def test_mask(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, read_mask, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_binary.mask_folder_cases()))
def test_mask_folder(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, _read_mask_folder, tmp_path, monkeypatch)


def _read_mask_folder(root: Path) -> MaskFolderSegmentation:
    """The dataset with every item read: masks are checked against the classes when an item is read."""
    data = MaskFolderSegmentation(root)
    for index in range(len(data)):
        data[index]
    return data


@pytest.mark.parametrize("case", params(corpus_layouts.config_cases()))
def test_config(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, resolve, tmp_path, monkeypatch)


@pytest.mark.parametrize("case", params(corpus_layouts.space_cases()))
def test_space(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check_case(case, lambda path: read_space(path, "classify"), tmp_path, monkeypatch)


ALL = {
    "predictions csv/json": corpus.prediction_text_cases(), "predictions npz": corpus_binary.npz_cases(),
    "coco ground truth": corpus.coco_ground_truth_cases(), "coco results": corpus.coco_results_cases(),
    "coco dataset": corpus.coco_dataset_cases(), "voc": corpus_layouts.voc_cases(),
    "yolo": corpus_layouts.yolo_label_cases() + corpus_layouts.yolo_yaml_cases(), "idx": corpus_binary.idx_cases(),
    "cifar": corpus_binary.cifar_cases(), "mask": corpus_binary.mask_cases(),
    "mask folder": corpus_binary.mask_folder_cases(), "config": corpus_layouts.config_cases(),
    "space": corpus_layouts.space_cases(),
}


# Torch reserves gigabytes of address space at import, so the capped child loads only the two
# torch-free modules (by file, not through the visionbench package) and reads the bombs with them.
_CAPPED_CHILD = textwrap.dedent("""
    import importlib.util, resource, sys
    from pathlib import Path
    cap = 768 << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    def load(name):
        spec = importlib.util.spec_from_file_location(name.replace("/", "_"), Path(sys.argv[1]) / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    masks, strict_yaml = load("visionbench/data/masks"), load("visionbench/strict_yaml")
    outcomes = []
    for read, path in ((masks.read_mask, sys.argv[2]), (lambda p: strict_yaml.read_yaml_file(Path(p), "the file"),
                                                         sys.argv[3])):
        try:
            read(Path(path))
            outcomes.append("accepted")
        except ValueError as error:
            outcomes.append("ValueError" if Path(path).name in str(error) else "unnamed")
    print(" ".join(outcomes))
""")


def test_bombs_are_refused_under_a_memory_cap(tmp_path: Path) -> None:
    """A PNG declaring 10^10 pixels and a YAML alias bomb (9 levels of 10 aliases) are refused in a
    child whose address space is capped at 768 MiB: a reader that expanded them would die of MemoryError."""
    mask = tmp_path / "bomb.png"
    mask.write_bytes(corpus_binary.png_declaring(100_000, 100_000))
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text("a0: &a0 [lol]\n" + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n"
                                                  for i in range(1, 10)))
    done = subprocess.run([sys.executable, "-c", _CAPPED_CHILD, str(REPO), str(mask), str(laughs)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ValueError", "ValueError"]
