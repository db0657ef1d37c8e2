"""Validates the connector library (src/store/library/connectors.yaml) and counts it.

A standalone script (standard library + PyYAML): run it with any Python that has yaml,

    python tests/store/library_check.py [PATH]

It prints every problem with the entry's path and exits 1 when there is one; otherwise it prints
the number of entries per category and exits 0. Besides the shape of each entry it replays every
example through the product's classification (failure_when rules first, first match wins; then
the status: expected -> success, 401 -> AUTH, 403 -> PERMISSION, 429 -> RATE_LIMITED, any other
-> HTTP_STATUS) and insists the result is the example's `reason`.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "src" / "store" / "library" / "connectors.yaml"

CATEGORIES = (
    "accounting",
    "crm",
    "storage",
    "ticketing",
    "hr",
    "ecommerce",
    "communication",
    "payments",
    "productivity",
    "identity",
    "developer",
)
REQUIRED_TEMPLATES = (
    "quickbooks",
    "xero",
    "sage",
    "netsuite",
    "salesforce",
    "hubspot",
    "pipedrive",
    "google_drive",
    "dropbox",
    "box",
    "microsoft_graph",
    "jira",
    "zendesk",
    "servicenow",
    "github",
    "gitlab",
    "slack",
    "microsoft_teams",
    "shopify",
    "stripe",
    "bamboohr",
    "notion",
    "asana",
    "okta",
)
MIN_ENTRIES = 28
ENTRY_KEYS = {"template", "name", "category", "docs", "auth", "heartbeat", "examples"}
ENTRY_OPTIONAL = {"params", "note"}
OAUTH_KEYS = {"token_url", "scopes", "auth_method", "rotates_refresh_token", "docs"}
OAUTH_OPTIONAL = {"grant", "refresh_token_lifetime_days"}
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
GRANTS = ("refresh_token", "client_credentials")
CREDENTIAL_KINDS = ("bearer", "basic", "header", "query")
HEARTBEAT_KEYS = {"method", "url", "expected_status", "timeout_seconds"}
HEARTBEAT_OPTIONAL = {"headers", "body", "failure_when"}
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "OPTIONS")
BODY_METHODS = ("POST", "PUT", "PATCH")
REASONS = ("AUTH", "PERMISSION", "RATE_LIMITED", "HTTP_STATUS", "ASSERTION")
STATUS_REASONS = {401: "AUTH", 403: "PERMISSION", 429: "RATE_LIMITED"}
EXAMPLE_KEYS = {"status", "reason"}
EXAMPLE_OPTIONAL = {"headers", "body"}
MAX_TIMEOUT = 60

TEMPLATE_RE = re.compile(r"^[a-z0-9_]{1,64}$")
PARAM_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# The product's JSON path syntax (probes.assertions): dots and [index] only.
JSON_PATH_RE = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])*$")
JSON_PATH_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
BRACES_RE = re.compile(r"\{([^{}]*)\}")
PARAM_REF_RE = re.compile(r"\{params\.([^{}\s]*)\}")
# Heartbeat headers are stored in the clear: credentials go through `auth`, never here.
SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"}
# Things that look like live credentials must never appear, even in an example body.
SECRET_PATTERNS = (
    re.compile(r"\b[sr]k_(live|test)_[A-Za-z0-9]{10,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
)
MISSING = object()


class Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def keys(self, value: Any, path: str, required: set[str], optional: set[str]) -> bool:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type(value).__name__}")
            return False
        for key in value:
            if key not in required | optional:
                self.problem(f"{path}.{key}", "unknown key")
        for key in sorted(required - value.keys()):
            self.problem(f"{path}.{key}", "is required")
        return True

    def text(self, value: Any, path: str) -> bool:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "expected a non-empty string")
            return False
        return True

    def https(self, value: Any, path: str) -> None:
        if self.text(value, path) and not re.match(r"^https://[^/\s]+", value):
            self.problem(path, f"{value!r} is not an https:// URL")


def json_path_value(document: Any, path: str) -> Any:
    """The value at `path`, or MISSING (the product's semantics)."""
    value = document
    for step in JSON_PATH_STEP.finditer(path, 1):
        key, index = step.group(1), step.group(2)
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return MISSING
            value = value[key]
        else:
            position = int(index)
            if not isinstance(value, list) or position >= len(value):
                return MISSING
            value = value[position]
    return value


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, containers compare member by member."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def body_text(body: Any) -> str:
    """What the fake server sends: a string as is, anything else as JSON."""
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    return json.dumps(body)


def body_document(body: Any) -> Any:
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            return MISSING
    return MISSING if body is None else body


def classify(heartbeat: dict[str, Any], status: int, body: Any) -> str | None:
    """The reason the product gives an answer: rules first (first match wins), then status."""
    for rule in heartbeat.get("failure_when") or []:
        if "status" in rule and status not in rule["status"]:
            continue
        if "json_path" in rule:
            value = json_path_value(body_document(body), rule["json_path"])
            if value is not MISSING and json_equal(value, rule["equals"]):
                return str(rule["reason"])
        elif re.search(rule["body_regex"], body_text(body)):
            return str(rule["reason"])
    if status in heartbeat["expected_status"]:
        return None
    return STATUS_REASONS.get(status, "HTTP_STATUS")


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def check_placeholders(c: Checker, text: str, path: str, params: set[str]) -> set[str]:
    """Every {...} in a URL or header must be {params.NAME} (declared) or {external_id}."""
    used: set[str] = set()
    if text.count("{") != text.count("}"):
        c.problem(path, f"{text!r} has unbalanced braces")
    for inner in BRACES_RE.findall(text):
        if inner == "external_id":
            continue
        if not inner.startswith("params."):
            c.problem(path, f"unknown placeholder {{{inner}}}")
            continue
        name = inner.removeprefix("params.")
        if name not in params:
            c.problem(path, f"placeholder {{{inner}}} names no declared param")
        used.add(name)
    return used


def check_auth(c: Checker, auth: Any, path: str, params: set[str]) -> dict[str, Any]:
    if (
        not isinstance(auth, dict)
        or len(auth) != 1
        or next(iter(auth))
        not in (
            "oauth2",
            "credentials",
        )
    ):
        c.problem(path, "must hold exactly one of oauth2 or credentials")
        return {}
    if "oauth2" in auth:
        oauth = auth["oauth2"]
        p = f"{path}.oauth2"
        if not c.keys(oauth, p, OAUTH_KEYS, OAUTH_OPTIONAL):
            return {}
        c.https(oauth.get("token_url"), f"{p}.token_url")
        if isinstance(oauth.get("token_url"), str):
            check_placeholders(c, oauth["token_url"], f"{p}.token_url", params)
        c.https(oauth.get("docs"), f"{p}.docs")
        scopes = oauth.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            c.problem(f"{p}.scopes", "expected a list of scope strings (may be empty)")
        if oauth.get("auth_method") not in AUTH_METHODS:
            c.problem(f"{p}.auth_method", f"must be one of {', '.join(AUTH_METHODS)}")
        if oauth.get("grant", "refresh_token") not in GRANTS:
            c.problem(f"{p}.grant", f"must be one of {', '.join(GRANTS)}")
        if type(oauth.get("rotates_refresh_token")) is not bool:
            c.problem(f"{p}.rotates_refresh_token", "must be true or false")
        if "refresh_token_lifetime_days" in oauth:
            days = oauth["refresh_token_lifetime_days"]
            if type(days) is not int or days <= 0:
                c.problem(f"{p}.refresh_token_lifetime_days", "must be a positive integer")
        return {"kind": "oauth2"}
    credentials = auth["credentials"]
    p = f"{path}.credentials"
    if not isinstance(credentials, dict):
        c.problem(p, "expected a mapping")
        return {}
    kind = credentials.get("kind")
    if kind not in CREDENTIAL_KINDS:
        c.problem(f"{p}.kind", f"must be one of {', '.join(CREDENTIAL_KINDS)}")
        return {}
    needs_name = kind in ("header", "query")
    c.keys(credentials, p, {"kind", "name"} if needs_name else {"kind"}, set())
    if needs_name:
        c.text(credentials.get("name"), f"{p}.name")
    return {"kind": kind, "name": credentials.get("name")}


def check_rule(c: Checker, rule: Any, path: str) -> None:
    if not isinstance(rule, dict):
        c.problem(path, "expected a mapping")
        return
    if "json_path" in rule:
        c.keys(rule, path, {"json_path", "equals", "reason"}, {"status"})
        if not isinstance(rule["json_path"], str) or not JSON_PATH_RE.match(rule["json_path"]):
            c.problem(f"{path}.json_path", "must look like $.field.sub[0] (dots and [index] only)")
        if "equals" in rule and not (
            rule["equals"] is None or isinstance(rule["equals"], str | int | float | bool)
        ):
            c.problem(f"{path}.equals", "must be a scalar")
    elif "body_regex" in rule:
        c.keys(rule, path, {"body_regex", "reason"}, {"status"})
        try:
            re.compile(str(rule["body_regex"]))
        except re.error as exc:
            c.problem(f"{path}.body_regex", f"not a valid regular expression ({exc})")
    else:
        c.problem(path, "needs json_path (with equals) or body_regex")
    if rule.get("reason") not in REASONS:
        c.problem(f"{path}.reason", f"must be one of {', '.join(REASONS)}")
    if "status" in rule and not valid_statuses(rule["status"]):
        c.problem(f"{path}.status", "must be a non-empty list of HTTP statuses 100..599")


def valid_statuses(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(type(s) is int and 100 <= s <= 599 for s in value)
    )


def check_heartbeat(
    c: Checker, heartbeat: Any, path: str, params: set[str], auth: dict[str, Any]
) -> set[str] | None:
    """Returns the params the heartbeat uses, or None when it is too broken to use."""
    if not c.keys(heartbeat, path, HEARTBEAT_KEYS, HEARTBEAT_OPTIONAL):
        return None
    used: set[str] = set()
    method = heartbeat.get("method")
    if method not in METHODS:
        c.problem(f"{path}.method", f"must be one of {', '.join(METHODS)}")
    url = heartbeat.get("url")
    if c.text(url, f"{path}.url"):
        used |= check_placeholders(c, url, f"{path}.url", params)
        leading = re.match(r"^\{params\.([a-z0-9_]+)\}/", url)
        if not url.startswith("https://") and not leading:
            c.problem(f"{path}.url", "must start with https:// or with an origin param")
    headers = heartbeat.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        c.problem(f"{path}.headers", "expected a mapping of header name to string value")
        headers = {}
    for name, value in headers.items():
        secret = {*SECRET_HEADERS, str(auth.get("name") or "").lower()} - {""}
        if name.lower() in secret:
            c.problem(f"{path}.headers.{name}", "credentials belong in auth, not in headers")
        used |= check_placeholders(c, value, f"{path}.headers.{name}", params)
    if "body" in heartbeat:
        body = heartbeat["body"]
        if method not in BODY_METHODS:
            c.problem(f"{path}.body", f"only {', '.join(BODY_METHODS)} may carry a body")
        if not isinstance(body, str | dict):
            c.problem(f"{path}.body", "must be a string or a mapping (sent as JSON)")
        for text in strings_in(body):
            for name in PARAM_REF_RE.findall(text):
                if name not in params:
                    c.problem(f"{path}.body", f"placeholder {{params.{name}}} names no param")
                used.add(name)
    if not valid_statuses(heartbeat.get("expected_status")):
        c.problem(f"{path}.expected_status", "must be a non-empty list of HTTP statuses 100..599")
        return None
    timeout = heartbeat.get("timeout_seconds")
    if type(timeout) not in (int, float) or not 0 < timeout <= MAX_TIMEOUT:
        c.problem(f"{path}.timeout_seconds", f"must be a number in (0, {MAX_TIMEOUT}]")
    rules = heartbeat.get("failure_when", [])
    if not isinstance(rules, list):
        c.problem(f"{path}.failure_when", "expected a list of rules")
        return None
    before = len(c.problems)
    for i, rule in enumerate(rules):
        check_rule(c, rule, f"{path}.failure_when[{i}]")
    return used if len(c.problems) == before else None


def check_examples(c: Checker, examples: Any, path: str, heartbeat: dict[str, Any] | None) -> None:
    if not isinstance(examples, list) or not examples:
        c.problem(path, "expected a non-empty list")
        return
    reasons = []
    for i, example in enumerate(examples):
        p = f"{path}[{i}]"
        if not c.keys(example, p, EXAMPLE_KEYS, EXAMPLE_OPTIONAL):
            continue
        status, reason = example.get("status"), example.get("reason")
        if type(status) is not int or not 100 <= status <= 599:
            c.problem(f"{p}.status", "must be an HTTP status 100..599")
            continue
        if reason is not None and reason not in REASONS:
            c.problem(f"{p}.reason", f"must be null or one of {', '.join(REASONS)}")
            continue
        headers = example.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            c.problem(f"{p}.headers", "expected a mapping of header name to string value")
        reasons.append((status, reason))
        if heartbeat is not None:
            got = classify(heartbeat, status, example.get("body"))
            if got != reason:
                c.problem(p, f"the product classifies this answer as {got}, not {reason}")
    expected = heartbeat["expected_status"] if heartbeat else []
    if not any(r is None and s in expected for s, r in reasons):
        c.problem(path, "needs a success example (reason: null, status in expected_status)")
    if not any(r == "AUTH" for _, r in reasons):
        c.problem(path, "needs the documented authentication failure (reason: AUTH)")


def header(heartbeat: dict[str, Any], name: str) -> str | None:
    for key, value in (heartbeat.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    return None


def check_provider_rules(c: Checker, template: str, heartbeat: dict[str, Any], path: str) -> None:
    """What particular providers demand of every request (see the brief in SOURCES.md)."""
    if template == "xero" and header(heartbeat, "xero-tenant-id") != "{params.tenant_id}":
        c.problem(path, 'xero needs header xero-tenant-id: "{params.tenant_id}"')
    if template == "notion" and not header(heartbeat, "Notion-Version"):
        c.problem(path, "notion needs a Notion-Version header")
    if template == "github":
        if header(heartbeat, "Accept") != "application/vnd.github+json":
            c.problem(path, "github needs Accept: application/vnd.github+json")
        if not header(heartbeat, "X-GitHub-Api-Version"):
            c.problem(path, "github needs an X-GitHub-Api-Version header")
    if template == "slack":
        rules = [
            (r.get("json_path"), r.get("equals"), r.get("reason"))
            for r in heartbeat.get("failure_when") or []
        ]
        wanted = [
            *(
                ("$.error", e, "AUTH")
                for e in (
                    "invalid_auth",
                    "not_authed",
                    "token_revoked",
                    "token_expired",
                    "account_inactive",
                )
            ),
            ("$.error", "missing_scope", "PERMISSION"),
            ("$.error", "ratelimited", "RATE_LIMITED"),
        ]
        for rule in wanted:
            if rule not in rules:
                c.problem(path, f"slack needs the failure_when rule {rule}")
        last = (heartbeat.get("failure_when") or [{}])[-1]
        if not (
            last.get("json_path") == "$.ok"
            and last.get("equals") is False
            and last.get("reason") == "ASSERTION"
        ):
            c.problem(path, "slack's last failure_when rule must be $.ok equals false -> ASSERTION")


def check_entry(c: Checker, entry: Any, path: str) -> tuple[str, str] | None:
    if not c.keys(entry, path, ENTRY_KEYS, ENTRY_OPTIONAL):
        return None
    template = entry.get("template")
    if not isinstance(template, str) or not TEMPLATE_RE.match(template):
        c.problem(f"{path}.template", "must match [a-z0-9_]{1,64}")
        template = "?"
    path = f"{path} ({template})"
    c.text(entry.get("name"), f"{path}.name")
    category = entry.get("category")
    if category not in CATEGORIES:
        c.problem(f"{path}.category", f"{category!r} is not one of {', '.join(CATEGORIES)}")
    c.https(entry.get("docs"), f"{path}.docs")
    note = entry.get("note")
    if "note" in entry and c.text(note, f"{path}.note") and ("\n" in note or len(note) > 600):
        c.problem(f"{path}.note", "keep it to one line (at most 600 characters)")

    params: set[str] = set()
    raw_params = entry.get("params", [])
    if not isinstance(raw_params, list):
        c.problem(f"{path}.params", "expected a list (use [] for none)")
        raw_params = []
    for i, param in enumerate(raw_params):
        p = f"{path}.params[{i}]"
        if not c.keys(param, p, {"name", "description"}, set()):
            continue
        name = param.get("name")
        if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
            c.problem(f"{p}.name", "must be a lowercase identifier")
            continue
        if name in params:
            c.problem(f"{p}.name", f"duplicate param {name!r}")
        c.text(param.get("description"), f"{p}.description")
        params.add(name)

    auth = check_auth(c, entry.get("auth"), f"{path}.auth", params)
    heartbeat = entry.get("heartbeat")
    used = check_heartbeat(c, heartbeat, f"{path}.heartbeat", params, auth)
    if used is not None:
        for name in sorted(params - used):
            c.problem(
                f"{path}.params", f"{name!r} is declared but used nowhere (url, headers, body)"
            )
        url = heartbeat["url"]
        leading = re.match(r"^\{params\.([a-z0-9_]+)\}/", url)
        if leading:
            described = next(
                (str(p.get("description")) for p in raw_params if p.get("name") == leading[1]), ""
            )
            if "https://" not in described:
                c.problem(f"{path}.params", f"origin param {leading[1]!r} must show its https://")
        check_provider_rules(c, str(template), heartbeat, f"{path}.heartbeat")
    check_examples(
        c, entry.get("examples"), f"{path}.examples", heartbeat if used is not None else None
    )
    for text in strings_in(entry):
        for pattern in SECRET_PATTERNS:
            if pattern.search(text):
                c.problem(path, f"something that looks like a real secret: {text[:40]!r}")
    return (str(template), str(category))


def check(document: Any) -> tuple[list[str], Counter[str]]:
    c = Checker()
    counts: Counter[str] = Counter()
    if not isinstance(document, dict) or set(document) != {"connectors"}:
        c.problem("(top level)", "must be a mapping with the single key connectors")
        return c.problems, counts
    entries = document["connectors"]
    if not isinstance(entries, list):
        c.problem("connectors", "expected a list")
        return c.problems, counts
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        result = check_entry(c, entry, f"connectors[{i}]")
        if result is None:
            continue
        template, category = result
        if template in seen:
            c.problem(f"connectors[{i}]", f"duplicate template {template!r}")
        seen.add(template)
        counts[category] += 1
    if len(entries) < MIN_ENTRIES:
        c.problem("connectors", f"{len(entries)} entries; the library needs at least {MIN_ENTRIES}")
    for template in REQUIRED_TEMPLATES:
        if template not in seen:
            c.problem("connectors", f"missing the required entry {template!r}")
    for category in CATEGORIES:
        if not counts[category]:
            c.problem("connectors", f"no entry in category {category!r}")
    return c.problems, counts


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT_PATH
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"{path}: cannot read: {exc}")
        return 1
    problems, counts = check(document)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {path}")
        return 1
    total = sum(counts.values())
    print(f"{path}: {total} connectors, all valid")
    for category in CATEGORIES:
        print(f"  {category:<14} {counts[category]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
