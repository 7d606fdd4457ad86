"""Hyperparameter search with Optuna: ``visionbench sweep`` and :func:`visionbench.run_sweep`.

Honest by construction: every trial is an ordinary run directory (``SWEEP/trials/trial-NNNN``)
whose best checkpoint is chosen on the validation ``--monitor`` and evaluated on the validation split
only; the test split is read once per final run, when the search is over (:mod:`.final`: the best
configuration and the default, compared with ``compare``'s paired tests).

Modules, from the data up:

* :mod:`.space` — the search space file (``lr: {loguniform: [1e-4, 1e-1]}``), checked against the
  task's options, turned into Optuna suggestions or a grid;
* :mod:`.settings` — what a sweep is (``sweep.yaml``); a later command must ask for the same search;
* :mod:`.study` — Optuna's storage (SQLite in the sweep directory, or ``--storage URL`` shared by
  many machines), sampler, pruner, heartbeats, and trials cut short queued again;
* :mod:`.trial` — one trial: train with ``eval_split="val"``, report epochs to the pruner;
* :mod:`.runner` — the command: K worker processes (:mod:`.worker`), waiting for other machines;
* :mod:`.final` and :mod:`.summary` — the test evaluation once, the comparison, ``sweep.json``;
* :mod:`.report` — ``report.html`` and ``trials.csv`` from the summary alone.
"""
