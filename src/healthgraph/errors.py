"""Errors of the composition root: settings and catalog files."""

from __future__ import annotations

from collections.abc import Sequence


class HealthgraphError(Exception):
    """Base class; the CLI turns these into a message and exit status 2."""


class SettingsError(HealthgraphError):
    def __init__(self, key: str, value: object, problem: str) -> None:
        self.key = key
        self.value = value
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{key}: {problem}{shown}")


class CatalogError(HealthgraphError):
    """Every problem found in a catalog file, each naming the file and the entry's path."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))
