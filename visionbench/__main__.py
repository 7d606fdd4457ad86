"""``python -m visionbench`` (also what ``torchrun -m visionbench`` runs)."""

import os
import sys

from visionbench.cli import main

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A torchrun worker whose work is done (process group destroyed, files closed) leaves at
        # once: at interpreter teardown the C++ threads of a store this rank hosted after a restart
        # were seen to abort the process ("terminate called without an active exception"), which
        # torchrun counts as a failure although every result was written.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
    raise SystemExit(code)
