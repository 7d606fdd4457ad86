"""One sweep worker process: ``python -m visionbench.sweep.worker SWEEP_DIR [--device D] [--threads N]``.

Started by ``visionbench sweep --workers K`` (K > 1), one per CPU share or GPU; it runs trials of the
study in ``SWEEP_DIR/sweep.yaml`` until the sweep has its ``--trials`` (see
:func:`visionbench.sweep.runner.run_worker`). Exit status 0 when done, 130 on Ctrl-C (the trial it
was running is resumed by the next ``visionbench sweep``), 1 on an error.
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)
    from visionbench.sweep.runner import run_worker

    try:
        run_worker(args.sweep_dir, device=args.device, loader_workers=args.loader_workers, threads=args.threads)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - the log file is where the parent points the user
        print(f"sweep worker: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
