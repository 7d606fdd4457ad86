"""Reading small YAML files that may come from anyone: bounded, safe, and strict.

``yaml.safe_load`` constructs no objects, but it still expands anchors and aliases (a 399-byte
"billion laughs" file grows to gigabytes) and silently keeps the last of two equal keys. Config files,
run directories' ``config.yaml`` and sweep space files are short hand-written mappings, so
:func:`read_yaml_file` reads at most ``max_bytes``, refuses anchors, aliases and repeated keys, and
turns every failure into a ``ValueError`` naming the file, the line and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1 << 20  # a config or space file is a few lines; a larger file is refused before parsing


class RefusedYAML(Exception):
    """A construct :class:`StrictLoader` refuses (anchors, aliases, repeated keys), with its place."""

    def __init__(self, what: str, mark: Any) -> None:
        super().__init__(what)
        self.what, self.mark = what, mark


class StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing anchors and aliases (a few aliased lines can expand to
    gigabytes) and repeated keys (PyYAML would keep the last one silently)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise RefusedYAML("an anchor or alias (&name / *name)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise RefusedYAML(f"the key {key!r} a second time", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep)


class NoAliasDumper(yaml.SafeDumper):
    """``yaml.safe_dump``'s dumper without anchors and aliases: what visionbench writes,
    :class:`StrictLoader` reads back (an object written twice is written out twice)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """``data`` as YAML text, in insertion order, without anchors or aliases."""
    return yaml.dump(data, Dumper=NoAliasDumper, sort_keys=False)


def read_yaml_file(path: Path, what: str, *, max_bytes: int = MAX_YAML_BYTES, hint: str = "") -> Any:
    """The parsed YAML of ``path`` (``None`` for an empty file), read with :class:`StrictLoader`.

    Args:
        what: the file's role for messages, e.g. ``"the config file"``.
        max_bytes: larger files are refused before any parsing.
        hint: what the file should look like, appended to the too-large and too-deep messages.

    Raises:
        ValueError: missing, a directory, unreadable, larger than ``max_bytes``, not UTF-8, invalid
            YAML, an anchor/alias or a repeated key, or nesting too deep; the message names the file.
    """
    source = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(max_bytes + 1)  # never more, whatever the file's size
    except FileNotFoundError:
        raise ValueError(f"{source}: {what} must exist; got no such file. Check the path (relative paths start in "
                         "the current directory).") from None
    except IsADirectoryError:
        raise ValueError(f"{source}: {what} must be a file; got a directory. Give the YAML file in it.") from None
    except OSError as error:
        raise ValueError(f"{source}: {what} must be readable; got {error.strerror or error}. "
                         "Check its permissions.") from None
    if len(raw) > max_bytes:
        raise ValueError(f"{source}: {what} must be at most {max_bytes} bytes; got more. {hint}".rstrip())
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{source}: {what} must be UTF-8 text; got byte {raw[error.start]:#04x} at offset "
                         f"{error.start}. Save it as UTF-8.") from None
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass: safe_load, stricter
    except RefusedYAML as refused:
        raise ValueError(f"{source}: {what} must not use {refused.what}; got it at line {refused.mark.line + 1}. "
                         "Write each value out.") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{source}: {what} must be valid YAML; got {error}. Fix the YAML syntax.") from None
    except RecursionError:
        raise ValueError(f"{source}: {what} must be a flat mapping; got values nested too deeply. {hint}".rstrip()) from None


__all__ = ["MAX_YAML_BYTES", "NoAliasDumper", "RefusedYAML", "StrictLoader", "dump_yaml", "read_yaml_file"]
