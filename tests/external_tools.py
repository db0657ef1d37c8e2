"""Programs outside Python that tests drive for real (node, npm, chromium): found on PATH, or a
skip with the reason locally and a failure in CI (CI=true), where a missing tool must not turn
a test green by skipping it."""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing(message: str) -> None:
    """Skip with `message`, or fail with it in CI."""
    if in_ci():
        pytest.fail(f"{message} (required in CI)")
    pytest.skip(message)


def program(name: str, how_to_install: str) -> str:
    """The path of `name` on PATH; otherwise `missing` with how to install it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed; {how_to_install}")
    assert path is not None
    return path
