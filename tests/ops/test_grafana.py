"""Grafana provisioning: the dashboard is loadable and points at the provisioned datasource."""

from __future__ import annotations

import json

import yaml

from tests.ops.conftest import DASHBOARDS, GRAFANA_DIR

DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "baygate.yaml"
PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "baygate.yaml"
REQUIRED_TOPICS = {
    "baygate_transfers_total": "throughput by corridor",
    "baygate_stage_latency_seconds_bucket": "latency percentiles",
    "baygate_rejections_total": "rejections by reason",
    "baygate_cap_utilisation_ratio": "cap utilisation per participant",
    "baygate_window_open_age_seconds": "window state",
    "baygate_settlements": "settlement state",
    "baygate_delivery_failures_total": "delivery health",
}


def _panels(panels):
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def test_provisioning_files_have_the_shape_grafana_expects():
    ds = yaml.safe_load(DATASOURCES.read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"] and source["url"].startswith("http")
    providers = yaml.safe_load(PROVIDERS.read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_dashboard_panels_use_the_provisioned_datasource_and_do_not_overlap():
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
        panels = list(_panels(dash["panels"]))
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            g = panel["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
            area = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not (area & cells), f"panel {panel['title']!r} overlaps another"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid, panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), panel["title"]
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
        for var in dash["templating"]["list"]:
            assert var["datasource"]["uid"] == uid


def test_dashboard_covers_what_operators_watch():
    for path in DASHBOARDS:
        text = json.dumps(
            [
                t["expr"]
                for p in _panels(json.loads(path.read_text())["panels"])
                for t in p.get("targets", [])
            ]
        )
        missing = {topic for name, topic in REQUIRED_TOPICS.items() if name not in text}
        assert missing == set(), f"{path.name} lacks panels for {sorted(missing)}"
