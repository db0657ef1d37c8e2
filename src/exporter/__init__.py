"""Prometheus exporter: the store's state read at scrape time, and the service's own metrics.

Imports `store` only (the import-linter contract in pyproject.toml).
"""

from exporter.collector import StoreCollector
from exporter.endpoint import metrics_app, metrics_endpoint
from exporter.exposition import CONTENT_TYPE, render_store
from exporter.self_metrics import SelfMetrics, service_registry
from exporter.server import serving

__all__ = [
    "CONTENT_TYPE",
    "SelfMetrics",
    "StoreCollector",
    "metrics_app",
    "metrics_endpoint",
    "render_store",
    "service_registry",
    "serving",
]
