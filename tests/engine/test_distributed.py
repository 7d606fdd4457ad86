"""DDP on CPU across two "machines" that share nothing but the network (issue 16).

Two torchrun agents (``--nnodes 2 --node-rank 0|1``, the rendezvous on 127.0.0.1) start in
different working directories, so ``--out runs/x`` names a different folder on each: only rank 0's
holds the run (rank 0 reads the run directory and broadcasts what the others need). Their test
metrics equal a single-process evaluation of the same weights (each test sample counted once), and
a worker killed mid-epoch under ``--max-restarts 1`` is restarted with the same command, which
continues the run: it ends bitwise equal to the uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.cli_runs import assert_same_checkpoints
from visionbench.engine import checkpoint as ckpt
from visionbench.engine import rundir

# Small batches: many steps per epoch, so a kill lands mid-epoch after a mid-epoch checkpoint.
TRAIN_ARGS = ["train", "--data", "digits", "--model", "cnn-small", "--epochs", "2", "--batch-size", "16",
              "--checkpoint-every", "5", "--seed", "3", "--device", "cpu", "--threads", "1", "--json", "--quiet"]
RUN = "runs/two-node"  # relative: each node's working directory has its own


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_nodes(root: Path, max_restarts: int = 0) -> tuple[list[subprocess.Popen], list[Path]]:
    """Two torchrun agents, one per working directory ``root/node0`` and ``root/node1``."""
    port = _free_port()
    # Each restart needs a fresh store for the workers' process group: the agent's shared one keeps the
    # previous workers' addresses, and agents count restarts apart, so a restart could hang
    # (pytorch/pytorch#135712). README "Many machines" asks for the same setting.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    agents, homes = [], []
    for node in range(2):
        home = root / f"node{node}"
        home.mkdir(parents=True)
        command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                   "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"vb-{port}",
                   "--max-restarts", str(max_restarts), "-m", "visionbench", *TRAIN_ARGS, "--out", RUN]
        # Files, not pipes: a failed worker's traceback could fill a pipe nobody reads yet and block
        # the restarted workers' output.
        with open(root / f"node{node}.out", "w") as out, open(root / f"node{node}.err", "w") as err:
            agents.append(subprocess.Popen(command, cwd=home, env=env, stdout=out, stderr=err))
        homes.append(home)
    return agents, homes


def _finish(agents: list[subprocess.Popen], homes: list[Path]) -> list[str]:
    """Each agent's stdout, once all ended well."""
    outputs = []
    for agent, home in zip(agents, homes, strict=True):
        agent.wait(timeout=300)
        err = (home.parent / f"{home.name}.err").read_text()
        assert agent.returncode == 0, err[-4000:]
        outputs.append((home.parent / f"{home.name}.out").read_text())
    return outputs


def _worker_of(agent: subprocess.Popen) -> int | None:
    """The PID of the visionbench worker that ``agent`` started, once it runs."""
    children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children")
    for pid in children.read_text().split() if children.exists() else []:
        try:
            if b"visionbench" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return int(pid)
        except OSError:
            continue
    return None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """One two-node run to the end: (node 0's home, node 1's home, the JSON rank 0 printed)."""
    agents, homes = _start_nodes(tmp_path_factory.mktemp("uninterrupted"))
    printed = _finish(agents, homes)
    return homes[0], homes[1], json.loads(printed[0])


def test_two_nodes_without_a_shared_disk_match_one_process(uninterrupted: tuple[Path, Path, dict],
                                                          tmp_path: Path) -> None:
    node0, node1, printed = uninterrupted
    run = node0 / RUN
    assert printed == json.loads((run / rundir.METRICS).read_text())  # rank 0 alone prints, and only the JSON
    assert len(rundir.read_history(run)) == 2
    assert not (node1 / "runs").exists()  # rank 1 never touched a run directory of its own

    single = tmp_path / "single"
    result = subprocess.run([sys.executable, "-m", "visionbench", "evaluate", str(run), "--out", str(single),
                             "--json", "--device", "cpu"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads(result.stdout)
    assert printed["num_samples"] == evaluated["num_samples"] == 359
    assert printed["confusion_matrix"] == evaluated["confusion_matrix"]
    for name in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        assert printed[name]["value"] == evaluated[name]["value"]

    def rows(folder: Path) -> list[list[str]]:
        with open(folder / rundir.PREDICTIONS) as handle:
            return list(csv.reader(handle))

    ddp_rows, single_rows = rows(run), rows(single)
    assert [r[0] for r in ddp_rows] == [r[0] for r in single_rows]  # same ids, same order, no duplicates
    assert len({r[0] for r in ddp_rows[1:]}) == 359
    assert [r[1:3] for r in ddp_rows] == [r[1:3] for r in single_rows]


def test_a_worker_killed_mid_epoch_is_restarted_and_ends_bitwise_equal(uninterrupted: tuple[Path, Path, dict],
                                                                       tmp_path: Path) -> None:
    agents, homes = _start_nodes(tmp_path, max_restarts=1)
    state = homes[0] / RUN / rundir.LAST_STATE
    deadline, killed = time.monotonic() + 240, None
    while time.monotonic() < deadline and killed is None and agents[1].poll() is None:
        try:
            progress = ckpt.load_state(state)["progress"] if state.exists() else None
        except (ValueError, OSError, RuntimeError, EOFError):  # caught mid-replace: look again
            progress = None
        worker = _worker_of(agents[1])
        if progress and progress["epoch"] == 1 and progress["step_in_epoch"] > 0 and worker:
            os.kill(worker, signal.SIGKILL)  # node 1's worker dies mid-epoch; node 0's fails with it
            killed = progress
        time.sleep(0.01)
    assert killed is not None, "no mid-epoch checkpoint of the second epoch was seen before the run ended"
    _finish(agents, homes)

    run, reference = homes[0] / RUN, uninterrupted[0] / RUN
    assert_same_checkpoints(reference, run)
    assert (reference / rundir.PREDICTIONS).read_text() == (run / rundir.PREDICTIONS).read_text()
    assert (run / rundir.METRICS).read_text() == (reference / rundir.METRICS).read_text()
    log = (run / rundir.LOG).read_text()
    assert "holds this command's run: continuing it" in log and "resuming epoch 2/2" in log
    assert not (homes[1] / "runs").exists()


def test_a_multi_machine_restart_on_the_shared_store_is_warned_about() -> None:
    from visionbench.engine.distributed import shared_store_restart_warning

    env = {"TORCHELASTIC_MAX_RESTARTS": "1", "GROUP_WORLD_SIZE": "2", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in shared_store_restart_warning(env)
    assert shared_store_restart_warning({**env, "TORCHELASTIC_USE_AGENT_STORE": "False"}) is None  # fresh stores
    assert shared_store_restart_warning({**env, "GROUP_WORLD_SIZE": "1"}) is None  # one agent restarts all
    assert shared_store_restart_warning({**env, "TORCHELASTIC_MAX_RESTARTS": "0"}) is None
