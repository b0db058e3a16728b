"""Metric names referenced by PromQL expressions, rule files and Grafana dashboards.

A small lexer, not a parser: it removes what cannot be a metric name (strings, label
matchers, range selectors, grouping clauses, Grafana variables, numbers and durations),
then keeps identifiers that are not functions or keywords. Enough to check that every name
an operator's query uses is one the gateway exports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

# Names Prometheus itself creates for every target; the gateway does not export them.
SYNTHETIC = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
)
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9smhdwy]+")
_NUMBER = re.compile(r"(?<![\w:])[0-9][0-9a-fA-FxX.eE+_]*")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"label_values\(\s*(?:([^,()]+?)\s*,)?\s*[A-Za-z_]\w*\s*\)")


def metric_names(expr: str) -> set[str]:
    """Every metric name `expr` selects."""
    text = _STRING.sub(" ", expr)
    names: set[str] = set()
    for m in _LABEL_VALUES.finditer(text):
        if m.group(1):
            names |= metric_names(m.group(1))
    text = _LABEL_VALUES.sub(" ", text)
    text = _GRAFANA_VAR.sub(" ", text)
    while True:
        stripped = _MATCHERS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for m in _IDENT.finditer(text):
        word = m.group(0)
        if word.lower() in KEYWORDS or text[m.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def rule_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(rule name, expression) for every rule in a Prometheus rule file."""
    doc = yaml.safe_load(path.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def recorded_names(path: Path) -> set[str]:
    doc = yaml.safe_load(path.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def dashboard_exprs(path: Path) -> Iterator[tuple[str, str]]:
    """(panel title or variable name, expression) for every query in a Grafana dashboard."""
    dash = json.loads(path.read_text())
    for panel in _panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]
    for var in dash.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and query:
            yield f"${var['name']}", query


def _panels(panels: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def exposition_names(text: str) -> set[str]:
    """Sample names in a text exposition (histograms give *_bucket, *_sum, *_count)."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = _IDENT.match(line)
            if m:
                names.add(m.group(0))
    return names
