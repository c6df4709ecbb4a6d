"""The flow-control rules the store applies under its locks, as plain functions."""

from __future__ import annotations

from stepwise.server.flow import (
    batching,
    concurrency,
    debounce,
    gcra,
    idempotency,
    singleton,
    waiters,
)


# ---- concurrency ---------------------------------------------------------------------------
def test_a_step_is_admitted_only_while_every_key_has_a_free_slot() -> None:
    limits = [("acct:1", 2), ("fn", 5)]
    assert concurrency.full_key(limits, {"acct:1": 1, "fn": 4}) is None
    assert concurrency.full_key(limits, {"acct:1": 2, "fn": 0}) == "acct:1"
    assert concurrency.full_key(limits, {"acct:1": 0, "fn": 5}) == "fn"
    assert concurrency.full_key(limits, {"acct:1": 2, "fn": 5}) == "acct:1"  # the first
    assert concurrency.full_key([], {}) is None


def test_a_starting_run_takes_the_run_slots_it_does_not_hold() -> None:
    limits = [("a", 1), ("b", 3)]
    assert concurrency.full_key(limits, {"a": 0, "b": 2}) is None
    assert concurrency.run_slots_needed(limits, set()) == ["a", "b"]
    # A retried start keeps the slot it took, even when that key is now full.
    assert concurrency.full_key(limits, {"a": 1, "b": 0}, held={"a"}) is None
    assert concurrency.run_slots_needed(limits, {"a"}) == ["b"]


def test_a_starting_run_is_held_back_by_the_first_full_limit() -> None:
    assert concurrency.full_key([("a", 1), ("b", 3)], {"a": 0, "b": 3}, held=set()) == "b"


def test_the_spare_slots_of_a_key_are_never_negative() -> None:
    assert concurrency.spare(3, 1) == 2
    assert concurrency.spare(3, 3) == 0
    assert concurrency.spare(1, 2) == 0  # a lowered limit, with more slots held than it allows


# ---- waiting for a key ----------------------------------------------------------------------
def test_a_waiter_keeps_the_rank_and_the_start_of_its_first_wait() -> None:
    assert waiters.rank(due_at=5_000, kept=None) == 5_000
    assert waiters.rank(due_at=9_000, kept=-595_000) == -595_000  # a priority run, parked again
    assert waiters.rank(due_at=9_000, kept=-595_000, run_rank=1_000) == -595_000
    assert waiters.since(now=7_000, kept=None) == 7_000
    assert waiters.since(now=9_000, kept=7_000) == 7_000


def test_a_step_of_a_run_ranks_as_its_run_unless_it_was_due_earlier() -> None:
    # A run created at 1 s with a priority of 600 s ranks at -599 s, and so does its next step.
    assert waiters.rank(due_at=70_000, kept=None, run_rank=-599_000) == -599_000
    # A run with a negative priority is not held back once its step is due.
    assert waiters.rank(due_at=70_000, kept=None, run_rank=601_000) == 70_000


def test_a_parked_job_is_looked_at_again_later_the_longer_it_has_waited() -> None:
    now = 100_000
    assert waiters.recheck_at(now, now) == now + waiters.MIN_RECHECK_MS
    assert waiters.recheck_at(now, now - 8_000) == now + 8_000
    assert waiters.recheck_at(now, now - 3_600_000) == now + waiters.MAX_RECHECK_MS


# ---- throttle (GCRA with a burst) -----------------------------------------------------------
def test_a_throttle_without_burst_allows_one_start_per_interval() -> None:
    tat = gcra.allow(None, 0, limit=2, period=60_000, burst=0)
    assert tat == 30_000
    assert gcra.allow(tat, 0, 2, 60_000, burst=0) is None
    assert gcra.next_allowed(tat, 0, 2, 60_000, burst=0) == 30_000
    assert gcra.allow(tat, 30_000, 2, 60_000, burst=0) == 60_000


def test_a_throttle_burst_allows_that_many_more_back_to_back() -> None:
    tat = None
    allowed = 0
    for _ in range(10):
        new = gcra.allow(tat, 0, limit=1, period=10_000, burst=3)
        if new is not None:
            tat, allowed = new, allowed + 1
    assert allowed == 4
    assert gcra.next_allowed(tat, 0, 1, 10_000, burst=3) == 10_000


def test_next_allowed_is_never_in_the_past() -> None:
    assert gcra.next_allowed(None, 5, limit=1, period=10, burst=0) == 5
    assert gcra.next_allowed(1, 5, limit=1, period=10) == 5


# ---- idempotency ---------------------------------------------------------------------------
def test_an_idempotency_key_is_claimable_when_unclaimed_or_expired() -> None:
    now = 1_000
    assert idempotency.claimable(None, now)
    assert idempotency.claimable(now - 1, now)
    assert not idempotency.claimable(now, now)
    assert not idempotency.claimable(idempotency.expiry(now), now + 1)


def test_an_idempotency_claim_lasts_a_day() -> None:
    assert idempotency.expiry(0) == 24 * 3600 * 1000


# ---- singleton -----------------------------------------------------------------------------
def test_a_singleton_starts_when_no_run_holds_its_key() -> None:
    assert singleton.decide([], cancels=False) == singleton.Verdict(skip=False)
    assert singleton.decide([], cancels=True) == singleton.Verdict(skip=False)


def test_a_singleton_skips_while_a_run_holds_its_key() -> None:
    assert singleton.decide(["run-1"], cancels=False) == singleton.Verdict(skip=True)


def test_a_cancelling_singleton_starts_and_cancels_every_holder() -> None:
    verdict = singleton.decide(["run-1", "run-2"], cancels=True)
    assert verdict == singleton.Verdict(skip=False, cancel=("run-1", "run-2"))


# ---- debounce ------------------------------------------------------------------------------
def test_a_first_debounced_event_is_due_a_period_later() -> None:
    assert debounce.due_at(None, 100, period_ms=1_000, timeout_ms=None) == 1_100
    assert debounce.due_at(None, 100, period_ms=1_000, timeout_ms=500) == 600


def test_a_later_event_moves_the_window_but_not_past_the_timeout() -> None:
    held = debounce.Held(event_ts=100, first_at=100)
    assert debounce.due_at(held, 400, period_ms=1_000, timeout_ms=None) == 1_400
    assert debounce.due_at(held, 400, period_ms=1_000, timeout_ms=1_200) == 1_300


def test_an_event_older_than_the_one_held_is_ignored() -> None:
    held = debounce.Held(event_ts=500, first_at=0)
    assert debounce.accepts(None, 0)
    assert debounce.accepts(held, 500)
    assert not debounce.accepts(held, 499)


def test_a_fired_debounce_owns_the_key_only_with_the_event_it_fired_with() -> None:
    assert debounce.fired_holds("evt-1", "evt-1")
    assert not debounce.fired_holds("evt-2", "evt-1")
    assert not debounce.fired_holds(None, "evt-1")


# ---- batching ------------------------------------------------------------------------------
def test_events_join_the_batch_in_order_until_it_is_full() -> None:
    ids = batching.append(None, "e1")
    assert ids == ["e1"] and not batching.is_full(ids, 2)
    ids = batching.append(ids, "e2")
    assert ids == ["e1", "e2"] and batching.is_full(ids, 2)
    assert batching.is_full(["e1"], 1)


def test_a_batch_times_out_after_it_opened_and_only_while_still_open() -> None:
    assert batching.timeout_at(1_000, 500) == 1_500
    assert batching.flushes("b1", "b1")
    assert not batching.flushes("b2", "b1")
    assert not batching.flushes(None, "b1")
