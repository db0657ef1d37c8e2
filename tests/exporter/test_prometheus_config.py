"""prometheus/: the shipped rules, their unit tests and the Alertmanager config, checked by the
real promtool and amtool; and the contract's shape of every alert (docs/design.md)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.exporter.tools import (
    ALERTMANAGER_CONFIG,
    INSTALL_SCRIPT,
    PROMETHEUS_CONFIG,
    RULE_TESTS,
    RULES,
    RUNBOOKS,
    amtool,
    promtool,
    run,
)

ALERTS = [
    "HealthgraphConnectionDown",
    "HealthgraphConnectionCheckStale",
    "HealthgraphConnectionAuthFailed",
    "HealthgraphUseFailing",
    "HealthgraphManyConnectionsDown",
    "HealthgraphConnectionPendingTooLong",
    "HealthgraphCertificateExpiringSoon",
    "HealthgraphCredentialsExpiringSoon",
    "HealthgraphConnectorOutage",
    "HealthgraphWebhookDeliveryFailing",
    "HealthgraphExporterDown",
    "HealthgraphSchedulerLagging",
]
SEVERITIES = {"critical", "warning", "info"}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules_lint_fatal() -> None:
    result = run([promtool(), "check", "rules", "--lint-fatal", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = run([promtool(), "test", "rules", str(RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config() -> None:
    # Also resolves rule_files relative to prometheus.yml and checks them.
    result = run([promtool(), "check", "config", str(PROMETHEUS_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_config() -> None:
    result = run([amtool(), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_of_the_design_with_for_severity_and_annotations() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert sorted(by_name) == sorted(ALERTS)
    anchors = runbook_anchors()
    for name, rule in by_name.items():
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == f"docs/runbooks.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/runbooks.md has no section {name}"


def test_connection_down_names_connection_connector_and_consumer() -> None:
    rule = next(rule for rule in rules() if rule["alert"] == "HealthgraphConnectionDown")
    # The expression keeps the identity labels of healthgraph_connection_up (no aggregation).
    assert rule["expr"].split() == [
        "healthgraph_connection_up",
        "==",
        "0",
        "unless",
        "on",
        "(connection_id)",
        "healthgraph_connection_muted",
        "==",
        "1",
    ]
    for label in ("connection", "connector", "consumer"):
        assert f"$labels.{label}" in rule["annotations"]["summary"]


def test_each_alert_is_tested_firing_and_not_firing() -> None:
    document = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    silent: set[str] = set()
    for case in document["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == set(ALERTS)
    assert silent == set(ALERTS)


def test_many_connections_down_inhibits_the_per_connection_pages() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    rule = next(
        rule
        for rule in config["inhibit_rules"]
        if rule["source_matchers"] == ['alertname="HealthgraphManyConnectionsDown"']
    )
    (target,) = rule["target_matchers"]
    assert "HealthgraphConnectionDown" in target
    assert rule["equal"] == ["connector"]
    routed = {route["matchers"][0] for route in config["route"]["routes"]}
    assert routed == {f'severity="{severity}"' for severity in SEVERITIES}


def test_per_connection_alerts_leave_muted_connections_out() -> None:
    per_connection = {
        "HealthgraphConnectionDown",
        "HealthgraphConnectionCheckStale",
        "HealthgraphConnectionAuthFailed",
        "HealthgraphUseFailing",
        "HealthgraphConnectionPendingTooLong",
        "HealthgraphCertificateExpiringSoon",
        "HealthgraphCredentialsExpiringSoon",
    }
    for rule in rules():
        if rule["alert"] in per_connection:
            assert rule["expr"].split()[-6:] == (
                ["unless", "on", "(connection_id)", "healthgraph_connection_muted", "==", "1"]
            ), rule["alert"]


def test_connector_outage_inhibits_its_connections_down_pages() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    rule = next(
        rule
        for rule in config["inhibit_rules"]
        if rule["source_matchers"] == ['alertname="HealthgraphConnectorOutage"']
    )
    assert rule == {
        "source_matchers": ['alertname="HealthgraphConnectorOutage"'],
        "target_matchers": [
            'alertname=~"HealthgraphConnectionDown|HealthgraphManyConnectionsDown"'
        ],
        "equal": ["connector"],
    }


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    anchors = set()
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


def test_install_script_explains_and_fails_without_the_tools(tmp_path: Path) -> None:
    """No tools and no apt-get: exit 1, naming exactly what to install."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in ("bash", "awk", "tr", "id", "head", "cat", "env"):
        found = subprocess.run(
            ["bash", "-c", f"command -v {command}"], capture_output=True, text=True, check=True
        ).stdout.strip()
        (bin_dir / command).symlink_to(found)
    result = subprocess.run(
        [str(bin_dir / "bash"), str(INSTALL_SCRIPT)],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "apt-get install -y prometheus prometheus-alertmanager" in result.stderr


def test_install_script_succeeds_when_the_tools_are_there() -> None:
    promtool()
    amtool()
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [RULES, RULE_TESTS, ALERTMANAGER_CONFIG, PROMETHEUS_CONFIG])
def test_yaml_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
