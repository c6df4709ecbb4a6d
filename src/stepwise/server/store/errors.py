"""Errors a store raises whatever its backend.

::

    Exception
     └── DatabaseUnavailable     the database could not be reached; in_doubt says whether
                                 the write may have been committed all the same
"""

from __future__ import annotations


class DatabaseUnavailable(Exception):
    """The database could not be reached, or the connection died before it answered.

    ``in_doubt`` is False when nothing was written (the caller may retry, or answer 503);
    it is True when the connection died while COMMIT was in flight, so the write may or may
    not have been committed: the caller must not report it as failed, nor as done, without
    reading it back.
    """

    def __init__(self, message: str, *, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt
