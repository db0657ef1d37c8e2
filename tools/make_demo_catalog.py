"""Regenerate src/healthgraph/demo/catalog.yaml: python tools/make_demo_catalog.py"""

from __future__ import annotations

from pathlib import Path

import yaml

BASE = "$DEMO_BASE_URL"
CONNECTORS = [
    ("quickbooks", "QuickBooks Online", "accounting"),
    ("xero", "Xero", "accounting"),
    ("netsuite", "NetSuite", "accounting"),
    ("stripe", "Stripe", "invoicing"),
    ("zoho-invoice", "Zoho Invoice", "invoicing"),
    ("google-drive", "Google Drive", "storage"),
    ("jira", "Jira", "ticketing"),
    ("salesforce", "Salesforce", "crm"),
]
COMPANIES = [
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Wonka Industries",
    "Tyrell Corp",
    "Cyberdyne",
    "Soylent",
    "Aperture Science",
    "Black Mesa",
    "Vandelay Industries",
    "Pied Piper",
    "Dunder Mifflin",
    "Gringotts",
    "Oceanic Airlines",
    "Monarch Solutions",
    "Nakatomi Trading",
    "Sirius Cybernetics",
    "Blue Sun",
    "Weyland-Yutani",
    "Massive Dynamic",
    "Prestige Worldwide",
]
# Which demo endpoint a connection's heartbeat calls, by position: mostly healthy.
BEHAVIOUR = ["healthy"] * 6 + ["failing", "slow", "flapping", "unauthorized"]
# Consumers that connected QuickBooks through the demo's own OAuth2 provider (healthgraph/demo/
# oauth.py), each with a grant seeded from DEMO_OAUTH_SEED_<n>; the demo revokes the last one.
OAUTH_CONSUMERS = 4
OAUTH_CONNECTOR = {
    "slug": "quickbooks-oauth",
    "template": "quickbooks",
    "name": "QuickBooks Online (OAuth2)",
    "heartbeat": {
        "url": f"{BASE}/demo/oauth/v3/company/{{params.realm_id}}/companyinfo/{{params.realm_id}}",
        "timeout_seconds": 5,
    },
    "oauth2": {
        "client_id": "healthgraph-demo",
        "token_url": f"{BASE}/demo/oauth/token",
        "client_secret_env": "DEMO_OAUTH_CLIENT_SECRET",
    },
}
USE_KINDS = [
    ("hypersync", "Hypersyncs"),
    ("task_integration", "Task integrations"),
    ("livesync", "Cloud files"),
]


def slugify(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def main() -> None:
    connectors = [
        {
            "slug": slug,
            "name": name,
            "category": category,
            "heartbeat": {
                "kind": "http",
                "method": "GET",
                "url": f"{BASE}/demo/healthy/{{external_id}}",
                "expected_status": [200],
                "timeout_seconds": 5,
            },
        }
        for slug, name, category in CONNECTORS
    ]
    connectors.append(OAUTH_CONNECTOR)
    consumers = []
    n = 0
    for index, company in enumerate(COMPANIES):
        external_id = slugify(company)
        consumer = {
            "external_id": external_id,
            "name": company,
            "email": f"ops@{external_id}.example",
        }
        connections = []
        if index % 6 != 5:  # every sixth consumer never started a connection
            count = 2 + index % 2
            for offset in range(count):
                slug, connector_name, _ = CONNECTORS[(index + offset * 3) % len(CONNECTORS)]
                n += 1
                inbound = n % 7 == 0
                state = "active"
                if n % 11 == 0:
                    state = "pending"
                elif n % 13 == 0:
                    state = "failed"
                connection = {
                    "name": f"{company} {connector_name}",
                    "connector": slug,
                    "direction": "inbound" if inbound else "outbound",
                    "state": state,
                    "check_interval_seconds": 15,
                }
                if not inbound:
                    behaviour = BEHAVIOUR[n % len(BEHAVIOUR)]
                    if behaviour != "healthy":
                        connection["heartbeat"] = {
                            "url": f"{BASE}/demo/{behaviour}/{{external_id}}"
                        }
                uses = []
                for k in range(n % 5):
                    kind = USE_KINDS[(n + k) % 3][0]
                    uses.append(
                        {"kind": kind, "name": f"{connector_name} {kind.replace('_', ' ')} {k + 1}"}
                    )
                connection["uses"] = uses
                connections.append(connection)
        if index < OAUTH_CONSUMERS:
            connections.append(
                {
                    "name": f"{company} QuickBooks (OAuth2)",
                    "connector": OAUTH_CONNECTOR["slug"],
                    "direction": "outbound",
                    "state": "active",
                    "check_interval_seconds": 60,
                    "params": {"realm_id": f"9130{index + 1:04d}"},
                    "credentials": {
                        "kind": "oauth2",
                        "refresh_token_env": f"DEMO_OAUTH_SEED_{index + 1}",
                    },
                    "uses": [{"kind": "hypersync", "name": "Invoices from QuickBooks"}],
                }
            )
        consumer["connections"] = connections
        consumers.append(consumer)
    ids = [c["external_id"] for c in consumers]
    steps = [
        {"connection": "incomplete", "mapping": "incomplete", "configuration": "incomplete"},
        {"connection": "complete", "mapping": "incomplete", "configuration": "incomplete"},
        {"connection": "complete", "mapping": "complete", "configuration": "incomplete"},
        {"connection": "complete", "mapping": "complete", "configuration": "complete"},
    ]
    syncs = [
        {"name": "Invoices to accounting", "requires": ["stripe", "quickbooks"]},
        {"name": "Expenses to ledger", "requires": ["xero"]},
        {"name": "Tickets to CRM", "requires": ["jira", "salesforce"]},
    ]
    active_slugs = {
        c["external_id"]: {x["connector"] for x in c["connections"] if x["state"] == "active"}
        for c in consumers
    }
    for s_index, sync in enumerate(syncs):
        # Activations past the connection step go to consumers connected to every required
        # connector, so the demo shows active syncs beside ones stuck at each later step.
        ready = [i for i in ids if set(sync["requires"]) <= active_slugs[i]]
        others = [i for i in ids if i not in ready]
        activations = []
        for k in range(8):
            pattern = steps[(s_index + k) % 4]
            pool = ready if pattern["connection"] == "complete" and ready else others
            consumer = pool[(s_index * 5 + k) % len(pool)]
            if any(a["consumer"] == consumer for a in activations):
                consumer = next(i for i in others if all(a["consumer"] != i for a in activations))
            activations.append({"consumer": consumer, "steps": pattern})
        sync["activations"] = activations
    catalog = {
        "use_kinds": [{"kind": k, "label": label} for k, label in USE_KINDS],
        "connectors": connectors,
        "consumers": consumers,
        "syncs": syncs,
        # A window that holds while the demo runs: a failing connection, muted, so Grafana
        # shows it apart and no alert pages for it.
        "maintenance": [
            {
                "connection": {"consumer": "gringotts", "name": "Gringotts Stripe"},
                "from": "$DEMO_TODAY",
                "until": "$DEMO_IN_30_DAYS",
                "reason": "Gringotts is moving to a new Stripe account",
            }
        ],
    }
    header = (
        "# The demo catalog that `healthgraph serve --demo` applies. Generated by\n"
        "# tools/make_demo_catalog.py; $DEMO_BASE_URL becomes the server's own address,\n"
        "# $DEMO_TODAY today (00:00 UTC) and $DEMO_IN_30_DAYS thirty days later.\n"
    )
    out = Path(__file__).resolve().parents[1] / "src/healthgraph/demo/catalog.yaml"
    out.write_text(header + yaml.safe_dump(catalog, sort_keys=False, width=100))
    print(f"wrote {out}: {sum(len(c['connections']) for c in consumers)} connections")


if __name__ == "__main__":
    main()
