"""Reading a parsed YAML document: typed field access that records every problem with its
path instead of stopping at the first (a user fixing a file wants the whole list at once)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from store.heartbeat import heartbeat_problems
from store.validation import MAX_NAME_LENGTH


class Reader:
    """Typed field access that records a problem (with its path) instead of raising."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{self.source}: {path or '(top level)'}: {message}")

    def mapping(
        self, value: object, path: str, required: Iterable[str], optional: Iterable[str]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"expected a mapping, got {type_name(value)}")
            return None
        required, optional = tuple(required), tuple(optional)
        for key in value:
            if key not in required and key not in optional:
                allowed = ", ".join((*required, *optional))
                self.problem(join_path(path, key), f"unknown key; expected one of {allowed}")
        for key in required:
            if key not in value:
                self.problem(join_path(path, key), "is required")
        return value

    def sequence(self, mapping: Mapping[str, Any], key: str, path: str) -> list[Any]:
        value = mapping.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(
                f"{path}.{key}" if path else key, f"expected a list, got {type_name(value)}"
            )
            return []
        return value

    def text(
        self, mapping: Mapping[str, Any], key: str, path: str, *, max_length: int = MAX_NAME_LENGTH
    ) -> str:
        value = mapping.get(key)
        if key not in mapping:
            return ""  # "is required" already recorded by mapping()
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{path}.{key}", f"expected a non-empty string, got {type_name(value)}")
            return ""
        if len(value) > max_length:
            self.problem(f"{path}.{key}", f"longer than {max_length} characters")
        return value.strip()

    def integer(
        self, mapping: Mapping[str, Any], key: str, path: str, low: int, high: int, default: int
    ) -> int:
        if key not in mapping:
            return default
        value = mapping[key]
        if type(value) is not int:
            self.problem(f"{path}.{key}", f"expected an integer, got {type_name(value)}")
            return default
        if not low <= value <= high:
            self.problem(f"{path}.{key}", f"{value} is out of range; use {low}..{high}")
            return default
        return value

    def choice(
        self, mapping: Mapping[str, Any], key: str, path: str, choices: Iterable[str]
    ) -> str | None:
        if key not in mapping:
            return None
        value = mapping[key]
        allowed = tuple(choices)
        if not isinstance(value, str) or value.lower() not in allowed:
            self.problem(f"{path}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value.lower()

    def heartbeat(self, mapping: Mapping[str, Any], path: str) -> dict[str, Any]:
        value = mapping.get("heartbeat")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{path}.heartbeat", f"expected a mapping, got {type_name(value)}")
            return {}
        for field, message in heartbeat_problems(value):
            self.problem(f"{path}.heartbeat.{field}", message)
        return dict(value)


def join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def type_name(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
    }
    if value is None:
        return "nothing"
    return names.get(type(value), f"a {type(value).__name__}")
