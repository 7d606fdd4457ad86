"""Search spaces of ``visionbench sweep``: which training options a sweep varies, and over what.

A space file is a YAML mapping from training options (the fields of the task's config in
:mod:`visionbench.config`, written as in ``--config`` files: ``batch_size``, not ``batch-size``) to
one distribution each::

    lr: {loguniform: [1.0e-4, 1.0e-1]}
    weight_decay: {uniform: [0.0, 1.0e-3]}
    label_smoothing: {uniform: [0.0, 0.2], step: 0.05}   # a step makes a float range discrete (gridable)
    batch_size: {int: [16, 128], step: 16}              # inclusive; step default 1; `log: true` allowed (step 1)
    epochs: {int: [3, 10]}
    optimizer: {choice: [sgd, adamw]}
    model: {choice: [cnn-small, resnet18]}

Kinds: ``choice`` (any option; ``null`` is a choice of options that may be unset, e.g.
``image_size``), ``uniform`` and ``loguniform`` (float options), ``int`` (integer options). Ranges
are inclusive, ``high - low`` must be a multiple of the step (Optuna would otherwise move ``high``
silently), and every value a trial can get passes the config's own checks (each choice, both ends
of a range), so a bad space fails before the first trial. A value that only a *combination* makes
invalid (``nesterov: true`` needs ``optimizer: sgd``) is accepted when another swept option has a
value that makes it valid; the runner validates each trial's config as it builds it.

What may be swept (:data:`SWEEPABLE`, per task) is every config field except those in
:data:`NOT_SWEEPABLE`, decided from config.py's fields:

- what is measured and on which samples: ``task``, ``data``, ``multilabel`` (another problem),
  ``val_fraction``, ``test_fraction``, ``split_seed`` (trials must be selected on one validation
  split), ``monitor`` (the selection metric), ``val_every`` (trials would be selected on different
  numbers of validated epochs), ``ignore_index`` (pixels left out of the metrics),
  ``score_threshold`` and ``protocol`` (how test metrics are reported; training does not see them);
- ``seed``: refused. The sweep has its own seed for its sampler and trains every trial with the
  same ``--seed``; sweeping it would select a lucky initialisation, a gain that does not carry over;
- how a trial is computed, not what it learns: ``amp``, ``deterministic``, ``threads``,
  ``eval_batch_size``, ``checkpoint_every`` (set once so that trials are computed alike);
  ``download_weights`` (a permission to use the network, given to the sweep);
- run options that are not config fields but look like them: ``out``, ``resume``, ``config``,
  ``device``, ``workers``, ``quiet``, ``json`` (named so the error says why, not "unknown").

Everything else may be swept, including ``model``, ``weights`` / ``pretrained`` (the starting
point is a training choice), ``image_size`` (segmentation is still scored on the stored masks;
detection boxes are scaled back to the stored images) and ``early_stopping``.

Nothing here imports optuna: :func:`suggest` only calls the methods of the trial it is given, and
the rest is plain Python, so a space can be read and checked without the ``[sweep]`` extra.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from visionbench import config as cfg
from visionbench.strict_yaml import read_yaml_file

KINDS = ("choice", "uniform", "loguniform", "int")
# the keys each kind takes beside its own
_EXTRA_KEYS: dict[str, tuple[str, ...]] = {"choice": (), "uniform": ("step",), "loguniform": (), "int": ("step", "log")}
MAX_SPACE_BYTES = 1 << 20  # a space file is a few lines; a larger file is refused before it is parsed
MAX_GRID_VALUES = 10_000  # values of one option in a grid search; more is a step mistake, and a memory risk

NOT_SWEEPABLE: dict[str, str] = {
    "task": "the task is the sweep's own --task",
    "data": "every trial must be measured on the same dataset",
    "multilabel": "it changes the problem and its metrics, so trials would not be comparable",
    "val_fraction": "the selection must stay on the same validation split",
    "test_fraction": "the selection must stay on the same validation split",
    "split_seed": "the selection must stay on the same validation split",
    "monitor": "it is the metric that selects the trials; the sweep sets it once",
    "val_every": "trials would be selected on different numbers of validated epochs",
    "ignore_index": "it changes which pixels the metrics count",
    "score_threshold": "it changes how test metrics are reported, not what a trial learns",
    "protocol": "it changes how test metrics are computed, not what a trial learns",
    "seed": "the sweep trains every trial with one --seed (its sampler has its own); sweeping it selects a lucky "
            "initialisation that does not carry over",
    "amp": "it changes how a trial is computed, not what it learns; set once, every trial is computed alike",
    "deterministic": "it changes how a trial is computed, not what it learns; set once, every trial is computed alike",
    "threads": "it changes how fast a trial runs, not what it learns",
    "eval_batch_size": "it changes how fast a trial is evaluated, not what it learns",
    "checkpoint_every": "it changes how often a trial saves, not what it learns",
    "download_weights": "it is a permission to use the network, not a training choice",
    "out": "the sweep names each trial's run directory itself",
    "resume": "the sweep resumes its own study",
    "config": "it is the sweep's base configuration file",
    "device": "it is where the sweep runs",
    "workers": "it changes how fast data loads, not what a trial learns",
    "quiet": "it changes what the sweep prints",
    "json": "it changes what the sweep prints",
}

SWEEPABLE: dict[str, tuple[str, ...]] = {
    task: tuple(f.name for f in cfg.config_fields(cls) if f.name not in NOT_SWEEPABLE)
    for task, cls in cfg.CONFIG_CLASSES.items()
}


@dataclass(frozen=True)
class Param:
    """One swept option and its distribution; build it with :func:`parse_space`.

    Attributes:
        name: the config field, e.g. ``"lr"``.
        kind: ``"choice"``, ``"uniform"``, ``"loguniform"`` or ``"int"``.
        low, high: the inclusive range (``None`` for a choice), of the field's type.
        step: the grid step of a ``uniform`` range (``None``: continuous) or of an ``int`` range (1
            unless given; ``None`` for other kinds).
        log: sampled on a log scale (``loguniform``, or ``int`` with ``log: true``).
        choices: the values of a ``choice``, of the field's type (``()`` for ranges).

    Example:
        >>> Param("lr", "loguniform", 1e-4, 1e-1, log=True).describe()
        'loguniform [0.0001, 0.1]'
    """

    name: str
    kind: str
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        """A short text of the distribution, e.g. ``"int [16, 128] step 16"`` or ``"choice [sgd, adamw]"``.

        Example:
            >>> Param("optimizer", "choice", choices=("sgd", "adamw")).describe()
            'choice [sgd, adamw]'
        """
        if self.kind == "choice":
            return f"choice [{', '.join(_text(c) for c in self.choices)}]"
        text = f"{self.kind} [{self.low!r}, {self.high!r}]"
        if self.step is not None and not (self.kind == "int" and self.step == 1):
            text += f" step {self.step!r}"
        if self.kind == "int" and self.log:
            text += " log"
        return text


def _text(value: Any) -> str:
    """A choice as YAML writes it (``null``, ``true``, ``sgd``, ``0.1``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def _shown(value: Any) -> str:
    """A value in a message: strings quoted, the rest as YAML writes them."""
    return repr(value) if isinstance(value, str) else _text(value)


def _error(source: str, key: str, must: str, got: str, fix: str) -> ValueError:
    """The error of one key: ``"SOURCE: key 'K' must …; got …. FIX"``."""
    return ValueError(f"{source}: key {key!r} must {must}; got {got}. {fix}")


# --------------------------------------------------------------------------------------------- reading


def read_space(path: str | Path, task: str, *, base: cfg.AnyConfig | None = None) -> dict[str, Param]:
    """Read a space file (YAML, at most :data:`MAX_SPACE_BYTES`) and check it with :func:`parse_space`.

    Args:
        path: the YAML file.
        task: the sweep's ``--task``.
        base: the configuration every trial starts from (default: the task's defaults); each
            swept value is checked together with it.

    Raises:
        ValueError: a missing, unreadable, oversized, non-UTF-8 or invalid YAML file, a file that is
            not a mapping, or any error of :func:`parse_space`; the message names the file.

    Example:
        >>> import tempfile, pathlib
        >>> file = pathlib.Path(tempfile.mkdtemp()) / "space.yaml"
        >>> _ = file.write_text("lr: {loguniform: [1.0e-4, 1.0e-1]}\\n")
        >>> read_space(file, "classify")["lr"].describe()
        'loguniform [0.0001, 0.1]'
    """
    source = str(path)
    data = _load_yaml(Path(path), source)
    if data is None:
        raise ValueError(f"{source}: the space file must map training options to distributions; got an empty file. "
                         "Add one line per option to sweep, e.g. `lr: {loguniform: [1.0e-4, 1.0e-1]}`.")
    return parse_space(data, task, source=source, base=base)


def _load_yaml(path: Path, source: str) -> Any:
    """The parsed YAML of ``path``, every failure a ValueError naming the file (:mod:`visionbench.strict_yaml`)."""
    return read_yaml_file(path, "the space file", max_bytes=MAX_SPACE_BYTES,
                          hint="A space is one `option: {kind: [...]}` line per swept option: check that this is "
                               "the right file.")


# --------------------------------------------------------------------------------------------- parsing


def parse_space(mapping: Any, task: str, *, source: str = "space.yaml",
                base: cfg.AnyConfig | None = None) -> dict[str, Param]:
    """Check a space (option → distribution mapping) for ``task``; return its params in file order.

    Args:
        mapping: the parsed space file, e.g. ``{"lr": {"loguniform": [1e-4, 1e-1]}}``.
        task: the sweep's ``--task`` (``classify``, ``detect`` or ``segment``).
        source: named in the errors (the file).
        base: the configuration every trial starts from (default: the task's defaults); every
            choice and both ends of every range must pass ``config.validate`` with it (or with
            one value of another swept option, for checks that involve two options).

    Raises:
        ValueError: ``"SOURCE: key 'K' must …; got …. <what to do>"`` for an option that does
            not exist, belongs to another task or may not be swept, a distribution of the wrong
            kind or shape, an empty or inverted range, a bad step, or a value the config refuses.

    Example:
        >>> space = parse_space({"lr": {"loguniform": [1e-4, 1e-1]}, "epochs": {"int": [3, 10]}}, "classify")
        >>> [p.describe() for p in space.values()]
        ['loguniform [0.0001, 0.1]', 'int [3, 10]']
    """
    if task not in cfg.CONFIG_CLASSES:
        raise ValueError(f"task must be one of {list(cfg.TASKS)}; got {task!r}. Use --task classify, detect or segment.")
    if base is not None and base.task != task:
        raise ValueError(f"the base configuration must be of --task {task}; got --task {base.task}. "
                         f"Build it with the sweep's task.")
    if not isinstance(mapping, dict):
        raise ValueError(f"{source}: the space must be a mapping of option: distribution; got "
                         f"{type(mapping).__name__}. Write one `option: {{kind: [...]}}` line per option, "
                         "e.g. `lr: {loguniform: [1.0e-4, 1.0e-1]}`.")
    if not mapping:
        raise ValueError(f"{source}: the space must name at least one option; got an empty mapping. Add e.g. "
                         "`lr: {loguniform: [1.0e-4, 1.0e-1]}`.")
    fields = {f.name: f for f in cfg.config_fields(cfg.CONFIG_CLASSES[task])}
    space: dict[str, Param] = {}
    for key, spec in mapping.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: every key must be an option name; got {key!r} "
                             f"({type(key).__name__}). Write the option's name, e.g. `lr`.")
        _check_key(key, task, fields, source)
        space[key] = _parse_param(key, spec, str(fields[key].type), source)
    _check_values(space, base if base is not None else cfg.CONFIG_CLASSES[task](), task, source)
    return space


def _check_key(key: str, task: str, fields: dict[str, Any], source: str) -> None:
    """``key`` is an option of ``task`` that may be swept."""
    if key in NOT_SWEEPABLE:
        raise _error(source, key, f"not be swept: {NOT_SWEEPABLE[key]}", "a distribution for it",
                     f"Remove {key!r} from the space; set it once for every trial (--config or a flag of "
                     "`visionbench sweep`).")
    if key in fields:
        return
    sweepable = ", ".join(SWEEPABLE[task])
    if key in cfg.ALL_OPTIONS:
        tasks = " / ".join(t for t, c in cfg.CONFIG_CLASSES.items() if key in {f.name for f in cfg.config_fields(c)})
        raise _error(source, key, f"be an option of --task {task}", f"{key!r}, a --task {tasks} option; this sweep "
                     f"trains --task {task}", f"Remove it, or sweep --task {tasks}. Options of --task {task} that "
                     f"can be swept: {sweepable}.")
    underscored = key.replace("-", "_")
    close = [underscored] if underscored in fields else difflib.get_close_matches(key, SWEEPABLE[task], n=3)
    hint = f"Did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise _error(source, key, f"be a training option of --task {task}", "an unknown name",
                 f"{hint}Options of --task {task} that can be swept (config field names, with underscores): "
                 f"{sweepable}.")


def _parse_param(key: str, spec: Any, annotation: str, source: str) -> Param:
    """The :class:`Param` of ``key: spec``; ``annotation`` is the field's type, e.g. ``"int | None"``."""
    example = "`lr: {loguniform: [1.0e-4, 1.0e-1]}` or `optimizer: {choice: [sgd, adamw]}`"
    if not isinstance(spec, dict):
        raise _error(source, key, "be a mapping with one of choice, uniform, loguniform or int", repr(spec),
                     f"Write e.g. {example}; a value that stays fixed belongs in --config, not in the space.")
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        got = "none of them" if not kinds else f"{len(kinds)}: {', '.join(kinds)}"
        raise _error(source, key, "have exactly one of choice, uniform, loguniform or int", got,
                     f"Give one distribution per option, e.g. {example}.")
    kind = kinds[0]
    extra = [k for k in spec if k != kind and k not in _EXTRA_KEYS[kind]]
    if extra:
        raise _error(source, key, f"have only the keys {', '.join((kind, *_EXTRA_KEYS[kind]))}",
                     f"{', '.join(repr(k) for k in extra)}", _extra_key_fix(kind, extra))
    base = annotation.replace(" | None", "")
    if kind == "choice":
        return Param(key, "choice", choices=_parse_choices(key, spec["choice"], annotation, source))
    _check_range_kind(key, kind, base, source)
    low, high = _parse_bounds(key, kind, spec[kind], base, source)
    if kind == "loguniform":
        if low <= 0:
            raise _error(source, key, "have a loguniform range above 0", f"low {low!r}",
                         "Use a low end > 0 (e.g. 1.0e-5), or a uniform range to include 0.")
        return Param(key, "loguniform", low, high, log=True)
    if kind == "uniform":
        step = _parse_step(key, spec, low, high, float, source) if "step" in spec else None
        return Param(key, "uniform", low, high, step=step)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise _error(source, key, "have log true or false", repr(log), "Write `log: true` for a log scale.")
    step = _parse_step(key, spec, low, high, int, source) if "step" in spec else 1
    if log and step != 1:
        raise _error(source, key, "not combine log: true with a step", f"step {step!r}",
                     "Remove the step (a log scale takes every integer), or remove `log: true`.")
    if log and low < 1:
        raise _error(source, key, "have a low end >= 1 with log: true", f"low {low!r}",
                     "Start the range at 1 or more, or remove `log: true`.")
    return Param(key, "int", low, high, step=step, log=log)


def _extra_key_fix(kind: str, extra: list[str]) -> str:
    """What to write instead of keys that ``kind`` does not take."""
    if kind == "uniform" and "log" in extra:
        return "Use `loguniform: [low, high]` for a log scale."
    if kind == "loguniform" and "step" in extra:
        return "A log range has no step: list the values with `choice: [...]`, or use `uniform` with a step."
    if kind == "choice":
        return "A choice takes only its list of values: remove the other keys."
    return f"Remove {', '.join(repr(k) for k in extra)}."


def _check_range_kind(key: str, kind: str, base: str, source: str) -> None:
    """A range kind fits the field's type: floats take uniform/loguniform, integers take int."""
    if base == "float" and kind == "int":
        raise _error(source, key, "use uniform or loguniform (a float option)", "int",
                     f"Write `{key}: {{uniform: [low, high], step: 1}}` for whole-number steps.")
    if base == "int" and kind != "int":
        raise _error(source, key, "use int (an integer option)", kind,
                     f"Write `{key}: {{int: [low, high]}}` (add `log: true` for a log scale).")
    if base not in ("float", "int"):
        raise _error(source, key, f"use choice (a {base} option has no range)", kind,
                     f"Write `{key}: {{choice: [...]}}` with the values to try.")


def _parse_bounds(key: str, kind: str, bounds: Any, base: str, source: str) -> tuple[Any, Any]:
    """``[low, high]`` as numbers of the field's type, ``low < high``."""
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise _error(source, key, f"give {kind} a list [low, high]", repr(bounds),
                     f"Write `{key}: {{{kind}: [low, high]}}`.")
    low, high = (_number(key, value, base, source, what) for value, what in zip(bounds, ("low", "high"), strict=True))
    if low >= high:
        raise _error(source, key, "have low < high", f"[{low!r}, {high!r}]",
                     "Put the smaller value first; to fix one value, set it in --config instead of sweeping it.")
    return low, high


def _number(key: str, value: Any, base: str, source: str, what: str) -> Any:
    """``value`` as a finite number of type ``base`` (``"float"`` also reads strings such as
    ``"1e-4"``, which YAML 1.1 leaves unconverted)."""
    if base == "float" and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    kind = "a whole number such as 16" if base == "int" else "a finite number such as 1.0e-4"
    raise _error(source, key, f"have {kind} as {what}", repr(value), f"Write {what} as {kind}.")


def _parse_step(key: str, spec: dict[str, Any], low: Any, high: Any, kind: type, source: str) -> Any:
    """A step > 0 that fits the range a whole number of times (checked in decimal, without float drift)."""
    step = _number(key, spec["step"], kind.__name__, source, "step")
    span = _decimal(high) - _decimal(low)  # in decimal: 0.011 - 0.01 is 0.0009999999999999992 in floats
    if step <= 0 or _decimal(step) > span:
        raise _error(source, key, f"have a step in (0, high - low] = (0, {span}]", f"step {step!r}",
                     "Use a positive step no larger than the range.")
    count = _step_count(low, high, step)
    if count is None:
        fitted = _grid_value(low, step, int((high - low) // step))
        raise _error(source, key, "have high - low a multiple of the step", f"[{low!r}, {high!r}] step {step!r}",
                     f"Change high to {fitted!r} (or another multiple), or change the step.")
    return step


def _decimal(value: int | float) -> Decimal:
    """The shortest decimal of a float (``0.1`` → ``Decimal('0.1')``), so grids add no float drift."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _step_count(low: Any, high: Any, step: Any) -> int | None:
    """``(high - low) / step`` when it is a whole number, else ``None``."""
    with localcontext() as context:
        context.prec = 60
        try:
            quotient = (_decimal(high) - _decimal(low)) / _decimal(step)
        except InvalidOperation:
            return None
        return int(quotient) if quotient == quotient.to_integral_value() else None


def _grid_value(low: Any, step: Any, k: int) -> Any:
    """The ``k``-th value of the grid ``low + k * step``, in the type of ``low``."""
    if isinstance(low, int) and isinstance(step, int):
        return low + k * step
    with localcontext() as context:
        context.prec = 60
        return float(_decimal(low) + k * _decimal(step))


def _parse_choices(key: str, values: Any, annotation: str, source: str) -> tuple[Any, ...]:
    """The choices as a tuple of the field's type (``None`` allowed for optional fields), no repeats."""
    base = annotation.replace(" | None", "")
    optional = "None" in annotation
    if not isinstance(values, list) or not values:
        raise _error(source, key, "give choice a non-empty list", repr(values),
                     f"Write `{key}: {{choice: [a, b]}}` with the values to try.")
    choices: list[Any] = []
    for value in values:
        coerced = _choice_value(value, base, optional)
        if coerced is _INVALID:
            what = f"{base} values" + (" or null" if optional else "")
            quote = " (quote words that YAML reads otherwise, e.g. 'null', 'yes')" if base == "str" else ""
            raise _error(source, key, f"list only {what}", f"{_shown(value)} ({type(value).__name__})",
                         f"Replace {_shown(value)} with a value of type {base}{quote}.")
        if coerced in choices:
            raise _error(source, key, "list each value once", f"{_shown(value)} twice",
                         f"Remove the repeated {_shown(value)}.")
        choices.append(coerced)
    return tuple(choices)


_INVALID = object()


def _choice_value(value: Any, base: str, optional: bool) -> Any:
    """``value`` in the field's type, or ``_INVALID``."""
    if value is None:
        return None if optional else _INVALID
    if base == "bool":
        return value if isinstance(value, bool) else _INVALID
    if base == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if base == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return _INVALID
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _INVALID
    if base == "int | str":
        return value if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)) else _INVALID
    return value if isinstance(value, str) else _INVALID


def _probes(param: Param) -> list[tuple[Any, str]]:
    """The values of ``param`` the config must accept, and how to name them: each choice, or both
    ends of a range (the config's range checks are intervals, so the ends cover the range)."""
    if param.kind == "choice":
        return [(value, "a choice") for value in param.choices]
    # high is on the step grid: _parse_step refuses a range that is not a whole number of steps
    return [(param.low, "the low end of the range"), (param.high, "the high end of the range")]


def _check_values(space: dict[str, Param], base: cfg.AnyConfig, task: str, source: str) -> None:
    """Every probe value of every param passes ``config.validate`` with ``base``, or with ``base``
    and one value of another swept option (``nesterov: true`` with ``optimizer: sgd``)."""
    probes = {name: _probes(param) for name, param in space.items()}
    for name, values in probes.items():
        for value, where in values:
            refusal = _refusal(base, name, value, source)
            if refusal is None:
                continue
            together = (_refusal(dataclasses.replace(base, **{other: v}), name, value, source) is None
                        for other, others in probes.items() if other != name for v, _ in others)
            if any(together):
                continue  # valid with another swept value; the runner validates each trial's config
            fix = ("Narrow the range to values it accepts" if space[name].kind != "choice"
                   else f"Remove {_shown(value)} from the choices")
            if not refusal.startswith(f"{name} must"):  # a check of two options, e.g. nesterov needs optimizer sgd
                fix += ", or change the other option the check names (in --config, or sweep it too)"
            raise _error(source, name, f"take only values the --task {task} config accepts", f"{_shown(value)} "
                         f"({where}), which it refuses: {refusal.rstrip('.')}", fix + ".")


def _refusal(base: cfg.AnyConfig, name: str, value: Any, source: str) -> str | None:
    """The message of ``config.validate`` for ``base`` with ``name = value``, or ``None`` if valid."""
    try:
        cfg.validate(dataclasses.replace(base, **{name: value}), source)
    except ValueError as error:
        return str(error)
    return None


# --------------------------------------------------------------------------------------------- using


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """The config overrides of one Optuna trial: one ``trial.suggest_*`` call per param.

    Values have the field's type (``int`` for int ranges, ``float`` for float ranges, the choices
    as parsed); a float range with a step gives exactly the values of :func:`grid_values` (Optuna's
    own arithmetic can give ``0.15000000000000002``).

    Example:
        >>> import optuna  # doctest: +SKIP
        >>> trial = optuna.create_study().ask()  # doctest: +SKIP
        >>> suggest(trial, parse_space({"epochs": {"int": [3, 10]}}, "classify"))  # doctest: +SKIP
        {'epochs': 7}
    """
    values: dict[str, Any] = {}
    for name, param in space.items():
        if param.kind == "choice":
            values[name] = trial.suggest_categorical(name, list(param.choices))
        elif param.kind == "int":
            values[name] = int(trial.suggest_int(name, param.low, param.high, step=param.step or 1, log=param.log))
        else:
            value = float(trial.suggest_float(name, param.low, param.high, step=param.step, log=param.log))
            values[name] = _snap(value, param) if param.step is not None else value
    return values


def trial_values(params: dict[str, Any], space: dict[str, Param]) -> dict[str, Any]:
    """The values :func:`suggest` trained a trial with, from the parameters Optuna stored for it
    (``FrozenTrial.params`` keeps a stepped float as Optuna computed it, e.g. ``0.15000000000000002``).

    Example:
        >>> space = parse_space({"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.05}}, "classify")
        >>> trial_values({"label_smoothing": 0.15000000000000002}, space)
        {'label_smoothing': 0.15}
    """
    values = dict(params)
    for name, param in space.items():
        if name not in values:
            continue
        if param.kind == "int":
            values[name] = int(values[name])
        elif param.kind in ("uniform", "loguniform") and param.step is not None:
            values[name] = _snap(float(values[name]), param)
    return values


def _snap(value: float, param: Param) -> float:
    """``value`` moved to the nearest value of the param's decimal grid."""
    last = _step_count(param.low, param.high, param.step) or 0
    k = min(max(round((value - param.low) / param.step), 0), last)
    return _grid_value(param.low, param.step, k)


def grid_values(space: dict[str, Param], *, source: str = "the search space") -> dict[str, list[Any]]:
    """Every value of each param, for ``optuna.samplers.GridSampler``.

    Choices as listed, int ranges by their step, float ranges with a step as exact decimals
    (``[0.0, 0.05, 0.1, 0.15, 0.2]``).

    Raises:
        ValueError: naming the key, for a range without a step (``uniform`` without ``step``,
            ``loguniform``), or one of more than :data:`MAX_GRID_VALUES` values.

    Example:
        >>> grid_values(parse_space({"label_smoothing": {"uniform": [0.0, 0.2], "step": 0.05}}, "classify"))
        {'label_smoothing': [0.0, 0.05, 0.1, 0.15, 0.2]}
    """
    grid: dict[str, list[Any]] = {}
    for name, param in space.items():
        count = _grid_count(param, source)
        if count > MAX_GRID_VALUES:
            raise _error(source, name, f"have at most {MAX_GRID_VALUES} values for a grid search",
                         f"{count} ({param.describe()})", "Use a larger step, or list the values with choice.")
        if param.kind == "choice":
            grid[name] = list(param.choices)
        else:
            grid[name] = [_grid_value(param.low, param.step, k) for k in range(count)]
    return grid


def grid_size(space: dict[str, Param], *, source: str = "the search space") -> int:
    """The number of points of the grid of ``space`` (the product of each param's value count).

    Example:
        >>> grid_size(parse_space({"epochs": {"int": [3, 10]}, "optimizer": {"choice": ["sgd", "adamw"]}},
        ...                       "classify"))
        16
    """
    return math.prod(_grid_count(param, source) for param in space.values())


def _grid_count(param: Param, source: str) -> int:
    """How many values ``param`` has on a grid; a continuous range is an error naming the key."""
    if param.kind == "choice":
        return len(param.choices)
    if param.step is None:
        fix = ("List the values to try with `choice: [1.0e-4, 1.0e-3, 1.0e-2]`." if param.kind == "loguniform"
               else "Add `step: X` to the range, or list the values with `choice: [...]`.")
        raise _error(source, param.name, "have a finite set of values for a grid search",
                     f"{param.describe()}, a continuous range", fix)
    return (_step_count(param.low, param.high, param.step) or 0) + 1
