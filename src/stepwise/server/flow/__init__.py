"""Flow control: every rule that decides whether, and when, a run or a step may go ahead.

Plain functions over plain state, written once for every backend: the store loads the
state of a key under its lock, asks the rule here, and writes what it decided.
"""
