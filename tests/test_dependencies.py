"""What a user pays for: the core needs no scikit-learn, SciPy, PyAV, TensorBoard or pycocotools;
each optional feature names the extra that installs it; listing models and evaluating a predictions
file import no torchvision.

Missing packages are simulated with ``sys.modules[name] = None`` (which makes ``import name`` raise
``ModuleNotFoundError``), so these tests run with every extra installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from visionbench import cli
from visionbench._extras import EXTRAS, MissingExtraError, import_optional

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0] for requirement in requirements}


# --------------------------------------------------------------------------------------------
# pyproject.toml
# --------------------------------------------------------------------------------------------


def test_heavy_packages_are_extras_not_dependencies() -> None:
    project = _pyproject()["project"]
    core = _names(project["dependencies"])
    assert not core & {"scikit-learn", "scipy", "av", "tensorboard", "pycocotools"}, core
    extras = project["optional-dependencies"]
    for extra, requirement in EXTRAS.items():  # the table the error messages use is pyproject's
        assert extras[extra] == ([requirement] if isinstance(requirement, str) else list(requirement))
    assert extras["all"] == [f"visionbench[{','.join(EXTRAS)}]"]
    assert "visionbench[all]" in extras["dev"]  # `make test` / `make demo` install every feature
    assert {"scikit-learn", "scipy", "pycocotools"} <= _names(extras["dev"])  # the tests' oracles


def test_the_embedded_digits_ship_in_the_package() -> None:
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]["visionbench"]
    for name in ("data/digits.csv.gz", "data/DIGITS_NOTICE.md"):
        assert name in package_data and (ROOT / "visionbench" / name).is_file()


def test_makefile_installs_the_dev_extra() -> None:
    assert 'pip install --quiet -e ".[dev]"' in (ROOT / "Makefile").read_text()


def test_nothing_in_the_package_imports_scikit_learn_or_scipy() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+(sklearn|scipy)\b", re.MULTILINE)
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "visionbench").rglob("*.py")
                 if pattern.search(path.read_text())]
    assert not offenders


# --------------------------------------------------------------------------------------------
# Missing extras
# --------------------------------------------------------------------------------------------


def test_import_optional_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingExtraError, match=r"reading x needs the optional package 'av'.*"
                                                r"pip install 'visionbench\[video\]'"):
        import_optional("av", extra="video", purpose="reading x")
    assert import_optional("json", extra="video", purpose="reading x") is json


def test_a_module_missing_inside_an_installed_package_is_not_a_missing_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        import_optional("json.no_such_module", extra="video", purpose="reading x")
    assert not isinstance(info.value, MissingExtraError)


def test_video_quality_without_pyav_names_the_video_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ref.mp4", "dist.mp4"):
        (tmp_path / name).write_bytes(b"not decoded: PyAV is missing")
    monkeypatch.setitem(sys.modules, "av", None)
    from visionbench.quality.video import probe_video

    with pytest.raises(MissingExtraError, match=r"ref\.mp4.*pip install 'visionbench\[video\]'"):
        probe_video(tmp_path / "ref.mp4")
    code = cli.main(["quality", str(tmp_path / "ref.mp4"), str(tmp_path / "dist.mp4"), "--quiet",
                     "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "visionbench quality: error:" in err and "pip install 'visionbench[video]'" in err
    assert "Traceback" not in err


def test_coco_segmentation_without_pycocotools_names_the_coco_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "gt.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    code = cli.main(["train", "--task", "segment", "--data", f"coco:{tmp_path / 'gt.json'}:{tmp_path / 'images'}",
                     "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 1 and "pip install 'visionbench[coco]'" in err and "Traceback" not in err


def test_training_without_tensorboard_runs_and_says_once_how_to_get_event_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from visionbench import api

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = api.train(data="digits", model="mlp", epochs=1, out=tmp_path / "run", quiet=True)
    assert result.metrics["num_samples"] == 359 and (result.run_dir / "checkpoints" / "best.safetensors").is_file()
    assert not (result.run_dir / "tensorboard").exists()
    log = (result.run_dir / "log.txt").read_text()
    assert log.count("TensorBoard is not installed") == 1
    assert "pip install 'visionbench[tensorboard]'" in log


# --------------------------------------------------------------------------------------------
# Listing models and evaluating files without torchvision
# --------------------------------------------------------------------------------------------

_NO_TORCHVISION = """
import sys
from pathlib import Path
import visionbench.models
from visionbench.models import MODELS, model_input_size
assert len(MODELS.names()) >= 20 and model_input_size("resnet18", (8, 8)) == (32, 32)
from visionbench import cli
assert cli.main(["list", "models"]) == 0
print("after list:", sorted(m for m in ("torch", "torchvision") if m in sys.modules))
out = Path(sys.argv[1])
(out / "p.csv").write_text("id,label,prob_0,prob_1\\na,0,0.8,0.2\\nb,1,0.3,0.7\\nc,1,0.6,0.4\\n")
assert cli.main(["evaluate", "--pred", str(out / "p.csv"), "--quiet", "--out", str(out / "run")]) == 0
assert (out / "run" / "report.html").is_file()
import visionbench.engine.file_evaluation, visionbench.report.run_report, visionbench.report.compare_report
print("after evaluate:", sorted(m for m in ("torch", "torchvision") if m in sys.modules))
"""


def test_listing_models_and_evaluating_a_predictions_file_import_no_torchvision(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", _NO_TORCHVISION, str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "after list: []" in run.stdout  # names and metadata need neither torch nor torchvision
    assert "after evaluate: ['torch']" in run.stdout  # metrics need torch; reports need no torchvision
