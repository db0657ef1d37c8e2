"""Properties of cursors and pages: any text a client sends as a cursor is either one of ours
or refused with InvalidCursorError (never another exception), and pages cut right."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from store.errors import InvalidCursorError, PageSizeError
from store.pagination import MAX_PAGE_SIZE, PageRequest, decode_cursor, encode_cursor, page_of

FAST = settings(max_examples=300, derandomize=True, database=None, deadline=None)


@FAST
@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_a_cursor_decodes_to_the_row_it_was_made_for(row_id: int) -> None:
    cursor = encode_cursor(row_id)
    assert decode_cursor(cursor) == row_id
    assert PageRequest(first=1, after=cursor).after_id == row_id
    assert cursor.isascii() and "=" not in cursor


@FAST
@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_any_other_text_is_refused_as_a_cursor_by_name(text: str) -> None:
    refused: InvalidCursorError | None = None
    try:
        row_id = decode_cursor(text)
    except InvalidCursorError as exc:
        refused = exc
    if refused is not None:
        assert str(refused) == f"cursor {text!r} is not valid; pass a cursor returned by this API"
        with pytest.raises(InvalidCursorError):
            PageRequest(after=text)
    else:  # only our own format decodes, and then it is canonical
        assert decode_cursor(encode_cursor(row_id)) == row_id


@FAST
@given(st.integers(min_value=-(2**31), max_value=2**31))
def test_page_sizes_outside_the_range_are_refused(first: int) -> None:
    if 0 <= first <= MAX_PAGE_SIZE:
        assert PageRequest(first=first).first == first
    else:
        with pytest.raises(PageSizeError) as caught:
            PageRequest(first=first)
        assert str(caught.value) == f"first: {first} is out of range; use 0..{MAX_PAGE_SIZE}"


@FAST
@given(
    st.lists(st.integers(min_value=1, max_value=10**6), unique=True).map(sorted),
    st.integers(min_value=0, max_value=MAX_PAGE_SIZE),
)
def test_a_page_is_the_first_rows_and_says_whether_more_follow(ids: list[int], first: int) -> None:
    fetched = ids[: first + 1]  # what `paginate` fetches: one more than the page
    page = page_of(fetched, PageRequest(first=first), lambda row_id: row_id)
    assert list(page.items) == ids[:first]
    assert page.has_next_page == (len(ids) > first)
    assert [decode_cursor(c) for c in page.cursors] == ids[:first]
    assert page.end_cursor == (encode_cursor(ids[:first][-1]) if ids[:first] else None)


@FAST
@example("²")
@given(st.text(max_size=20))
def test_any_payload_inside_a_cursor_is_a_row_or_refused(payload: str) -> None:
    # Our prefix, then anything: a client can build these by hand.
    cursor = base64.urlsafe_b64encode(f"hg1:{payload}".encode()).decode().rstrip("=")
    try:
        row_id = decode_cursor(cursor)
    except InvalidCursorError:
        return
    assert row_id >= 0
