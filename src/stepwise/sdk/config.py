"""Client settings resolved once from arguments and ``INNGEST_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..protocol import DEFAULT_DEV_PORT, DEV_EVENT_KEY

DEV_BASE_URL = f"http://127.0.0.1:{DEFAULT_DEV_PORT}"
CLOUD_API_BASE_URL = "https://api.inngest.com"
CLOUD_EVENT_API_BASE_URL = "https://inn.gs"

_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything the client needs to talk to a server, with every default applied."""

    app_id: str
    is_production: bool
    api_base_url: str
    event_api_base_url: str
    event_key: str | None
    signing_key: str | None
    signing_key_fallback: str | None
    env: str | None
    serve_origin: str | None
    serve_path: str | None
    # INNGEST_STREAMING as given ("allow", "force", "true", ...): the serve handler reads it.
    streaming: str | None = None
    # INNGEST_ALLOW_IN_BAND_SYNC=false makes the app always register out of band.
    allow_in_band_sync: bool = True

    @property
    def mode(self) -> str:
        """``"cloud"`` or ``"dev"``, the words introspection and server-kind headers use."""
        return "cloud" if self.is_production else "dev"

    @property
    def signing_keys(self) -> list[str]:
        return [k for k in (self.signing_key, self.signing_key_fallback) if k]


def _strip(url: str) -> str:
    return url.rstrip("/")


def resolve_config(
    *,
    app_id: str,
    event_key: str | None,
    signing_key: str | None,
    signing_key_fallback: str | None,
    is_production: bool | None,
    api_base_url: str | None,
    event_api_base_url: str | None,
    env: str | None,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Apply the precedence: argument, then specific variable, then shared base, then default."""
    environ = os.environ if environ is None else environ

    def var(name: str) -> str | None:
        value = environ.get(name)
        return value.strip() if value and value.strip() else None

    signing_key = signing_key or var("INNGEST_SIGNING_KEY")
    signing_key_fallback = signing_key_fallback or var("INNGEST_SIGNING_KEY_FALLBACK")

    dev_flag = var("INNGEST_DEV")
    dev_url: str | None = None
    if is_production is None:
        if dev_flag is None:
            # Without INNGEST_DEV, a signing key is the sign of a real deployment.
            is_production = signing_key is not None
        elif dev_flag.lower() in _FALSE:
            is_production = True
        else:
            is_production = False
    if dev_flag is not None and dev_flag.lower() not in _TRUE | _FALSE:
        dev_url = _strip(dev_flag)

    base = var("INNGEST_BASE_URL") or (None if is_production else dev_url)
    if is_production:
        default_api, default_events = CLOUD_API_BASE_URL, CLOUD_EVENT_API_BASE_URL
    else:
        default_api = default_events = DEV_BASE_URL
    api = api_base_url or var("INNGEST_API_BASE_URL") or base or default_api
    events = event_api_base_url or var("INNGEST_EVENT_API_BASE_URL") or base or default_events

    event_key = event_key or var("INNGEST_EVENT_KEY")
    if event_key is None and not is_production:
        event_key = DEV_EVENT_KEY

    return ClientConfig(
        app_id=app_id,
        is_production=is_production,
        api_base_url=_strip(api),
        event_api_base_url=_strip(events),
        event_key=event_key,
        signing_key=signing_key,
        signing_key_fallback=signing_key_fallback,
        env=env or var("INNGEST_ENV"),
        serve_origin=var("INNGEST_SERVE_ORIGIN"),
        serve_path=var("INNGEST_SERVE_PATH"),
        streaming=var("INNGEST_STREAMING"),
        allow_in_band_sync=(var("INNGEST_ALLOW_IN_BAND_SYNC") or "").lower() not in _FALSE,
    )
