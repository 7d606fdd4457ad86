"""``--threads auto|N``: the auto rule, the config field, and that jobs apply it (issue 11)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Dataset

import visionbench
from visionbench.cli import main
from visionbench.config import ClassifyConfig, DetectConfig, SegmentConfig, resolve, save_yaml
from visionbench.engine import rundir
from visionbench.engine.loaders import eval_loader
from visionbench.engine.runtime import Runtime
from visionbench.engine.threads import (
    apply_threads,
    auto_threads,
    describe_threads,
    parse_threads,
    resolve_threads,
    restore_threads,
    torch_threads,
)

# ----------------------------------------------------------------------------------- the auto rule


@pytest.mark.parametrize(
    "cores, env, distributed, expected",
    [
        (1, {}, False, 1),
        (2, {}, False, 1),  # the project's machine: 1 thread (benchmarks/RESULTS.md, "threads")
        (3, {}, False, 1),
        (4, {}, False, 2),
        (12, {}, False, 6),  # measured best quiet and loaded on a 12-CPU slice
        (16, {}, False, 8),
        (128, {}, False, 8),
        (2, {"OMP_NUM_THREADS": "2"}, False, 2),  # an explicit environment wins
        (16, {"OMP_NUM_THREADS": "3"}, False, 3),
        (16, {"OMP_NUM_THREADS": "4,2"}, False, 4),  # nested OpenMP levels: the first one
        (16, {"OMP_NUM_THREADS": "1"}, True, 1),  # what torchrun sets per process
        (16, {"OMP_NUM_THREADS": "zero"}, False, 8),  # unreadable: ignored
        (16, {"OMP_NUM_THREADS": "0"}, False, 8),
        (16, {"LOCAL_WORLD_SIZE": "2"}, True, 4),  # two processes share the 16 cores
        (16, {}, True, 1),  # several processes, their number unknown: one each
    ],
)
def test_auto_threads(cores, env, distributed, expected):
    assert auto_threads(cores, env, distributed) == expected


def test_resolve_threads_reads_world_size_from_the_environment():
    assert resolve_threads("auto", cores=16, env={}) == 8
    assert resolve_threads("auto", cores=16, env={"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}) == 4
    assert resolve_threads(3, cores=16, env={"OMP_NUM_THREADS": "1"}) == 3  # a count is taken as given


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (1, 1), (12, 12), ("4", 4), (" 2 ", 2)])
def test_parse_threads_accepts_auto_and_positive_counts(value, expected):
    assert parse_threads(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "four", "", True, 2.5, None])
def test_parse_threads_refuses_the_rest(value):
    with pytest.raises(ValueError, match="threads must be 'auto' or a positive integer"):
        parse_threads(value)


def test_describe_threads_names_the_count_and_its_origin():
    assert describe_threads(1, 1, env={}) == "1 thread (--threads 1)"
    text = describe_threads("auto", 3, env={"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE"})
    assert text == "3 threads (--threads auto, OMP_NUM_THREADS=3, OMP_WAIT_POLICY=PASSIVE)"
    assert "CPU cores" in describe_threads("auto", 1, env={})


# ----------------------------------------------------------------------------------- the config field


def test_threads_defaults_to_auto_in_every_task():
    assert ClassifyConfig().threads == DetectConfig().threads == SegmentConfig().threads == "auto"


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (1, 1), (8, 8), ("2", 2)])
def test_threads_override_accepts_auto_and_counts(value, expected):
    assert resolve(overrides={"threads": value}).threads == expected


@pytest.mark.parametrize("text, expected", [("threads: auto\n", "auto"), ("threads: 3\n", 3), ("threads: '2'\n", 2)])
def test_threads_from_yaml(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert resolve(path).threads == expected


@pytest.mark.parametrize("text, shown", [("threads: 0\n", "0"), ("threads: -2\n", "-2"), ("threads: four\n", "'four'"),
                                          ("threads: true\n", "True"), ("threads: 2.5\n", "2.5"),
                                          ("threads: [1]\n", "[1]")])
def test_bad_threads_in_yaml_is_a_clear_error(tmp_path, text, shown):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        resolve(path)
    message = str(error.value)
    assert message.startswith("threads must be") and shown in message and str(path) in message


@pytest.mark.parametrize("value", ["x", "0"])
def test_bad_threads_flag_exits_2_with_the_rule(value):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["train", "--threads", value, "--epochs", "1"])
    assert code == 2
    assert "threads must be 'auto' or an integer >= 1" in err.getvalue() and repr(value if value == "x" else 0) in err.getvalue()


def test_threads_round_trips_through_config_yaml(tmp_path):
    for value in ("auto", 3):
        save_yaml(resolve(overrides={"threads": value}), tmp_path / "config.yaml")
        assert resolve(tmp_path / "config.yaml").threads == value


# ----------------------------------------------------------------------------------- applying it


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    with torch_threads(wanted) as count:
        assert count == wanted == torch.get_num_threads()
    assert torch.get_num_threads() == before


def test_apply_threads_twice_is_harmless():
    # Inter-op threads can be set once per process only; a second job must not fail on it.
    before = torch.get_num_threads()
    restore_threads(apply_threads(1))
    restore_threads(apply_threads(2))
    assert torch.get_num_threads() == before


def test_train_applies_threads_and_logs_device_and_threads_first(tmp_path: Path):
    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    result = visionbench.train(out=tmp_path / "run", model="mlp", epochs=1, threads=wanted, quiet=True)
    first = (result.run_dir / rundir.LOG).read_text().splitlines()[0]
    noun = "thread" if wanted == 1 else "threads"
    assert f"device cpu, {wanted} {noun} (--threads {wanted}" in first  # read from torch during the run
    assert torch.get_num_threads() == before  # the caller's setting is back


class _ThreadsOfTheWorker(Dataset):
    """Each item is the intra-op thread count of the process that loads it."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, key: object) -> int:
        return torch.get_num_threads()


def test_loader_workers_use_one_thread_each():
    # Loader workers run beside the main process; more than one thread each would oversubscribe
    # the cores the main process's threads are using (torch's worker loop sets 1; keep it so).
    with torch_threads(2):
        loader = eval_loader(_ThreadsOfTheWorker(), SimpleNamespace(eval_batch_size=1),
                             Runtime(device=torch.device("cpu"), workers=1))
        assert list(loader) == [1, 1, 1, 1]
