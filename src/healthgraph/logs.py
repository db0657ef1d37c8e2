"""Logging set-up shared by every entry point."""

from __future__ import annotations

import logging

# Alembic narrates every step at INFO (open_database says what changed instead); httpx logs
# every request's full URL at INFO, which would put query-string credentials into the log.
NOISY_LOGGERS = ("alembic", "httpx", "httpcore")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.root.level))
