"""Page sizes checked while the document is validated, before any resolver reads a row.

A resolver checks its own `first` too (variables are only known then); this catches the
literal ones up front, so `consumers(first: 1) { nodes { connections(first: 100000) } }`
costs nothing instead of reading the consumers page first.
"""

from __future__ import annotations

from typing import Any

from graphql import ArgumentNode, GraphQLError, IntValueNode, ValidationRule

from store.errors import PageSizeError
from store.pagination import MAX_PAGE_SIZE


class PageSizeRule(ValidationRule):
    """Every literal `first:` argument (they are all page sizes) within 0..MAX_PAGE_SIZE."""

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        if node.name.value != "first" or not isinstance(node.value, IntValueNode):
            return
        first = int(node.value.value)
        if not -(2**31) <= first < 2**31:
            return  # not an Int at all: graphql-core's own rule says so
        if not 0 <= first <= MAX_PAGE_SIZE:
            self.report_error(GraphQLError(str(PageSizeError(first, MAX_PAGE_SIZE)), node))
