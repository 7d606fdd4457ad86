"""Benchmark: torch threads of the main process, on a quiet and on a loaded machine (issue 11).

For each job (``digits``: the ``make demo`` training, ``visionbench train`` defaults; ``detect``:
``visionbench train --task detect`` defaults, tiny_fcos on shapes) and each configuration
(threads = torch's default (one per core), 1, cores−1, …, each without and with
``OMP_WAIT_POLICY=PASSIVE``), it times a fixed number of training steps of the engine's own loop
(``train_step`` over ``train_loader`` batches, after 2 untimed warm-up steps; validation and
testing are left out):

- quiet: one training process alone;
- loaded: two identical training processes at once (started together), the slowest and the mean.

Every measurement runs in fresh subprocesses, because OpenMP reads ``OMP_WAIT_POLICY`` once, when
torch loads it. The script cannot make the machine quiet: it prints the load average before each
measurement, so read "quiet" against it. A measurement stopped by ``--max-seconds`` is
extrapolated from its mean step time and marked ``*``.

Run: ``.venv/bin/python benchmarks/threads.py`` (about 4–6 minutes on 2 cores), or e.g.
``benchmarks/threads.py --jobs detect --threads default,1 --policies passive --loads loaded``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JOBS = {  # job → (config overrides, the user's command)
    "digits": ({}, "visionbench train"),
    "detect": ({"task": "detect"}, "visionbench train --task detect"),
}
DEFAULT_STEPS = {"digits": 200, "detect": 30}  # digits: the demo's 10 epochs of 20 steps; detect: ~1/2 epoch
POLICIES = {"unset": None, "passive": "PASSIVE", "active": "ACTIVE"}
WARMUP_STEPS = 2


# ----------------------------------------------------------------------------------- child


def child(job: str, threads: str, steps: int, max_seconds: float) -> None:
    """One training process: build the job, say ``ready``, wait for ``go`` on stdin, time the steps,
    print one JSON line."""
    sys.path.insert(0, str(ROOT))
    import torch

    from visionbench.config import resolve
    from visionbench.engine.loaders import train_loader
    from visionbench.engine.runtime import Runtime
    from visionbench.engine.threads import apply_threads
    from visionbench.engine.train import build_data, build_trainer, train_step

    if threads != "default":
        apply_threads(int(threads))
    config = resolve(overrides=JOBS[job][0])
    runtime = Runtime(device=torch.device("cpu"), quiet=True)
    torch.manual_seed(config.seed)
    bundle = build_data(config)
    if config.batch_size is None:  # unset: a run settles it from the training set's size, as here
        from visionbench.config import settle_batch_size

        config = dataclasses.replace(config, batch_size=settle_batch_size(config, len(bundle.train)))
    trainer = build_trainer(config, bundle, runtime.device)
    trainer.model.train()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every process of a measurement at once
    done, epoch, started, loop_started = -WARMUP_STEPS, 0, 0.0, time.perf_counter()
    while done < steps:
        for batch in train_loader(bundle, config, runtime, epoch=epoch, start_batch=0):
            train_step(trainer, batch, config, runtime.device)
            done += 1
            if done == 0:
                started = time.perf_counter()
            if done >= steps or (done > 0 and time.perf_counter() - started > max_seconds):
                break
        if done > 0 and time.perf_counter() - started > max_seconds:
            break
        epoch += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"steps": done, "seconds": elapsed, "per_step": elapsed / max(done, 1),
                      "threads": torch.get_num_threads(), "warmup_and_steps_s": time.perf_counter() - loop_started}),
          flush=True)


# ----------------------------------------------------------------------------------- parent


@dataclass(frozen=True)
class Setting:
    """One configuration: a thread count (``"default"``: torch's own) and an OpenMP wait policy."""

    threads: str
    policy: str

    def env(self) -> dict[str, str]:
        """The child's environment: ours without OMP_NUM_THREADS (so the default is torch's own)."""
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        if POLICIES[self.policy]:
            env["OMP_WAIT_POLICY"] = POLICIES[self.policy]
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU threads are what is measured, also on a GPU machine
        return env

    def label(self, cores: int) -> str:
        """``threads=2 (default)``, ``threads=1 PASSIVE``, …"""
        count = f"{cores} (default)" if self.threads == "default" else self.threads
        return f"threads={count}" + (f" {POLICIES[self.policy]}" if POLICIES[self.policy] else "")

    def command(self, job: str) -> str:
        """The user's command this setting stands for."""
        prefix = f"OMP_WAIT_POLICY={POLICIES[self.policy]} " if POLICIES[self.policy] else ""
        flag = "" if self.threads == "default" else f" --threads {self.threads}"
        return f"{prefix}{JOBS[job][1]}{flag}"


def measure(job: str, setting: Setting, processes: int, steps: int, max_seconds: float) -> list[dict]:
    """Start ``processes`` identical children, release them together, return their results."""
    command = [sys.executable, __file__, "--child", job, "--child-threads", setting.threads,
               "--steps", str(steps), "--max-seconds", str(max_seconds)]
    children = [subprocess.Popen(command, env=setting.env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True) for _ in range(processes)]
    try:
        for process in children:
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a {job} child did not start (said {line!r}); run it alone to see why: "
                                   f"{' '.join(command)}")
        for process in children:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in children:
            out, _ = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"a {job} child failed with exit code {process.returncode}")
            result = json.loads(out.strip().splitlines()[-1])
            result["capped"] = result["steps"] < steps
            result["budget_s"] = result["per_step"] * steps  # the seconds of the full step budget
            results.append(result)
        return results
    finally:
        for process in children:  # a failed measurement leaves no process behind
            if process.poll() is None:
                process.kill()
                process.wait()


def parse_cpus(text: str) -> set[int]:
    """``"0-1,4"`` → ``{0, 1, 4}``."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def thread_counts(spec: str, cores: int) -> list[str]:
    """``default,1,cores-1,half`` → distinct counts, ``"default"`` first if asked (cores−1 and half
    dropped when they repeat another count)."""
    wanted = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if item == "default":
            count = "default"
        elif item == "cores-1":
            count = str(max(1, cores - 1))
        elif item == "half":
            count = str(max(1, cores // 2))
        elif item.isdigit() and int(item) >= 1:
            count = item
        else:
            raise SystemExit(f"--threads items are default, cores-1, half or a count; got {item!r}")
        numeric = str(cores) if count == "default" else count
        if all((str(cores) if c == "default" else c) != numeric for c in wanted):
            wanted.append(count)
    return wanted


def main() -> int:
    """Parse the options, run the measurements, print the table and the commands."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default="digits,detect", help="comma-separated: digits, detect (default: both)")
    parser.add_argument("--threads", default="default,1,cores-1",
                        help="comma-separated: default (torch's: one per core), cores-1, half, or counts "
                             "(default: default,1,cores-1; repeats dropped)")
    parser.add_argument("--policies", default="unset,passive",
                        help="OMP_WAIT_POLICY values, comma-separated: unset, passive, active (default: unset,passive)")
    parser.add_argument("--loads", default="quiet,loaded", help="quiet (1 process), loaded (2 at once); default both")
    parser.add_argument("--digits-steps", type=int, default=DEFAULT_STEPS["digits"])
    parser.add_argument("--detect-steps", type=int, default=DEFAULT_STEPS["detect"])
    parser.add_argument("--max-seconds", type=float, default=30.0,
                        help="stop a measurement after this long and extrapolate (default: 30)")
    parser.add_argument("--cpus", metavar="LIST", help="run on these CPUs only, e.g. 0-1 or 0,2,4 (Linux; emulates "
                                                        "a smaller machine: torch's default follows the CPUs allowed)")
    parser.add_argument("--json", metavar="FILE", help="also write every result to FILE")
    parser.add_argument("--child", choices=tuple(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--child-threads", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.child_threads, args.steps, args.max_seconds)
        return 0

    if args.cpus:
        os.sched_setaffinity(0, parse_cpus(args.cpus))  # the children inherit it
    sys.path.insert(0, str(ROOT))
    from visionbench.engine.threads import cpu_cores, resolve_threads

    cores = cpu_cores()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    loads = [load.strip() for load in args.loads.split(",") if load.strip()]
    for name, values, valid in (("jobs", jobs, JOBS), ("policies", policies, POLICIES),
                                ("loads", loads, ("quiet", "loaded"))):
        if not values or any(v not in valid for v in values):
            raise SystemExit(f"--{name} must name some of {', '.join(valid)}; got {values}")
    settings = [Setting(t, p) for t in thread_counts(args.threads, cores) for p in policies]
    auto = resolve_threads("auto", env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"})
    print(f"{cores} CPU cores; --threads auto here = {auto}; load average {os.getloadavg()[0]:.2f} at start",
          flush=True)

    rows, began = [], time.perf_counter()
    for job in jobs:
        steps = args.digits_steps if job == "digits" else args.detect_steps
        for setting in settings:
            row = {"job": job, "setting": setting.label(cores), "command": setting.command(job), "steps": steps}
            for load in loads:
                before = os.getloadavg()[0]
                results = measure(job, setting, 1 if load == "quiet" else 2, steps, args.max_seconds)
                times = [r["budget_s"] for r in results]
                row[load] = {"slowest_s": max(times), "mean_s": statistics.mean(times), "load_before": before,
                             "capped": any(r["capped"] for r in results), "threads": results[0]["threads"]}
                print(f"  {job:<6} {setting.label(cores):<28} {load:<6} {max(times):7.1f} s for {steps} steps "
                      f"({results[0]['threads']} threads)"
                      f"{' (extrapolated)' if row[load]['capped'] else ''}  [load {before:.2f} before]", flush=True)
            rows.append(row)
    print_table(rows, loads, cores)
    print(f"Total {time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        Path(args.json).write_text(json.dumps({"cores": cores, "auto": auto, "rows": rows}, indent=1))
    return 0


def print_table(rows: list[dict], loads: list[str], cores: int) -> None:
    """The Markdown table (seconds for the step budget; ratio to the best setting of the same job
    and load) and the commands."""
    print(f"\n{cores} CPU cores; seconds for the fixed step budget (loaded: slowest of 2 processes / mean); "
          "× = ratio to the best of the job in that column; * = extrapolated from a capped run\n")
    header = "| job | steps | setting |" + "".join(f" {load} s | × |" for load in loads)
    print(header)
    print("|" + "---|" * (3 + 2 * len(loads)))
    for row in rows:
        cells = [row["job"], str(row["steps"]), row["setting"]]
        for load in loads:
            entry = row[load]
            best = min(r[load]["slowest_s"] for r in rows if r["job"] == row["job"])
            value = f"{entry['slowest_s']:.1f}" + (f" / {entry['mean_s']:.1f}" if load == "loaded" else "")
            cells += [value + ("*" if entry["capped"] else ""), f"{entry['slowest_s'] / best:.2f}"]
        print("| " + " | ".join(cells) + " |")
    print("\nCommands measured (the training steps of each):")
    for row in rows:
        print(f"  {row['command']}")
    print(f"Benchmark: {' '.join([Path(sys.executable).name, *sys.argv])}")


if __name__ == "__main__":
    raise SystemExit(main())
