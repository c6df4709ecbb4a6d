"""``stepwise dev | start | send | keys``."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import click
import httpx
import orjson

from . import protocol
from .server.config import DEV_MAX_EVENT_BYTES, MAX_EVENT_BYTES, ServerConfig

if TYPE_CHECKING:
    from .server.store.base import Store
    from .server.store.records import ApiKeyRecord


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


@click.group()
@click.version_option(package_name="stepwise")
def main() -> None:
    """Stepwise: durable functions for Python, on the Inngest protocol."""


def _networks(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDR networks (``10.0.0.0/8``, ``fd00::/8``); a bare address stands for itself alone."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not an IP network (like 10.0.0.0/8 or fd00::/8)"
            ) from None
    return tuple(networks)


def app_url(value: str) -> str:
    """An app's serve URL from what was typed: ``localhost:3000`` is
    ``http://localhost:3000/api/inngest``; a scheme or a path given is kept (``/`` for an
    app served at the root). Raises ``ValueError`` for what is no http(s) URL."""
    text = value.strip()
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an app URL (like localhost:3000 or http://host/path)")
    _ = parts.port  # raises ValueError for a port that is no number or out of range
    if not parts.path:
        parts = parts._replace(path=protocol.DEFAULT_SERVE_PATH)
    return urlunsplit(parts)


def _app_urls(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[str, ...]:
    try:
        return tuple(app_url(value) for value in values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _outbound(fn: click.decorators.FC) -> click.decorators.FC:
    """Options for requests the server makes to URLs that functions choose (step.fetch)."""
    options = [
        click.option(
            "--outbound-timeout",
            default=300.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds a step.fetch request may take in all.",
        ),
        click.option(
            "--outbound-allow",
            multiple=True,
            metavar="CIDR",
            callback=_networks,
            help="A network step.fetch may reach although it is not public (repeatable; "
            "production refuses loopback, private, link-local and other non-public addresses).",
        ),
        click.option(
            "--outbound-deny",
            multiple=True,
            metavar="CIDR",
            callback=_networks,
            help="A network step.fetch may never reach, in any mode (repeatable; wins over "
            "--outbound-allow).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _common(fn: click.decorators.FC) -> click.decorators.FC:
    options = [
        click.option(
            "--host", default="127.0.0.1", show_default=True, help="Interface to listen on."
        ),
        click.option(
            "-p", "--port", default=protocol.DEFAULT_DEV_PORT, show_default=True, type=int
        ),
        click.option(
            "-u",
            "--sdk-url",
            "sdk_urls",
            multiple=True,
            callback=_app_urls,
            help="URL of an app to sync (repeatable); a bare host:port means "
            "http://host:port/api/inngest.",
        ),
        click.option(
            "--poll-interval",
            default=5.0,
            show_default=True,
            type=float,
            help="Seconds between app re-syncs.",
        ),
        click.option("--no-poll", is_flag=True, help="Do not re-sync apps periodically."),
        click.option(
            "--retry-interval",
            type=float,
            default=None,
            help="Retry failed steps every N seconds instead of the backoff table.",
        ),
        click.option(
            "--queue-workers",
            default=100,
            show_default=True,
            type=int,
            help="Steps executed at once.",
        ),
        click.option(
            "--lease-seconds",
            default=15.0,
            show_default=True,
            type=click.FloatRange(min=0.1),
            help="How long a node holds a job; renewed while its call is in flight. A node "
            "that dies leaves its jobs due again after at most this long.",
        ),
        click.option(
            "--log-level",
            default="info",
            show_default=True,
            type=click.Choice(["debug", "info", "warning", "error"]),
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _postgres(fn: click.decorators.FC) -> click.decorators.FC:
    fn = click.option(
        "--postgres-writers",
        envvar="STEPWISE_POSTGRES_WRITERS",
        default=1,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Connections this node commits on (with --postgres-uri). One is fastest when "
        "the database is near; more keep writing while one waits on a far database.",
    )(fn)
    return _postgres_uri(fn)


def _postgres_uri(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--postgres-uri",
        envvar="STEPWISE_POSTGRES_URI",
        default=None,
        metavar="URI",
        help="Store everything in this PostgreSQL database instead of --sqlite-path; any "
        "number of nodes may share it (postgresql://user:password@host:5432/dbname).",
    )(fn)


def _max_event_size(default: int) -> Callable[[click.decorators.FC], click.decorators.FC]:
    return click.option(
        "--max-event-size",
        "max_event_bytes",
        default=default,
        show_default=True,
        type=click.IntRange(min=1),
        help="Largest event accepted, in bytes (its JSON); a larger one is refused with a 413.",
    )


def _parse_retention(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """A duration (``30d``, ``12h``, ``90s``) in milliseconds; ``0`` or ``off``: keep all."""
    text = value.strip().lower()
    if text in ("0", "off", "none", "never"):
        return None
    try:
        ms = int(protocol.parse_duration(text).total_seconds() * 1000)
    except protocol.DurationError:
        raise click.BadParameter(
            f"{value!r} is not a duration (like 30d, 12h or 90s; 0 or off keeps everything)"
        ) from None
    return ms or None


def _retention(default: str) -> Callable[[click.decorators.FC], click.decorators.FC]:
    return click.option(
        "--retention",
        "retention_ms",
        default=default,
        show_default=True,
        metavar="DURATION",
        callback=_parse_retention,
        help="Delete finished runs' history, and events no stored run needs, this long "
        "after they finished (30d, 12h, ...; 0 or off keeps everything).",
    )


_production_sqlite_path = click.option(
    "--sqlite-path",
    default=".stepwise/stepwise.db",
    show_default=True,
    help="Where the database lives (one node; see --postgres-uri for many).",
)


def _run(config: ServerConfig, log_level: str) -> None:
    from .server.server import CannotListen, Server
    from .server.store.errors import DatabaseUnavailable
    from .server.store.records import StoreInUse

    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        _run_loop(Server(config).serve())
    except KeyboardInterrupt:
        pass
    except (StoreInUse, DatabaseUnavailable, CannotListen) as exc:
        click.echo(f"stepwise: cannot start: {exc}", err=True)
        sys.exit(1)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (Linux, macOS): a faster event loop, same semantics."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


@main.command()
@_common
@_outbound
@click.option("--no-discovery", is_flag=True, help="Do not scan local ports for apps.")
@click.option(
    "--sqlite-path",
    default=".stepwise/dev.db",
    show_default=True,
    help="Where the embedded database lives.",
)
@_postgres
@_max_event_size(DEV_MAX_EVENT_BYTES)
@_retention("off")
def dev(
    no_discovery: bool,
    max_event_bytes: int,
    postgres_uri: str | None,
    postgres_writers: int,
    **common: Any,
) -> None:
    """Run the development server on an embedded SQLite file (or on PostgreSQL)."""
    _serve(
        common,
        sqlite_synchronous="NORMAL",
        dev=True,
        port_fallback=True,
        discovery=not no_discovery,
        max_event_bytes=max_event_bytes,
        postgres_uri=postgres_uri or None,
        postgres_writers=postgres_writers,
    )


@main.command()
@_common
@_outbound
@click.option(
    "--signing-key",
    envvar="INNGEST_SIGNING_KEY",
    required=True,
    help="Signs requests to apps; authenticates the API.",
)
@click.option(
    "--event-key",
    "event_keys",
    envvar="INNGEST_EVENT_KEY",
    multiple=True,
    required=True,
    help="Accepted event key (repeatable).",
)
@click.option(
    "--no-discovery",
    is_flag=True,
    help="Accepted as on dev (so a dev command line runs as is); start never scans ports.",
)
@click.option(
    "--accept-unsigned-stream-bodies",
    is_flag=True,
    help="Act on streamed replies that are signed only at their start, not over the body "
    "they stream (the official Python SDK's INNGEST_STREAMING replies). Nothing then proves "
    "that body came from the app: leave off unless the network to the apps is trusted.",
)
@_production_sqlite_path
@_postgres
@_max_event_size(MAX_EVENT_BYTES)
@_retention("30d")
def start(
    signing_key: str,
    event_keys: tuple[str, ...],
    accept_unsigned_stream_bodies: bool,
    max_event_bytes: int,
    no_discovery: bool,
    postgres_uri: str | None,
    postgres_writers: int,
    **common: Any,
) -> None:
    """Run the server in production mode: keys required, commits survive power loss."""
    _serve(
        common,
        sqlite_synchronous="FULL",
        dev=False,
        discovery=False,
        signing_key=signing_key,
        event_keys=event_keys,
        accept_unsigned_stream_bodies=accept_unsigned_stream_bodies,
        max_event_bytes=max_event_bytes,
        postgres_uri=postgres_uri or None,
        postgres_writers=postgres_writers,
    )


def _serve(common: dict[str, Any], **mode: Any) -> None:
    """Build the config from the options both commands share, then run the server."""
    config = ServerConfig(
        host=common["host"],
        port=common["port"],
        sqlite_path=common["sqlite_path"],
        sdk_urls=common["sdk_urls"],
        poll=not common["no_poll"],
        poll_interval_s=common["poll_interval"],
        retry_interval_s=common["retry_interval"],
        queue_workers=common["queue_workers"],
        lease_s=common["lease_seconds"],
        retention_ms=common["retention_ms"],
        # Tests sweep every fraction of a second; a server has no reason to.
        retention_sweep_s=float(os.environ.get("STEPWISE_RETENTION_SWEEP_SECONDS", "60")),
        outbound_timeout_s=common["outbound_timeout"],
        outbound_allow=common["outbound_allow"],
        outbound_deny=common["outbound_deny"],
        **mode,
    )
    _run(config, common["log_level"])


@main.command()
@click.argument("name")
@click.option("--data", default="{}", show_default=True, help="Event data as a JSON object.")
@click.option("--id", "event_id", default=None, help="Event id (deduplicates runs for 24 h).")
@click.option(
    "--url",
    default=None,
    help="Event API origin [default: INNGEST_EVENT_API_BASE_URL or http://127.0.0.1:8288].",
)
@click.option("--event-key", envvar="INNGEST_EVENT_KEY", default=protocol.DEV_EVENT_KEY)
def send(name: str, data: str, event_id: str | None, url: str | None, event_key: str) -> None:
    """Send one event and print its id."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
    if not isinstance(payload, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--data")
    origin = (
        url
        or os.environ.get("INNGEST_EVENT_API_BASE_URL")
        or os.environ.get("INNGEST_BASE_URL")
        or "http://127.0.0.1:8288"
    )
    event: dict[str, object] = {"name": name, "data": payload}
    if event_id:
        event["id"] = event_id
    try:
        response = httpx.post(
            f"{origin.rstrip('/')}/e/{event_key}",
            content=orjson.dumps([event]),
            headers={
                "content-type": "application/json",
                protocol.headers.EVENT_ID_SEED: protocol.make_seed(),
            },
            timeout=30,
        )
    except httpx.HTTPError as exc:
        click.echo(f"could not reach {origin}: {exc}", err=True)
        sys.exit(1)
    body = response.json() if response.content else {}
    if response.status_code != 200:
        click.echo(f"error {response.status_code}: {body.get('error', response.text)}", err=True)
        sys.exit(1)
    for event_id_out in body.get("ids", []):
        click.echo(event_id_out)


@main.group()
def keys() -> None:
    """API keys for the REST API of a production server (stepwise start).

    They act on the database the server uses (the same --sqlite-path or --postgres-uri),
    whether or not it is running; a key created or revoked counts on every node within
    a second or two.
    """


@keys.command("create")
@click.option("--name", required=True, help="What the key is for (shown by `keys list`).")
@_production_sqlite_path
@_postgres_uri
def keys_create(name: str, sqlite_path: str, postgres_uri: str | None) -> None:
    """Create a key and print it: it is shown this once, and only its hash is kept."""
    from .server.keys import hash_api_key, new_api_key
    from .server.store.records import ApiKeyRecord

    name = name.strip()
    if not name or len(name) > 200:
        raise click.BadParameter("must be 1 to 200 characters", param_hint="--name")
    key = new_api_key()
    record = ApiKeyRecord(
        id=protocol.new_ulid(),
        name=name,
        key_hash=hash_api_key(key),
        created_at=_now_ms(),
    )
    where = _with_key_store(
        sqlite_path, postgres_uri, lambda store: store.create_api_key(record), create=True
    )
    click.echo(
        f"created API key {record.id} ({name}) in {where}; it is shown only this once:", err=True
    )
    click.echo(key)


@keys.command("list")
@_production_sqlite_path
@_postgres_uri
def keys_list(sqlite_path: str, postgres_uri: str | None) -> None:
    """List the keys (never the keys themselves): id, name, created, last used, revoked."""
    found: list[ApiKeyRecord] = []

    async def read(store: Store) -> None:
        found.extend(await store.list_api_keys())

    _with_key_store(sqlite_path, postgres_uri, read)
    rows = [("ID", "NAME", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (k.id, k.name, _when(k.created_at), _when(k.last_used_at), _when(k.revoked_at))
        for k in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@_production_sqlite_path
@_postgres_uri
def keys_revoke(key_id: str, sqlite_path: str, postgres_uri: str | None) -> None:
    """Revoke a key by its id: every node refuses it within a second or two."""
    revoked: list[bool] = []

    async def revoke(store: Store) -> None:
        revoked.append(await store.revoke_api_key(key_id, _now_ms()))

    _with_key_store(sqlite_path, postgres_uri, revoke)
    if not revoked[0]:
        click.echo(f"stepwise: no API key {key_id!r} that is not already revoked", err=True)
        sys.exit(1)
    click.echo(f"revoked API key {key_id}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _with_key_store(
    sqlite_path: str,
    postgres_uri: str | None,
    op: Callable[[Store], Coroutine[Any, Any, None]],
    *,
    create: bool = False,
) -> str:
    """Run ``op`` on the server's store; return where that store is, for messages.

    On SQLite the server holds ``<db>.lock`` for as long as it runs; these commands open
    the file without that lock (``exclusive=False``), as a second connection in WAL mode:
    SQLite itself serialises the one short write with the server's (each waits on the
    other's write lock, up to its busy timeout) and the server's readers see it at their
    next transaction. The lock only keeps a second *server* off the file, whose leases
    and wake-ups assume it is alone; a key is a row no server caches for long. Going
    through the running server instead would need it up, and an admin route on the API.
    """
    import sqlite3

    import psycopg

    from .server.store.errors import DatabaseUnavailable
    from .server.store.postgres.store import PostgresStore
    from .server.store.sqlite.store import SqliteStore

    store: Store
    if postgres_uri:
        store, where = PostgresStore(postgres_uri, writers=1, readers=1), "the PostgreSQL database"
    else:
        if not create and not os.path.exists(sqlite_path):
            click.echo(f"stepwise: there is no database at {sqlite_path}", err=True)
            sys.exit(1)
        store = SqliteStore(sqlite_path, synchronous="FULL", readers=1, exclusive=False)
        where = sqlite_path

    async def run() -> None:
        await store.open()
        try:
            await op(store)
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except (DatabaseUnavailable, psycopg.Error, sqlite3.Error) as exc:
        click.echo(f"stepwise: cannot reach {where}: {exc}", err=True)
        sys.exit(1)
    return where


__all__ = ["main"]
