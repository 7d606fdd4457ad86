"""``python -m visionbench`` (also what ``torchrun -m visionbench`` runs)."""

from visionbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
