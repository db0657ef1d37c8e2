"""Properties of global ids: ours round-trip; any other text is refused with InvalidIdError,
whose message names the value (never another exception, which would be masked as a 500)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from graphql_schema.errors import InvalidIdError
from graphql_schema.ids import decode_id, from_global_id, to_global_id

FAST = settings(max_examples=300, derandomize=True, database=None, deadline=None)
TYPES = st.sampled_from(["Consumer", "Connector", "Connection", "Use", "Sync", "SyncActivation"])


@FAST
@given(TYPES, st.integers(min_value=0, max_value=10**18 - 1))
def test_an_id_decodes_to_its_type_and_row(type_name: str, row_id: int) -> None:
    global_id = to_global_id(type_name, row_id)
    assert from_global_id(global_id) == (type_name, row_id)
    assert decode_id(global_id, type_name) == row_id


@FAST
@given(TYPES, TYPES, st.integers(min_value=0, max_value=10**6))
def test_an_id_of_another_type_is_refused_naming_the_type(
    made_as: str, wanted: str, row_id: int
) -> None:
    global_id = to_global_id(made_as, row_id)
    if made_as == wanted:
        assert decode_id(global_id, wanted) == row_id
        return
    with pytest.raises(InvalidIdError) as caught:
        decode_id(global_id, wanted)
    assert str(caught.value) == f"id {global_id!r} is not a {wanted} id"


@FAST
@given(st.text())
def test_any_text_is_an_id_of_ours_or_refused_by_name(text: str) -> None:
    refused: InvalidIdError | None = None
    try:
        type_name, row_id = from_global_id(text)
    except InvalidIdError as exc:
        refused = exc
    if refused is not None:
        assert str(refused) == f"id {text!r} is not an id returned by this API"
    else:
        assert type_name and row_id >= 0


@FAST
@example("²")
@given(st.text(max_size=20))
def test_any_row_part_inside_an_id_is_a_row_or_refused(row_part: str) -> None:
    # A type of ours, then anything: a client can build these by hand.
    global_id = base64.urlsafe_b64encode(f"Consumer:{row_part}".encode()).decode().rstrip("=")
    refused: InvalidIdError | None = None
    try:
        type_name, row_id = from_global_id(global_id)
    except InvalidIdError as exc:
        refused = exc
    if refused is None:
        assert (type_name, row_id >= 0) == ("Consumer", True)
