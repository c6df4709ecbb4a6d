"""``stepwise keys`` run as its own process against a server's database, as a person would."""

from __future__ import annotations

import subprocess
import sys

from support.harness import ServerProcess


def keys_cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    database = (
        ["--postgres-uri", server.postgres_uri]
        if server.postgres_uri
        else ["--sqlite-path", str(server.db)]
    )
    return subprocess.run(
        [sys.executable, "-m", "stepwise", "keys", *args, *database],
        capture_output=True,
        text=True,
        timeout=60,
    )


def create_key(server: ServerProcess, name: str) -> tuple[str, str]:
    """A new key made by the CLI: (its id, the key)."""
    made = keys_cli(server, "create", "--name", name)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    key_id = made.stderr.split("created API key ", 1)[1].split()[0]
    return key_id, key
