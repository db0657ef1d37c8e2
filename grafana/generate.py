"""The healthgraph Grafana dashboards, as code: writes grafana/dashboards/*.json.

Run `.venv/bin/python grafana/generate.py` after changing this file and commit the JSON;
tests/grafana checks the committed files equal what this script writes, and runs every
panel's query against a real Prometheus scraping the demo service.

Metric names and labels: the metrics contract in src/exporter/contract.py (docs/design.md).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards"

DATASOURCE_UID = "healthgraph-prometheus"
"""The provisioned Prometheus datasource (grafana/provisioning/datasources/prometheus.yml)."""
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)

HEALTH_UID = "healthgraph-connection-health"
DETAIL_UID = "healthgraph-connection-detail"
CONSUMERS_UID = "healthgraph-consumers-syncs"

TAGS = ["healthgraph"]
PENDING_TOO_LONG_SECONDS = 86400  # HealthgraphConnectionPendingTooLong (prometheus/rules)

# The info metric carries the names; join them onto the connection_id-only families.
NAMES = "connection, connector, consumer"


def named(expression: str, info: str = "healthgraph_connection_info") -> str:
    return f"{expression}\n  * on (connection_id) group_left ({NAMES}) {info}"


# --- small helpers ------------------------------------------------------------------------------


def query(
    expr: str,
    legend: str = "",
    *,
    ref: str = "A",
    instant: bool = False,
    table_format: bool = False,
) -> prom.Dataquery:
    target = prom.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        target = target.legend_format(legend)
    target = target.instant() if instant else target.range()
    if table_format:
        target = target.format(PromQueryFormat.TABLE)
    return target


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def status_mappings() -> list[model.ValueMapping]:
    """healthgraph_connection_up: 1 Connected (green), 0 Connection failure (red)."""
    return [
        model.ValueMap(
            options={
                "1": model.ValueMappingResult(text="Connected", color="green", index=0),
                "0": model.ValueMappingResult(text="Connection failure", color="red", index=1),
            }
        )
    ]


def stat_panel(
    title: str,
    expr: str,
    *,
    description: str,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    unit: str = "short",
    width: int = 4,
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(expr, instant=True))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(4)
        .span(width)
    )


def override(name: str, **properties: Any) -> tuple[str, list[model.DynamicConfigValue]]:
    return name, [
        model.DynamicConfigValue(id_val=key, value=value) for key, value in properties.items()
    ]


def organize(renames: dict[str, str], hidden: Sequence[str], order: Sequence[str]) -> Any:
    return model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": dict.fromkeys(hidden, True),
            "renameByName": renames,
            "indexByName": {name: index for index, name in enumerate(order)},
        },
    )


def dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .timezone("browser")
        .time("now-1h", "now")
        .refresh("30s")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("Healthgraph")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(TAGS)
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
    )


# --- Connection health (landing) ----------------------------------------------------------------


MUTED = "healthgraph_connection_muted == 1"
UNMUTED_UP = f"healthgraph_connection_up unless on (connection_id) {MUTED}"
MUTED_UP = f"healthgraph_connection_up and on (connection_id) {MUTED}"


def connections_table(title: str, description: str, up: str, *, height: int = 12) -> table.Panel:
    """The status, last check and failure reason of the connections `up` selects."""
    status = "Value #A"
    checked = "Value #B"
    reasons = "Value #C"
    hidden = ["Time", "Time 1", "Time 2", "Time 3", reasons, "__name__"]
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(query(up, ref="A", instant=True, table_format=True))
        .with_target(
            query(
                "healthgraph_connection_last_checked_timestamp_seconds * 1000\n"
                f"  and on (connection_id) ({up})",
                ref="B",
                instant=True,
                table_format=True,
            )
        )
        .with_target(
            query(
                named(f"healthgraph_connection_failure_reason and on (connection_id) ({up})"),
                ref="C",
                instant=True,
                table_format=True,
            )
        )
        .with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                {
                    status: "Status",
                    checked: "Last checked",
                    "connector": "Connector",
                    "consumer": "Consumer",
                    "connection": "Connection",
                    "reason": "Failure reason",
                    "connection_id": "ID",
                },
                hidden,
                [status, "connection", "connector", "consumer", checked, "reason", "connection_id"],
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("Status").desc(False)])
        .filterable(True)
        .override_by_name(
            *override(
                "Status",
                mappings=[mapping.to_json() for mapping in status_mappings()],
                **{"custom.cellOptions": {"type": "color-background"}},
            )
        )
        .override_by_name(*override("Last checked", unit="dateTimeFromNow"))
        .height(height)
        .span(24)
    )


def outages_table() -> table.Panel:
    return (
        table.Panel()
        .title("Connector outages")
        .description(
            "Every connector: in outage when enough of its connections fail at once for reasons "
            "other than refused credentials (HEALTHGRAPH_OUTAGE_*); its connections' pages and "
            "webhooks are held meanwhile. Outages first."
        )
        .datasource(DATASOURCE)
        .with_target(query("healthgraph_connector_outage", instant=True, table_format=True))
        .with_transformation(
            organize(
                {"Value": "Outage", "connector": "Connector", "connector_slug": "Slug"},
                ["Time", "__name__"],
                ["Value", "connector", "connector_slug"],
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("Outage").desc(True)])
        .override_by_name(
            *override(
                "Outage",
                mappings=[
                    model.ValueMap(
                        options={
                            "1": model.ValueMappingResult(text="Outage", color="red", index=0),
                            "0": model.ValueMappingResult(text="OK", color="green", index=1),
                        }
                    ).to_json()
                ],
                **{"custom.cellOptions": {"type": "color-background"}},
            )
        )
        .height(8)
        .span(8)
    )


def connection_health() -> dash.Dashboard:
    failing_in_range = (
        "healthgraph_connection_up\n"
        "  unless on (connection_id) (min_over_time(healthgraph_connection_up[$__range]) == 1)\n"
        f"  unless on (connection_id) {MUTED}"
    )
    return (
        dashboard(
            HEALTH_UID,
            "Connection health",
            "Healthgraph landing page: which connections work, which fail and why.",
        )
        .with_row(dash.Row("Now"))
        .with_panel(
            stat_panel(
                "Active consumers",
                "healthgraph_consumers_active",
                description="Consumers with at least one ACTIVE connection.",
            )
        )
        .with_panel(
            stat_panel(
                "Active connections",
                'healthgraph_connections{state="ACTIVE"}',
                description="Connections in the ACTIVE lifecycle state.",
                steps=((None, "green"),),
            )
        )
        .with_panel(
            stat_panel(
                "Pending connections",
                'healthgraph_connections{state="PENDING"}',
                description="Connections waiting to be set up (not checked while PENDING).",
                steps=((None, "green"), (1, "yellow")),
            )
        )
        .with_panel(
            stat_panel(
                "Failed connections",
                'healthgraph_connections{state="FAILED"}',
                description="Connections in the FAILED lifecycle state (authentication failed).",
                steps=((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            stat_panel(
                "Connections down now",
                f"count(healthgraph_connection_up == 0 unless on (connection_id) {MUTED}) "
                "or vector(0)",
                description="Checked connections whose last heartbeat failed, muted ones apart.",
                steps=((None, "green"), (1, "red")),
            )
        )
        .with_panel(
            stat_panel(
                "Muted connections",
                "count(healthgraph_connection_muted) or vector(0)",
                description=(
                    "Connections silenced now by a mute or maintenance window (their own, their "
                    "connector's or their consumer's): no pages, no webhooks. Listed below."
                ),
                steps=((None, "blue"),),
            )
        )
        .with_panel(
            connections_table(
                "Connections",
                "Every checked connection (ACTIVE or FAILED with a known status) that is not "
                "muted: whether its last heartbeat succeeded, when it was checked and why it "
                "fails.",
                UNMUTED_UP,
            )
        )
        .with_panel(
            connections_table(
                "Muted connections",
                "Checked connections silenced by a mute or maintenance window: they page for "
                "nothing and send no webhooks. Until when and why: mutedUntil and muteReason in "
                "GraphQL.",
                MUTED_UP,
                height=6,
            )
        )
        .with_panel(
            statetimeline.Panel()
            .title("Failing connections")
            .description(
                "Connections that failed at least once in the time range, muted ones apart."
            )
            .datasource(DATASOURCE)
            .with_target(query(failing_in_range, "{{consumer}} / {{connection}}"))
            .mappings(status_mappings())
            .thresholds(thresholds((None, "red"), (1, "green")))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .show_value(common.VisibilityMode.NEVER)
            .merge_values(True)
            .height(10)
            .span(24)
        )
        .with_row(dash.Row("Outages and webhooks"))
        .with_panel(outages_table())
        .with_panel(
            timeseries.Panel()
            .title("Webhook backlog")
            .description(
                "Webhook events and deliveries waiting to go out, and the age of the oldest. "
                "A growing age means the product is not hearing about connections "
                "(HealthgraphWebhookDeliveryFailing)."
            )
            .datasource(DATASOURCE)
            .with_target(query("healthgraph_webhook_pending_events", "pending", ref="A"))
            .with_target(
                query("healthgraph_webhook_oldest_pending_age_seconds", "oldest age", ref="B")
            )
            .unit("short")
            .override_by_name(*override("oldest age", unit="s"))
            .height(8)
            .span(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Webhook deliveries per second")
            .description("Delivery attempts by result: delivered, failed (tried again), gave up.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    "sum by (result) "
                    "(rate(healthgraph_webhook_deliveries_total[$__rate_interval]))",
                    "{{result}}",
                )
            )
            .unit("reqps")
            .height(8)
            .span(8)
        )
        .with_row(dash.Row("Checks"))
        .with_panel(
            timeseries.Panel()
            .title("Checks per second")
            .description("Heartbeat checks run by the scheduler, by result and failure reason.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    "sum by (result, reason) (rate(healthgraph_checks_total[$__rate_interval]))",
                    "{{result}} {{reason}}",
                )
            )
            .unit("reqps")
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(30)
            .height(8)
            .span(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Probe latency by kind (p50, p95)")
            .description("How long heartbeat probes take, by probe kind.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    "histogram_quantile(0.95, sum by (kind, le) "
                    "(rate(healthgraph_probe_duration_seconds_bucket[$__rate_interval])))",
                    "p95 {{kind}}",
                    ref="A",
                )
            )
            .with_target(
                query(
                    "histogram_quantile(0.5, sum by (kind, le) "
                    "(rate(healthgraph_probe_duration_seconds_bucket[$__rate_interval])))",
                    "p50 {{kind}}",
                    ref="B",
                )
            )
            .unit("s")
            .height(8)
            .span(8)
        )
        .with_panel(
            timeseries.Panel()
            .title("Scheduler lag")
            .description(
                "How long the most overdue connection has waited for its check, and how many are "
                "overdue. Sustained lag means too few workers."
            )
            .datasource(DATASOURCE)
            .with_target(query("healthgraph_scheduler_lag_seconds", "lag", ref="A"))
            .with_target(
                query("healthgraph_scheduler_overdue_connections", "overdue connections", ref="B")
            )
            .unit("s")
            .override_by_name(*override("overdue connections", unit="short"))
            .height(8)
            .span(8)
        )
    )


# --- Connection detail --------------------------------------------------------------------------


SELECTED = 'connector="$connector", consumer="$consumer", connection="$connection"'
SELECTED_INFO = f"healthgraph_connection_info{{{SELECTED}}}"


def variable(name: str, label: str, selector: str) -> dash.QueryVariable:
    return (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(
            {
                "query": f"label_values({selector}, {name})",
                "refId": f"{name}-variable",
                "qryType": 1,
            }
        )
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def connection_detail() -> dash.Dashboard:
    return (
        dashboard(
            DETAIL_UID,
            "Connection detail",
            "One connection: its heartbeat over time, latency, failure reasons and its uses.",
        )
        .with_variable(variable("connector", "Connector", "healthgraph_connection_info"))
        .with_variable(
            variable("consumer", "Consumer", 'healthgraph_connection_info{connector="$connector"}')
        )
        .with_variable(
            variable(
                "connection",
                "Connection",
                'healthgraph_connection_info{connector="$connector", consumer="$consumer"}',
            )
        )
        .with_panel(
            stat_panel(
                "Status",
                f"healthgraph_connection_up{{{SELECTED}}}",
                description="The last heartbeat: Connected or Connection failure.",
                steps=((None, "red"), (1, "green")),
                width=6,
            ).mappings(status_mappings())
        )
        .with_panel(
            stat_panel(
                "Last checked",
                f"healthgraph_connection_last_checked_timestamp_seconds{{{SELECTED}}} * 1000",
                description="When the connection was last checked.",
                unit="dateTimeFromNow",
                width=6,
            )
        )
        .with_panel(
            stat_panel(
                "Consecutive failures",
                named("healthgraph_connection_consecutive_failures", SELECTED_INFO),
                description="Checks that failed in a row.",
                steps=((None, "green"), (1, "red")),
                width=6,
            )
        )
        .with_panel(
            stat_panel(
                "Lifecycle state",
                f"count by (state) ({SELECTED_INFO})",
                description="ACTIVE, PENDING, FAILED or DISABLED.",
                width=6,
            ).text_mode(common.BigValueTextMode.NAME)
        )
        .with_panel(
            statetimeline.Panel()
            .title("Up over time")
            .description("1 Connected, 0 Connection failure; empty while not checked.")
            .datasource(DATASOURCE)
            .with_target(query(f"healthgraph_connection_up{{{SELECTED}}}", "{{connection}}"))
            .mappings(status_mappings())
            .thresholds(thresholds((None, "red"), (1, "green")))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .show_value(common.VisibilityMode.NEVER)
            .height(6)
            .span(24)
        )
        .with_panel(
            timeseries.Panel()
            .title("Check latency")
            .description("Duration of each check (the last check's, as scraped).")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    named("healthgraph_connection_check_duration_seconds", SELECTED_INFO),
                    "duration",
                )
            )
            .unit("s")
            .height(8)
            .span(12)
        )
        .with_panel(
            statetimeline.Panel()
            .title("Failure reasons")
            .description("The reason the last check failed, while the connection fails.")
            .datasource(DATASOURCE)
            .with_target(
                query(named("healthgraph_connection_failure_reason", SELECTED_INFO), "{{reason}}")
            )
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.FIXED).fixed_color("red"))
            .show_value(common.VisibilityMode.NEVER)
            .height(8)
            .span(12)
        )
        .with_panel(
            table.Panel()
            .title("Uses of this connection")
            .description("Syncs, livesyncs and task integrations running on this connection.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    f"healthgraph_use_up\n  * on (connection_id) group_left () {SELECTED_INFO}",
                    ref="A",
                    instant=True,
                    table_format=True,
                )
            )
            .with_transformation(
                organize(
                    {"Value": "Health", "use": "Use", "kind": "Kind", "use_id": "ID"},
                    ["Time", "connection_id", "__name__"],
                    ["Value", "use", "kind", "use_id"],
                )
            )
            .override_by_name(
                *override(
                    "Health",
                    mappings=[
                        model.ValueMap(
                            options={
                                "1": model.ValueMappingResult(
                                    text="Healthy", color="green", index=0
                                ),
                                "0": model.ValueMappingResult(text="Failed", color="red", index=1),
                            }
                        ).to_json()
                    ],
                    **{"custom.cellOptions": {"type": "color-background"}},
                )
            )
            .height(8)
            .span(12)
        )
        .with_panel(
            statetimeline.Panel()
            .title("Use health over time")
            .description("1 Healthy, 0 Failed, per use of this connection.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    f"healthgraph_use_up\n  * on (connection_id) group_left () {SELECTED_INFO}",
                    "{{use}}",
                )
            )
            .mappings(
                [
                    model.ValueMap(
                        options={
                            "1": model.ValueMappingResult(text="Healthy", color="green", index=0),
                            "0": model.ValueMappingResult(text="Failed", color="red", index=1),
                        }
                    )
                ]
            )
            .thresholds(thresholds((None, "red"), (1, "green")))
            .color_scheme(dash.FieldColor().mode(model.FieldColorModeId.THRESHOLDS))
            .show_value(common.VisibilityMode.NEVER)
            .height(8)
            .span(12)
        )
    )


# --- Consumers and syncs ------------------------------------------------------------------------


def per_category(expression: str) -> str:
    """`expression` (counted by category), and 0 for every other category of a connection, so
    that each row of a merged table has every column."""
    return f"{expression}\n  or 0 * count by (category) (healthgraph_connection_info)"


def unified_apis_table() -> table.Panel:
    """The overview per Unified API (the connector category), as GraphQL's Overview.categories
    has it, plus the heartbeats failing now."""
    info = "healthgraph_connection_info"
    columns = {
        "Active connections": f'count by (category) ({info}{{state="ACTIVE"}})',
        "Pending": f'count by (category) ({info}{{state="PENDING"}})',
        "Failed to authenticate": f'count by (category) ({info}{{state="FAILED"}})',
        "Active consumers": (
            f'count by (category) (count by (category, consumer_id) ({info}{{state="ACTIVE"}}))'
        ),
        "Heartbeat failing": (
            "count by (category) ((healthgraph_connection_up == 0)\n"
            f"  * on (connection_id) group_left (category) {info})"
        ),
    }
    refs = [chr(ord("A") + index) for index in range(len(columns))]
    panel = (
        table.Panel()
        .title("Unified APIs")
        .description(
            "Per connector category: ACTIVE, PENDING and FAILED connections, consumers with an "
            "ACTIVE connection to one of its connectors (each counted once), and connections "
            "whose heartbeat fails now."
        )
        .datasource(DATASOURCE)
    )
    for ref, expr in zip(refs, columns.values(), strict=True):
        panel = panel.with_target(
            query(per_category(expr), ref=ref, instant=True, table_format=True)
        )
    values = [f"Value #{ref}" for ref in refs]
    return (
        panel.with_transformation(model.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            organize(
                {"category": "Unified API", **dict(zip(values, columns, strict=True))},
                ["Time"],
                ["category", *values],
            )
        )
        .sort_by([common_builder.TableSortByFieldState().display_name("Unified API").desc(False)])
        .override_by_name(
            *override(
                "Failed to authenticate",
                thresholds=thresholds((None, "green"), (1, "red")).build(),
                **{"custom.cellOptions": {"type": "color-text"}},
            )
        )
        .override_by_name(
            *override(
                "Heartbeat failing",
                thresholds=thresholds((None, "green"), (1, "red")).build(),
                **{"custom.cellOptions": {"type": "color-text"}},
            )
        )
        .height(8)
        .span(24)
    )


def consumers_and_syncs() -> dash.Dashboard:
    consumer_issues = [
        (
            "failing connection",
            "count(count by (consumer_id) ((healthgraph_connection_up == 0)\n"
            "  * on (connection_id) group_left (consumer_id) healthgraph_connection_info))"
            " or vector(0)",
        ),
        ("no active connection", "healthgraph_consumers - healthgraph_consumers_active"),
        (
            "connection pending",
            'count(count by (consumer_id) (healthgraph_connection_info{state="PENDING"}))'
            " or vector(0)",
        ),
        (
            "failing use",
            "count(count by (consumer_id) ((healthgraph_use_up == 0)\n"
            "  * on (connection_id) group_left (consumer_id) healthgraph_connection_info))"
            " or vector(0)",
        ),
    ]
    issues = (
        stat.Panel()
        .title("Consumers with issues, by issue type")
        .description(
            "Consumers with at least one failing connection, without any ACTIVE connection, "
            "with a connection still PENDING, or with a failing use. A consumer can count "
            "under several types."
        )
        .datasource(DATASOURCE)
        .unit("short")
        .thresholds(thresholds((None, "green"), (1, "orange")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]))
        .height(5)
        .span(24)
    )
    for index, (issue, expr) in enumerate(consumer_issues):
        issues = issues.with_target(query(expr, issue, ref=chr(ord("A") + index), instant=True))
    pending_age = named("time() - healthgraph_connection_pending_since_timestamp_seconds")
    return (
        dashboard(
            CONSUMERS_UID,
            "Consumers and syncs",
            "Which consumers need attention, and how far each sync is rolled out.",
        )
        .with_panel(issues)
        .with_panel(
            table.Panel()
            .title("Failing connections by consumer")
            .description("Consumers with connections whose last heartbeat failed.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    "sort_desc(count by (consumer) (healthgraph_connection_up == 0))",
                    instant=True,
                    table_format=True,
                )
            )
            .with_transformation(
                organize(
                    {"consumer": "Consumer", "Value": "Failing connections"},
                    ["Time"],
                    ["consumer", "Value"],
                )
            )
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Consumers: total vs active")
            .description("Consumers, and those with at least one ACTIVE connection.")
            .datasource(DATASOURCE)
            .with_target(query("healthgraph_consumers", "consumers", ref="A"))
            .with_target(query("healthgraph_consumers_active", "active consumers", ref="B"))
            .unit("short")
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Activation ratio per sync")
            .description("Share of each sync's activations that are active.")
            .datasource(DATASOURCE)
            .with_target(query("healthgraph_sync_activation_ratio", "{{sync}}"))
            .unit("percentunit")
            .min(0)
            .max(1)
            .height(8)
            .span(12)
        )
        .with_panel(
            timeseries.Panel()
            .title("Active vs inactive activations")
            .description("Sync activations by whether they are active.")
            .datasource(DATASOURCE)
            .with_target(
                query(
                    'sum by (sync) (healthgraph_sync_activations{active="true"})',
                    "{{sync}} active",
                    ref="A",
                )
            )
            .with_target(
                query(
                    'sum by (sync) (healthgraph_sync_activations{active="false"})',
                    "{{sync}} inactive",
                    ref="B",
                )
            )
            .unit("short")
            .draw_style(common.GraphDrawStyle.BARS)
            .stacking(common_builder.StackingConfig().mode(common.StackingMode.NORMAL))
            .fill_opacity(60)
            .height(8)
            .span(12)
        )
        .with_panel(
            stat_panel(
                "Connections pending too long",
                f"count(time() - healthgraph_connection_pending_since_timestamp_seconds"
                f" > {PENDING_TOO_LONG_SECONDS}) or vector(0)",
                description=(
                    "PENDING for more than a day (the HealthgraphConnectionPendingTooLong alert)."
                ),
                steps=((None, "green"), (1, "orange")),
                width=6,
            ).height(8)
        )
        .with_panel(
            table.Panel()
            .title("Pending connections, longest first")
            .description(
                f"How long each PENDING connection has waited; orange past "
                f"{PENDING_TOO_LONG_SECONDS // 3600} h."
            )
            .datasource(DATASOURCE)
            .with_target(query(f"sort_desc({pending_age})", instant=True, table_format=True))
            .with_transformation(
                organize(
                    {
                        "Value": "Pending for",
                        "connection": "Connection",
                        "connector": "Connector",
                        "consumer": "Consumer",
                    },
                    ["Time", "connection_id"],
                    ["connection", "connector", "consumer", "Value"],
                )
            )
            .override_by_name(
                *override(
                    "Pending for",
                    unit="s",
                    thresholds=thresholds(
                        (None, "green"), (PENDING_TOO_LONG_SECONDS, "orange")
                    ).build(),
                    **{"custom.cellOptions": {"type": "color-text"}},
                )
            )
            .height(8)
            .span(18)
        )
        .with_panel(unified_apis_table())
    )


# --- output -------------------------------------------------------------------------------------


DASHBOARDS = {
    "connection-health.json": connection_health,
    "connection-detail.json": connection_detail,
    "consumers-and-syncs.json": consumers_and_syncs,
}


def render(build: Any) -> str:
    """A dashboard as the JSON committed under grafana/dashboards (stable key order)."""
    data = json.loads(JSONEncoder(sort_keys=True).encode(build().build()))
    # Stable panel ids (links and "view panel" URLs use them), in layout order.
    for number, panel in enumerate(data["panels"], start=1):
        panel["id"] = number
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[str, str]:
    return {name: render(build) for name, build in DASHBOARDS.items()}


def main(argv: Sequence[str] = ()) -> int:
    OUTPUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUTPUT / name).write_text(text)
        print(f"wrote {(OUTPUT / name).relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
