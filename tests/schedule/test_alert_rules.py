"""The example Prometheus alert rules (examples/alerts): promtool accepts them, their unit tests feed series and see
each alert fire, and every metric they use is one the daemon exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reportctl.schedule.metrics import DaemonMetrics

ALERTS = Path(__file__).resolve().parents[2] / "examples" / "alerts"
RULES = ALERTS / "reportctl-rules.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
BROKER_METRICS = {"reportctl_broker_up", "reportctl_workers"}
"""Registered by the first broker poll, so absent from a fresh ``DaemonMetrics``."""

needs_promtool = pytest.mark.skipif(
    not Path(PROMTOOL).is_file(), reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], cwd=ALERTS, capture_output=True, text=True, timeout=120, check=False)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


@needs_promtool
def test_the_rules_unit_tests_see_every_alert_fire() -> None:
    tested = _promtool("test", "rules", "reportctl-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load((ALERTS / "reportctl-rules.test.yml").read_text())["tests"]
    firing = {
        case["alertname"] for test in cases for case in test["alert_rule_test"] if case.get("exp_alerts")
    }  # each alert has a case where it fires, and its cases where it does not yet
    assert firing == {str(rule["alert"]) for rule in _alerts()}


def test_the_rules_use_only_metrics_the_daemon_exports() -> None:
    families = list(DaemonMetrics().registry.collect())  # a counter's samples are NAME_total, once it has any
    exported = {family.name + ("_total" if family.type == "counter" else "") for family in families}
    used = {name for rule in _alerts() for name in re.findall(r"\breportctl_[a-z_]+", str(rule["expr"]))}
    assert used, "no reportctl metric in the rules"
    assert used - BROKER_METRICS <= exported, used - BROKER_METRICS - exported
