"""Singleton: at most one active run per function and key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    skip: bool  # the new run does not start
    cancel: tuple[str, ...] = ()  # active runs the new one replaces ("cancel" mode)


def decide(active_run_ids: list[str], cancels: bool) -> Verdict:
    """What a new run does given the active runs holding its singleton key.

    Default mode: the active run wins and the new one is skipped. "cancel" mode: the
    newer run wins, and every active one is cancelled.
    """
    if not active_run_ids:
        return Verdict(skip=False)
    if not cancels:
        return Verdict(skip=True)
    return Verdict(skip=False, cancel=tuple(active_run_ids))
