"""The run listing's cursor: it round-trips, and every string the document allows decodes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepwise.errors import ApiError
from stepwise.protocol import is_ulid
from stepwise.protocol.ids import encode_ulid
from stepwise.server.api.run_listing import CURSOR, decode_cursor, encode_cursor
from stepwise.server.store.records import RunRecord, RunStatus


def run(run_id: str, created_at: int) -> RunRecord:
    return RunRecord(
        id=run_id,
        function_id="f",
        function_slug="app-f",
        event_ids=(),
        status=RunStatus.RUNNING,
        created_at=created_at,
        started_at=None,
        ended_at=None,
        output=None,
        error=None,
        request_version=-1,
        force_step_plan=False,
        cron=None,
    )


@given(
    ms=st.integers(0, (1 << 48) - 1),
    entropy=st.binary(min_size=10, max_size=10),
    created_at=st.integers(-(1 << 63), (1 << 63) - 1),
    lower=st.booleans(),
)
def test_a_cursor_gives_back_the_position_it_was_made_from(
    ms: int, entropy: bytes, created_at: int, lower: bool
) -> None:
    run_id = encode_ulid(ms, entropy)
    cursor = encode_cursor(run(run_id.lower() if lower else run_id, created_at))
    assert CURSOR.fullmatch(cursor)
    assert decode_cursor(cursor) == (created_at, run_id)


@given(raw=st.binary(min_size=24, max_size=24))
def test_every_string_of_the_documented_pattern_is_a_position(raw: bytes) -> None:
    created_at, run_id = decode_cursor(base64.urlsafe_b64encode(raw).decode())
    assert is_ulid(run_id)
    assert -(1 << 63) <= created_at < 1 << 63


@pytest.mark.parametrize(
    "cursor",
    ["", "abc", "A" * 31, "A" * 33, "A" * 31 + "=", "A" * 31 + "+", "\uff21" * 32, "A" * 32 + "\n"],
)
def test_anything_else_is_a_400_naming_the_cursor(cursor: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode_cursor(cursor)
    assert (caught.value.status, caught.value.extra) == (400, {"parameter": "cursor"})
