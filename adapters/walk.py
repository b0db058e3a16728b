"""Reading a message element against an allowed-element tree, into a flat path -> text map.

Each codec declares, as nested dicts, exactly which elements it reads (its schema). `flatten`
walks one element (a transaction, a group header) once, and:
- returns every leaf's text under its path ("Dbtr/Nm"), attributes as "Amt/@Ccy", repeatable
  leaves as lists, and containers as present (`CONTAINER`);
- reports an element the schema does not name, an element given twice and a leaf that holds
  elements, each as FF01 with its path.
Refusing unknown elements is deliberate: an element Baygate does not map would otherwise be
lost in translation without anyone noticing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.checks import Problems
from adapters.xmlsafe import local
from clearing.reasons import Reason

CONTAINER = object()


@dataclass(frozen=True)
class Leaf:
    attrs: tuple[str, ...] = ()
    multi_max: int = 0  # >0: repeatable, at most this many


@dataclass
class Node:
    """Children by qualified tag: (path from the walk's root, child, kind)."""

    children: dict[str, tuple[str, Any, int]] = field(default_factory=dict)


# Child kinds, precomputed so the walk does one tuple unpack per element.
_CONTAINER, _TEXT, _ATTRS, _MULTI = 0, 1, 2, 3


TEXT = Leaf()
AMOUNT = Leaf(attrs=("Ccy",))


def compile_schema(schema: dict[str, Any], namespace: str, prefix: str = "") -> Node:
    """Turn {"Dbtr": {"Nm": TEXT}} into Nodes keyed by qualified tag, paths precomputed."""
    node = Node()
    for name, sub in schema.items():
        path = prefix + name
        if isinstance(sub, Leaf):
            kind = _MULTI if sub.multi_max else _ATTRS if sub.attrs else _TEXT
            node.children[f"{{{namespace}}}{name}"] = (path, sub, kind)
        else:
            child = compile_schema(sub, namespace, path + "/")
            node.children[f"{{{namespace}}}{name}"] = (path, child, _CONTAINER)
    return node


def schema_paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every path a schema can yield (containers and leaves): used to check the mapping docs."""
    paths: set[str] = set()
    for name, sub in schema.items():
        path = prefix + name
        paths.add(path)
        if isinstance(sub, dict):
            paths |= schema_paths(sub, path + "/")
    return paths


def flatten(el: Any, node: Node, probs: Problems, *, strict: bool = True) -> dict[str, Any]:
    """Flat path -> text map of `el`. With strict=False unknown elements are skipped (replies)."""
    out: dict[str, Any] = {}
    _walk(el, node, out, probs, strict)
    return out


def _walk(el: Any, node: Node, out: dict[str, Any], probs: Problems, strict: bool) -> None:
    children = node.children
    for c in el:
        entry = children.get(c.tag)
        if entry is None:
            if strict:
                _unknown(c, node, probs)
            continue
        path, sub, kind = entry
        if kind == _TEXT:
            if path in out or len(c):
                _misplaced(c, path, probs)
            else:
                out[path] = c.text
        elif kind == _CONTAINER:
            if path in out:
                probs.add(Reason.FF01, path, "appears more than once")
            else:
                out[path] = CONTAINER
                _walk(c, sub, out, probs, strict)
        elif (kind == _ATTRS and path in out) or len(c):
            _misplaced(c, path, probs)
        elif kind == _ATTRS:
            out[path] = c.text
            for attr in sub.attrs:
                out[f"{path}/@{attr}"] = c.get(attr)
        else:
            values = out.setdefault(path, [])
            if len(values) >= sub.multi_max:
                probs.add(Reason.FF01, path, f"appears more than {sub.multi_max} times")
            else:
                values.append(c.text)


def _misplaced(c: Any, path: str, probs: Problems) -> None:
    if len(c):
        probs.add(Reason.FF01, path, "must hold text, not elements")
    else:
        probs.add(Reason.FF01, path, "appears more than once")


def _unknown(c: Any, parent: Node, probs: Problems) -> None:
    sibling_path = next(iter(parent.children.values()))[0]
    base = sibling_path.rpartition("/")[0]
    probs.add(
        Reason.FF01,
        f"{base}/{local(c.tag)}" if base else local(c.tag),
        "element is not supported here",
    )
