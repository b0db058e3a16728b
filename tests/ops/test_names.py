"""Dashboards, alert rules and docs speak only of metrics the gateway exports."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.ops.conftest import DASHBOARDS, OPERATIONS_DOC, RULE_FILE
from tests.ops.promql import (
    SYNTHETIC,
    dashboard_exprs,
    exposition_names,
    metric_names,
    recorded_names,
    rule_exprs,
)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="baygate"} == 0', {"up"}),
        (
            "histogram_quantile(0.99, sum by (le, stage) (rate(baygate_stage_latency_seconds_bucket[5m]))) > 1",
            {"baygate_stage_latency_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) by (x) / on (x) group_left(y) b_info offset 1h and bool c",
            {"a_total", "b_info", "c"},
        ),
        (
            'time() - max without (instance) (baygate_snapshot_timestamp_seconds{job=~"b.*"})',
            {"baygate_snapshot_timestamp_seconds"},
        ),
        (
            'max by (p) (baygate_e2e_x{p=~"$participant", c="${currency}"}[$__rate_interval])',
            {"baygate_e2e_x"},
        ),
        ("label_values(baygate_position_minor, participant)", {"baygate_position_minor"}),
        ('sum(rate(x_total{le="1e3"}[1m])) * 1e3 + 0x1f', {"x_total"}),
    ],
)
def test_names_are_extracted_from_promql(expr, names):
    assert metric_names(expr) == names


def _unknown(exprs, exported: set[str]) -> list[str]:
    return [
        f"{where}: {name}"
        for where, expr in exprs
        for name in sorted(metric_names(expr))
        if name not in exported
    ]


def test_a_misspelt_metric_is_caught(exposition):
    exported = exposition_names(exposition)
    bad = [("panel", "sum(rate(baygate_transfer_total[5m]))")]
    assert _unknown(bad, exported) == ["panel: baygate_transfer_total"]


def test_alert_rules_use_only_exported_metrics(exposition):
    exported = exposition_names(exposition) | SYNTHETIC | recorded_names(RULE_FILE)
    exprs = list(rule_exprs(RULE_FILE))
    assert len(exprs) >= 10
    assert _unknown(exprs, exported) == []


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_only_exported_metrics(dashboard, exposition):
    exported = exposition_names(exposition) | SYNTHETIC | recorded_names(RULE_FILE)
    exprs = list(dashboard_exprs(dashboard))
    assert len(exprs) >= 20
    assert _unknown(exprs, exported) == []


def test_dashboards_exist():
    assert [p.name for p in DASHBOARDS] == ["baygate-overview.json"]


def test_every_exported_metric_is_documented(exposition):
    doc = OPERATIONS_DOC.read_text()
    families = {
        re.sub(r"_(bucket|sum|count)$", "", n)
        for n in exposition_names(exposition)
        if n.startswith("baygate_")
    }
    missing = sorted(f for f in families if f"`{f}`" not in doc)
    assert missing == []


def test_every_alert_has_a_runbook_section():
    doc = OPERATIONS_DOC.read_text()
    headings = set(re.findall(r"^#{2,4} (Baygate\w+)\s*$", doc, flags=re.M))
    rules = yaml.safe_load(RULE_FILE.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule["alert"]
            assert name in headings, f"docs/operations.md has no section for {name}"
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert anchor == name.lower()
