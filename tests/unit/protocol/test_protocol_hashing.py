"""Step-ID hashing (reference §5.1)."""

from __future__ import annotations

import hashlib

from stepwise.protocol import RUN_COMPLETE_ID, StepIdCounter, hash_step_id

MY_STEP_ID = "e7d8a2f140845095749d60246ff1110c9d01d76a"
MY_STEP_ID_1 = "f47c6228c581af870aa285200cf95ec3ac59bb6a"


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def test_hash_step_id_reference_vectors() -> None:
    assert hash_step_id("my-step-id") == MY_STEP_ID
    assert hash_step_id("my-step-id:1") == MY_STEP_ID_1


def test_hash_step_id_is_lowercase_hex_of_utf8() -> None:
    hashed = hash_step_id("étape-ü")
    assert hashed == sha1("étape-ü")
    assert len(hashed) == 40
    assert hashed == hashed.lower()


def test_run_complete_id_is_sha1_of_complete() -> None:
    assert sha1("complete") == RUN_COMPLETE_ID


def test_counter_first_use_then_repeats() -> None:
    counter = StepIdCounter()
    assert counter.next_id("my-step-id") == (MY_STEP_ID, 0)
    assert counter.next_id("my-step-id") == (MY_STEP_ID_1, 1)
    assert counter.next_id("my-step-id") == (sha1("my-step-id:2"), 2)


def test_counter_tracks_ids_independently() -> None:
    counter = StepIdCounter()
    assert counter.next_id("a") == (sha1("a"), 0)
    assert counter.next_id("b") == (sha1("b"), 0)
    assert counter.next_id("a") == (sha1("a:1"), 1)
    assert counter.next_id("b") == (sha1("b:1"), 1)


def test_counter_skips_index_claimed_by_explicit_id() -> None:
    counter = StepIdCounter()
    assert counter.next_id("a:1") == (sha1("a:1"), 0)
    assert counter.next_id("a") == (sha1("a"), 0)
    # "a:1" is already taken by the explicit ID, so the repeat moves on to 2.
    assert counter.next_id("a") == (sha1("a:2"), 2)
    assert counter.next_id("a") == (sha1("a:3"), 3)


def test_counter_explicit_id_after_repeat_is_suffixed() -> None:
    counter = StepIdCounter()
    counter.next_id("a")
    assert counter.next_id("a") == (sha1("a:1"), 1)
    # The literal "a:1" now collides with the repeat above and takes its own suffix.
    assert counter.next_id("a:1") == (sha1("a:1:1"), 1)


def test_counter_never_hands_out_the_same_hash_twice() -> None:
    counter = StepIdCounter()
    calls = ["x", "x:2", "x", "x", "x", "x:1", "x:2", "y"]
    hashes = [counter.next_id(c)[0] for c in calls]
    assert len(set(hashes)) == len(hashes)


def test_fresh_counter_restarts() -> None:
    first = StepIdCounter()
    first.next_id("s")
    assert first.next_id("s")[1] == 1
    assert StepIdCounter().next_id("s") == (sha1("s"), 0)
