"""Change one scalar in YAML text without disturbing the rest: comments, order and layout survive.

The recipe form writes through here so an engineer's hand-written file stays theirs: only the span of
the value changes, or, for a key the file leaves at its default, one line (or flow entry) is added.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import yaml

Scalar = str | int | float | bool | None
INDENT_STEP = 2


def format_scalar(value: Scalar) -> str:
    """YAML text for a scalar: plain where that reads back the same, JSON-quoted otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if "\n" not in value and "#" not in value and value.strip() == value and value:
        try:
            if yaml.safe_load(f"k: {value}") == {"k": value}:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def set_value(text: str, path: Sequence[str], value: Scalar) -> str:
    """Return ``text`` with the scalar at ``path`` (mapping keys) set to ``value``.

    Raises ValueError when the text is not YAML or a step of ``path`` is not a mapping.
    """
    if not path:
        raise ValueError("empty path")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise ValueError("the document is not a mapping")
    node = root
    for depth, key in enumerate(path):
        child = _child(node, key)
        if child is None:
            return _insert(text, node, list(path[depth:]), value)
        if depth == len(path) - 1:
            if not isinstance(child, yaml.ScalarNode):
                raise ValueError(f"'{'.'.join(path)}' is not a single value")
            return text[:child.start_mark.index] + format_scalar(value) + text[child.end_mark.index:]
        if not isinstance(child, yaml.MappingNode):
            raise ValueError(f"'{'.'.join(path[:depth + 1])}' is not a section")
        node = child
    raise AssertionError("unreachable")


def _child(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in node.value:
        if str(k.value) == key:
            return v
    return None


def _insert(text: str, parent: yaml.MappingNode, keys: list[str], value: Scalar) -> str:
    if parent.flow_style or not parent.value:
        return _insert_flow(text, parent, keys, value)
    indent = parent.value[0][0].start_mark.column
    block = _block(keys, value, indent)
    at = _end_of_last_line(text, _last_leaf_end(parent))
    gap = "\n\n" if indent == 0 else "\n"
    return text[:at] + gap + block + text[at:]


def _insert_flow(text: str, parent: yaml.MappingNode, keys: list[str], value: Scalar) -> str:
    entry = format_scalar(value)
    for key in reversed(keys[1:]):
        entry = f"{{{key}: {entry}}}"
    entry = f"{keys[0]}: {entry}"
    close = text.rindex("}", parent.start_mark.index, parent.end_mark.index)
    sep = ", " if parent.value else ""
    return text[:close] + sep + entry + text[close:]


def _block(keys: list[str], value: Scalar, indent: int) -> str:
    lines = []
    for depth, key in enumerate(keys):
        pad = " " * (indent + depth * INDENT_STEP)
        lines.append(f"{pad}{key}: {format_scalar(value)}" if depth == len(keys) - 1 else f"{pad}{key}:")
    return "\n".join(lines)


def _last_leaf_end(node: yaml.Node) -> int:
    """End index of the last scalar or flow collection inside ``node`` (block ends run past comments)."""
    while isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    return node.end_mark.index


def _end_of_last_line(text: str, index: int) -> int:
    """Index of the newline ending the last non-blank line at or before ``index``."""
    while index > 0 and text[index - 1] in " \t\r\n":
        index -= 1
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline
