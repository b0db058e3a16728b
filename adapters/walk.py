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


class Reader:
    """`flatten` against one schema, remembering the plan of each valid shape it has seen.

    Messages repeat themselves: a bulk message holds hundreds of transactions of the same
    shape. A shape is the pre-order sequence of (tag, number of children), which fixes the
    tree, so every structural check (unknown, repeated, misplaced elements) has the same
    outcome for the same shape. The first transaction of a shape takes the exact walk; later
    ones only read their texts into the remembered paths. Shapes with problems are never
    remembered; at most `shapes_max` shapes are kept.
    """

    def __init__(self, schema: dict[str, Any], namespace: str, shapes_max: int = 256) -> None:
        self.node = compile_schema(schema, namespace)
        self.shapes_max = shapes_max
        self._plans: dict[tuple[tuple[str, ...], tuple[int, ...]], _Plan] = {}

    def flatten(self, el: Any, probs: Problems) -> dict[str, Any]:
        els = list(el.iter())
        key = (tuple([e.tag for e in els]), tuple([len(e) for e in els]))
        plan = self._plans.get(key)
        if plan is not None:
            return plan.apply(els)
        before = len(probs.items)
        out = flatten(el, self.node, probs)
        if len(probs.items) == before and len(self._plans) < self.shapes_max:
            self._plans[key] = _Plan(el, self.node)
        return out


class _Plan:
    """Where each element of one shape goes in the flat map (indices into `el.iter()`)."""

    def __init__(self, el: Any, node: Node) -> None:
        self.base: dict[str, Any] = {}
        self.leaf_at: list[int] = []
        self.leaf_paths: list[str] = []
        self.attrs: list[tuple[int, str, str]] = []
        self.multi: dict[str, list[int]] = {}
        position = 0

        def visit(parent: Any, parent_node: Node) -> None:
            nonlocal position
            for c in parent:
                position += 1
                path, sub, kind = parent_node.children[c.tag]
                if kind == _CONTAINER:
                    self.base[path] = CONTAINER
                    visit(c, sub)
                elif kind == _MULTI:
                    self.multi.setdefault(path, []).append(position)
                else:
                    self.leaf_at.append(position)
                    self.leaf_paths.append(path)
                    for attr in sub.attrs:
                        self.attrs.append((position, attr, f"{path}/@{attr}"))

        visit(el, node)

    def apply(self, els: list[Any]) -> dict[str, Any]:
        out = self.base.copy()
        out.update(zip(self.leaf_paths, [els[i].text for i in self.leaf_at], strict=True))
        for i, attr, key in self.attrs:
            out[key] = els[i].get(attr)
        for path, at in self.multi.items():
            out[path] = [els[i].text for i in at]
        return out
