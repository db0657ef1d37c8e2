"""Every dashboard panel against reality: the demo service scraped by the real Prometheus.

The demo service (SQLite, scheduler on) serves /metrics; `prometheus` scrapes it every second
with the shipped rules. For each panel target in each dashboard the template variables are
replaced with real values (from label_values against this Prometheus), Grafana's
$__rate_interval / $__interval / $__range with concrete durations, and the expression runs
through Prometheus's query API (instant or range, as the target says): each must parse and
return data. A panel that shows nothing is a failure.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from healthgraph.app import create_app
from healthgraph.settings import Settings
from store.crypto import generate_key
from tests.e2e.stack import LOOPBACK, Process, process, prometheus_config, wait_query
from tests.exporter.tools import RULES, prometheus
from tests.grafana.dashboards import committed, targets
from tests.servers import free_port, running

READY_SECONDS = 30.0
GRAFANA_MACROS = {
    # What Grafana would put there for a 1 h dashboard at 15 s scrapes, shortened to the data
    # this test has: a few seconds of 1 s scrapes.
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
}
RANGE_SECONDS = 30
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.DOTALL)

# Until these hold, some panel would be empty only because the service just started.
DATA_READY = (
    "count(healthgraph_connection_up) > 0",
    "healthgraph_connection_failure_reason",
    "healthgraph_use_up == 0",
    "count_over_time(healthgraph_checks_total[1m]) >= 3",
    "count_over_time(healthgraph_probe_duration_seconds_count[1m]) >= 3",
)


def substitute(expression: str, values: dict[str, str]) -> str:
    for macro, duration in GRAFANA_MACROS.items():
        expression = expression.replace(macro, duration)

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise AssertionError(f"unresolved variable ${name} in {expression!r}")
        return values[name]

    return VARIABLE.sub(value, expression)


class Prometheus:
    def __init__(self, running: Process, client: httpx.AsyncClient) -> None:
        self.url = running.url
        self.client = client

    async def api(self, path: str, params: dict[str, Any]) -> Any:
        response = await self.client.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def run(self, target: dict[str, Any], expression: str) -> list[dict[str, Any]]:
        now = time.time()
        if target.get("instant"):
            data = await self.api("query", {"query": expression, "time": now})
        else:
            data = await self.api(
                "query_range",
                {"query": expression, "start": now - RANGE_SECONDS, "end": now, "step": 1},
            )
        result: list[dict[str, Any]] = data["result"]
        return result

    async def label_values(self, query: str, values: dict[str, str]) -> list[str]:
        match = LABEL_VALUES.match(substitute(query, values).strip())
        assert match, f"not a label_values() query: {query}"
        selector, label = match.groups()
        found: list[str] = await self.api(f"label/{label}/values", {"match[]": selector})
        return found


async def choices(
    prometheus: Prometheus, variables: list[dict[str, Any]], chosen: dict[str, str]
) -> list[dict[str, str]]:
    """Every combination of the chained variables' values, in the order Grafana offers them."""
    if not variables:
        return [dict(chosen)]
    first, rest = variables[0], variables[1:]
    query = first["query"]["query"] if isinstance(first["query"], dict) else first["query"]
    values = await prometheus.label_values(query, chosen)
    assert values, f"variable ${first['name']} has no values: {query}"
    combinations = []
    for value in sorted(values):
        combinations += await choices(prometheus, rest, {**chosen, first["name"]: value})
    return combinations


async def empty_targets(
    prometheus: Prometheus, dashboard: dict[str, Any], values: dict[str, str]
) -> list[str]:
    problems = []
    for panel, target in targets(dashboard):
        expression = substitute(target["expr"], values)
        where = f"{dashboard['title']} / {panel['title']} / {target['refId']}"
        try:
            result = await prometheus.run(target, expression)
        except AssertionError as error:
            problems.append(f"{where}: does not run: {error}\n    {expression}")
            continue
        if not result:
            problems.append(f"{where}: no data\n    {expression}")
    return problems


async def test_every_panel_returns_data_from_the_demo_service(tmp_path: Path) -> None:
    prometheus_bin = prometheus()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'healthgraph.db'}",
        port=free_port(),
        secret_keys=(generate_key(),),
    )
    async with running(create_app(settings, demo=True, scheduler=True), settings.port) as app:
        shutil.copy(RULES, tmp_path / "rules.yml")
        config = prometheus_config(
            tmp_path,
            scrape=app.removeprefix("http://"),
            alertmanager=f"{LOOPBACK}:{free_port()}",  # nothing listens: alerts are not the point
        )
        port = free_port()
        url = f"http://{LOOPBACK}:{port}"
        command = [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ]
        async with (
            process("prometheus", url, command, tmp_path / "prometheus.log") as running_prometheus,
            httpx.AsyncClient(timeout=5) as client,
        ):
            for expression in DATA_READY:
                await wait_query(running_prometheus, expression, READY_SECONDS)
            prom = Prometheus(running_prometheus, client)
            problems: list[str] = []
            for dashboard in committed().values():
                variables = [
                    v
                    for v in dashboard.get("templating", {}).get("list", [])
                    if v["type"] == "query"
                ]
                if not variables:
                    problems += await empty_targets(prom, dashboard, {})
                    continue
                # A detail dashboard must show data in every panel for at least one real
                # selection (a failing connection with uses); otherwise the gaps of the
                # selection that came closest are reported.
                best: list[str] | None = None
                for values in await choices(prom, variables, {}):
                    gaps = await empty_targets(prom, dashboard, values)
                    if not gaps:
                        break
                    if best is None or len(gaps) < len(best) - 1:
                        best = [f"with {values}:", *gaps]
                else:
                    problems += best or [f"{dashboard['title']}: no variable values"]
            assert not problems, "panels that would show nothing:\n" + "\n".join(problems)


def test_variable_substitution() -> None:
    assert (
        substitute(
            'rate(x{a="$connector", b="${consumer}"}[$__rate_interval])',
            {"connector": "Stripe", "consumer": "Acme"},
        )
        == 'rate(x{a="Stripe", b="Acme"}[1m])'
    )
