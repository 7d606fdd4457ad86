"""One sweep worker process: ``python -m visionbench.sweep.worker SWEEP_DIR [--device D] [--threads N]``.

Started by ``visionbench sweep --workers K`` (K > 1), one per CPU share or GPU; it runs trials of the
study in ``SWEEP_DIR/sweep.yaml`` until the sweep has its ``--trials`` (see
:func:`visionbench.sweep.runner.run_worker`). Exit status 0 when done, 130 on Ctrl-C (the trial it
was running is resumed by the next ``visionbench sweep``), 1 on an error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the worker's arguments and run trials; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m visionbench.sweep.worker", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--loader-workers", type=int, default=None)
    parser.add_argument("--worker", type=int, default=0, help="this worker's index (its sampler seed differs)")
    parser.add_argument("--max-trials", type=int, default=None, help="this worker's share of the trials")
    args = parser.parse_args(argv)
    from visionbench.sweep.runner import STORAGE_ENV, run_worker, storage_url

    # The storage URL comes from the environment: a password in it stays off command lines (ps, logs).
    storage = os.environ.get(STORAGE_ENV) or storage_url(args.sweep_dir, None)
    try:
        run_worker(args.sweep_dir, storage=storage, max_trials=args.max_trials, worker=args.worker, device=args.device,
                   loader_workers=args.loader_workers, threads=args.threads)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the log file is where the parent points the user
        print(f"sweep worker: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
