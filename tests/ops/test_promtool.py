"""The alert rules, their unit tests and the scrape configuration pass promtool; so does
the gateway's exposition under promtool's metric-naming lint."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from gateway import metrics
from tests.ops.conftest import PROM_DIR, RULE_FILE, RULE_TEST_FILE, touch_every_metric
from tests.ops.prom import require_binary

PROMTOOL_TIMEOUT_S = 120


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run(
        [binary, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid():
    assert_ok(promtool("check", "rules", str(RULE_FILE)))


def test_alert_rule_unit_tests_pass():
    # The test file names its rule file relative to itself, so any working directory works.
    result = promtool("test", "rules", str(RULE_TEST_FILE))
    assert_ok(result)
    assert "SUCCESS" in result.stdout


def test_alert_rule_unit_tests_cover_every_alert():
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULE_FILE.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tests = yaml.safe_load(RULE_TEST_FILE.read_text())["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    silent = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert alerts - fired == set(), "alerts never seen firing in the unit tests"
    assert alerts - silent == set(), "alerts never seen staying silent in the unit tests"


def test_scrape_configuration_is_valid():
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert_ok(result)
    assert "rule files found" in result.stdout


def test_exposition_passes_promtool_lint():
    touch_every_metric()
    body, _ = metrics.render_latest()
    result = promtool("check", "metrics", stdin=body)
    assert_ok(result)


def test_lint_would_flag_a_badly_named_counter():
    """The lint above can fail: promtool rejects a counter without _total."""
    bad = b"# HELP baygate_things Things.\n# TYPE baygate_things counter\nbaygate_things 1\n"
    result = promtool("check", "metrics", stdin=bad)
    if result.returncode == 0:
        pytest.fail("promtool accepted a counter without _total: " + result.stdout)
