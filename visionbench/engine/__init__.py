"""The engine: training loop, evaluation loop, checkpoints, distributed helpers, determinism.

Modules are imported by what needs them (``visionbench.engine.train`` pulls in torch and
torchvision); this package itself stays import-light so the CLI can name its errors cheaply.
"""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""
