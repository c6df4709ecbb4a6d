"""One exclusive SQLite store per database file; the lock goes with the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepwise.server.store.records import StoreInUse
from stepwise.server.store.sqlite.store import SqliteStore


async def test_a_second_exclusive_store_on_the_same_file_refuses_to_open(tmp_path: Path) -> None:
    path = str(tmp_path / "db" / "stepwise.db")
    first = SqliteStore(path)
    await first.open()
    try:
        assert first.exclusive
        second = SqliteStore(path)
        with pytest.raises(StoreInUse, match="in use by another Stepwise server"):
            await second.open()
        # A store that does not claim the file may still share it (tools, tests).
        shared = SqliteStore(path, exclusive=False)
        await shared.open()
        assert not shared.exclusive
        assert await shared.list_apps() == []
        await shared.close()
    finally:
        await first.close()

    # Closing releases the lock: the file can be owned again.
    again = SqliteStore(path)
    await again.open()
    await again.close()
