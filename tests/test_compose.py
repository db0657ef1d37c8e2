"""docker-compose.yml, checked statically: Docker does not run in CI or on the dev machines.

Every mounted file exists, every image is pinned (or built here), ports are published on
loopback only, every long-running service has a health check, and the names Prometheus and
Grafana address (prometheus.yml targets, the datasource URL) are services of the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = {"migrate"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def volume_source(volume: str | dict[str, Any]) -> str:
    if isinstance(volume, dict):
        return str(volume.get("source", ""))
    return volume.split(":", 1)[0]


def test_the_stack_is_there(services: dict[str, dict[str, Any]]) -> None:
    expected = {
        "postgres",
        "migrate",
        "healthgraph",
        "worker",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert expected <= set(services)


def test_every_bind_mount_exists_in_the_repository(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    named = set(compose.get("volumes") or {})
    missing = []
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume_source(volume)
            if source.startswith((".", "/")):
                if not (ROOT / source).resolve().exists():
                    missing.append(f"{name}: {source}")
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert not missing, f"mounted but not in the repository: {missing}"


def test_every_service_has_a_pinned_image_or_a_build(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (ROOT / context / dockerfile).exists(), f"{name}: no {dockerfile}"
            continue
        image = service.get("image", "")
        assert image, f"{name}: neither image nor build"
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_published_ports_bind_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not on loopback"


def test_long_running_services_have_health_checks(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name}: one-shot must not restart"
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no health check"


def test_secret_keys_come_from_the_environment(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    assert "${HEALTHGRAPH_SECRET_KEYS:?" in text  # required, never a default key in the file
    for name in ("healthgraph", "worker", "migrate"):
        environment = compose["services"][name]["environment"]
        assert environment["HEALTHGRAPH_SECRET_KEYS"].startswith("${HEALTHGRAPH_SECRET_KEYS")


def test_app_services_wait_for_the_migration(services: dict[str, dict[str, Any]]) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("healthgraph", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }


def test_addressed_names_are_services(services: dict[str, dict[str, Any]]) -> None:
    """prometheus.yml's targets and the Grafana datasource reach services of this file."""
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    addressed = [
        target
        for job in prometheus["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    addressed += [
        target
        for manager in prometheus["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    addressed += [re.sub(r"^https?://", "", source["url"]) for source in datasource["datasources"]]
    for target in addressed:
        host = target.rsplit(":", 1)[0]
        assert host in services, f"{target}: no service {host} in docker-compose.yml"


def test_grafana_mounts_provisioning_and_dashboards(services: dict[str, dict[str, Any]]) -> None:
    provider = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "healthgraph.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    mounts = {volume_source(v): v.split(":")[1] for v in services["grafana"]["volumes"] if ":" in v}
    assert mounts.get("./grafana/dashboards") == path
    assert mounts.get("./grafana/provisioning/datasources") == (
        "/etc/grafana/provisioning/datasources"
    )
    assert mounts.get("./grafana/provisioning/dashboards") == "/etc/grafana/provisioning/dashboards"
