"""Apps, their functions and the cron jobs their functions declare."""

from __future__ import annotations

from typing import Any

from ..records import AppRecord, FunctionRecord, JobKind, NewJob
from .conn import Conn
from .jobs import insert_job
from .rows import (
    APP_COLUMNS,
    FUNCTION_COLUMNS,
    app_from_row,
    dump,
    function_from_row,
    load,
    marks,
)


def cron_key(slug: str, expr: str) -> str:
    return f"cron:{slug}:{expr}"


def upsert_app(conn: Conn, app: AppRecord) -> tuple[AppRecord, bool]:
    row = conn.execute(
        "SELECT id, checksum, created_at FROM apps WHERE name = ?", (app.name,)
    ).fetchone()
    if row is None:
        conn.execute(
            f"INSERT INTO apps ({APP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                app.id,
                app.name,
                app.url,
                app.sdk,
                app.framework,
                app.checksum,
                app.created_at,
                app.updated_at,
            ),
        )
        return app, True
    stored = AppRecord(
        id=row["id"],
        name=app.name,
        url=app.url,
        sdk=app.sdk,
        framework=app.framework,
        checksum=app.checksum,
        created_at=row["created_at"],
        updated_at=app.updated_at,
    )
    conn.execute(
        "UPDATE apps SET url = ?, sdk = ?, framework = ?, checksum = ?, updated_at = ? WHERE id = ?",
        (app.url, app.sdk, app.framework, app.checksum, app.updated_at, stored.id),
    )
    return stored, row["checksum"] != app.checksum


def sync_app(
    conn: Conn,
    app: AppRecord,
    functions: list[FunctionRecord],
    cron_jobs: list[tuple[str, int, str]],
) -> tuple[AppRecord, bool]:
    """Upsert an app, replace its function set and its cron jobs; (stored app, modified)."""
    conn.lock(f"app:{app.name}")
    stored, modified = upsert_app(conn, app)
    old_slugs = {
        row["slug"]
        for row in conn.execute(
            "SELECT slug FROM functions WHERE app_id = ?", (stored.id,)
        ).fetchall()
    }
    keep: list[str] = []
    for fn in functions:
        existing = conn.execute("SELECT id FROM functions WHERE slug = ?", (fn.slug,)).fetchone()
        if existing is not None:
            conn.execute(
                "UPDATE functions SET app_id = ?, name = ?, config = ?, url = ? WHERE id = ?",
                (stored.id, fn.name, dump(fn.config), fn.url, existing["id"]),
            )
            keep.append(existing["id"])
        else:
            conn.execute(
                f"INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (fn.id, stored.id, fn.slug, fn.name, dump(fn.config), fn.url, fn.created_at),
            )
            keep.append(fn.id)
    params: list[Any] = [stored.id, *keep]
    conn.execute(
        "DELETE FROM functions WHERE app_id = ?"
        + (f" AND id NOT IN ({marks(len(keep))})" if keep else ""),
        params,
    )
    # Cron jobs are keyed by function slug and expression, so a re-sync keeps the
    # schedule it had; schedules the app no longer declares are dropped.
    wanted = {cron_key(slug, expr): (slug, at, expr) for slug, at, expr in cron_jobs}
    ours = old_slugs | {fn.slug for fn in functions}
    for row in conn.execute(
        "SELECT key, payload FROM jobs WHERE kind = ?", (JobKind.CRON.value,)
    ).fetchall():
        # The slug comes from the payload: a function id may itself contain ":".
        if (load(row["payload"]) or {}).get("function_slug") in ours and row["key"] not in wanted:
            conn.execute("DELETE FROM jobs WHERE key = ?", (row["key"],))
    for key, (slug, at, expr) in wanted.items():
        insert_job(
            conn,
            NewJob(
                run_id=None,
                kind=JobKind.CRON,
                run_at=at,
                key=key,
                payload={"function_slug": slug, "cron": expr},
            ),
        )
    return stored, modified


def list_functions(conn: Conn) -> list[FunctionRecord]:
    rows = conn.execute(f"SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY slug").fetchall()
    return [function_from_row(r) for r in rows]


def list_apps(conn: Conn) -> list[AppRecord]:
    rows = conn.execute(f"SELECT {APP_COLUMNS} FROM apps ORDER BY name").fetchall()
    return [app_from_row(r) for r in rows]
