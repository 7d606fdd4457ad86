"""A small name → builder registry shared by models, datasets and losses.

Each registry is a plain module-level instance (the only global state visionbench keeps).
Unknown names raise a ``ValueError`` that suggests close matches and the ``visionbench list``
command, improving on the bare ``Unknown model`` errors of other libraries.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LazyBuilder:
    """A builder not imported yet: ``factory`` is ``"package.module:function"`` and
    ``function(name)`` returns the builder of ``name`` (see :meth:`Registry.register_lazy`)."""

    factory: str

    def resolve(self, name: str) -> Callable[..., Any]:
        """Import the factory's module and return the builder of ``name``."""
        module, _, function = self.factory.partition(":")
        return getattr(importlib.import_module(module), function)(name)


@dataclass
class Registry:
    """Maps names to builder callables.

    Args:
        kind: what the registry holds, in the singular ("model", "dataset", "loss"); used in
            error messages.
        plural: the plural, as ``visionbench list PLURAL`` takes it (default: ``kind + "s"``).
    """

    kind: str
    plural: str = ""
    _builders: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _info: dict[str, dict[str, Any]] = field(default_factory=dict)

    def register(self, name: str, **info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that registers ``builder`` under ``name`` with optional metadata."""

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._builders[name] = builder
            self._info[name] = dict(info)
            return builder

        return decorator

    def register_lazy(self, name: str, factory: str, **info: Any) -> None:
        """Register ``name`` without importing its code: names and metadata (``info``) are listed
        at once, and ``factory`` (``"module:function"``, ``function(name) -> builder``) is imported
        by the first :meth:`get` of ``name``. This keeps ``visionbench list`` free of torch and
        torchvision however many entries there are."""
        if name in self._builders:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._builders[name] = LazyBuilder(factory)
        self._info[name] = dict(info)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"resnet*"``)."""
        return sorted(n for n in self._builders if fnmatch.fnmatchcase(n, pattern))

    def names_for(self, task: str, pattern: str = "*") -> list[str]:
        """Sorted names matching ``pattern`` whose ``task`` info is ``task`` (entries without one
        count as ``"classify"``)."""
        return [n for n in self.names(pattern) if self._info[n].get("task", "classify") == task]

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def get(self, name: str) -> Callable[..., Any]:
        """The builder registered as ``name`` (imported now if it was registered lazily); a
        ``ValueError`` with suggestions otherwise."""
        self.check(name)
        builder = self._builders[name]
        if isinstance(builder, LazyBuilder):
            builder = self._builders[name] = builder.resolve(name)
        return builder

    def info(self, name: str) -> dict[str, Any]:
        """The metadata given at registration (e.g. a one-line description)."""
        self.check(name)
        return self._info[name]

    def check(self, name: str) -> None:
        """Raise a helpful ``ValueError`` when ``name`` is not registered."""
        if name in self._builders:
            return
        close = difflib.get_close_matches(name, list(self._builders), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        plural = self.plural or f"{self.kind}s"
        raise ValueError(
            f"unknown {self.kind} {name!r}.{hint} Run `visionbench list {plural}` "
            f"to see all {len(self._builders)} registered {plural}."
        )
