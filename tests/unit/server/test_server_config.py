"""What ``stepwise dev`` and ``stepwise start`` configure, and what a config built in code means."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from stepwise import cli
from stepwise.server.config import ServerConfig

SIGNING_KEY = "signkey-prod-" + "ab" * 32
MB = 1024 * 1024


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> list[ServerConfig]:
    """The config each command line would serve with (the server itself is not started)."""
    built: list[ServerConfig] = []
    monkeypatch.setattr(cli, "_run", lambda config, log_level: built.append(config))
    return built


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_dev_serves_in_dev_mode_with_fast_commits_and_3_mb_events(
    configs: list[ServerConfig],
) -> None:
    invoke("dev")
    [config] = configs
    assert (config.dev, config.sqlite_synchronous) == (True, "NORMAL")
    assert config.max_event_bytes == 3 * MB


def test_start_serves_in_production_mode_with_durable_commits_and_512_kb_events(
    configs: list[ServerConfig],
) -> None:
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k")
    [config] = configs
    assert (config.dev, config.sqlite_synchronous) == (False, "FULL")
    assert config.max_event_bytes == 512 * 1024


def test_max_event_size_takes_a_number_of_bytes(configs: list[ServerConfig]) -> None:
    invoke("dev", "--max-event-size", "1000")
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k", "--max-event-size", "2000")
    assert [c.max_event_bytes for c in configs] == [1000, 2000]


@pytest.mark.parametrize("value", ["0", "-5", "3MB", "1.5"])
def test_max_event_size_refuses_anything_but_a_positive_integer(
    configs: list[ServerConfig], value: str
) -> None:
    result = CliRunner().invoke(cli.main, ["dev", "--max-event-size", value])
    assert result.exit_code == 2, result.output
    assert "--max-event-size" in result.output
    assert configs == []


@pytest.mark.parametrize("command", ["dev", "start"])
def test_help_says_the_event_size_is_in_bytes(command: str) -> None:
    result = CliRunner().invoke(cli.main, [command, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--max-event-size" in text and "in bytes" in text


@pytest.mark.parametrize("event_bytes", [1, 3 * MB, 100 * MB])
def test_an_event_request_has_room_for_5000_events_and_for_one_largest_event(
    event_bytes: int,
) -> None:
    config = ServerConfig(max_event_bytes=event_bytes)
    assert config.max_event_request_bytes >= 64 * MB
    assert config.max_event_request_bytes >= event_bytes


def test_a_config_built_in_code_is_production_with_durable_commits() -> None:
    config = ServerConfig()
    assert (config.dev, config.server_kind) == (False, "cloud")
    assert config.sqlite_synchronous == "FULL"
    assert config.discovery is False  # scanning local ports for apps is a dev-server habit
    assert config.max_event_bytes == 512 * 1024


def test_dev_asks_for_discovery_unless_told_not_to(configs: list[ServerConfig]) -> None:
    invoke("dev")
    invoke("dev", "--no-discovery")
    assert [c.discovery for c in configs] == [True, False]


# ---- dev and start take the same flags -----------------------------------------------------

# Flags only one of the two commands has, each with the reason.
ONLY_ON_START = {
    # Production refuses unsigned traffic: these are required there. The dev server accepts
    # any event key and signs nothing, as the reference dev server does.
    "--signing-key": "production requires request signing",
    "--event-key": "production requires event keys",
    # Only a server that checks reply signatures can be told to take less as proof.
    "--accept-unsigned-stream-bodies": "the dev server checks no reply signatures",
}
ONLY_ON_DEV: dict[str, str] = {}


def options_of(command: str) -> set[str]:
    assert isinstance(cli.main, click.Group)
    found = cli.main.commands[command]
    return {name for param in found.params for name in param.opts if name.startswith("--")}


def test_every_dev_flag_also_works_on_start() -> None:
    dev, start = options_of("dev"), options_of("start")

    assert dev - start == set(ONLY_ON_DEV)
    assert start - dev == set(ONLY_ON_START)


def test_a_dev_command_line_runs_as_is_on_start(configs: list[ServerConfig]) -> None:
    flags = [
        "--host", "0.0.0.0", "--port", "9000", "--sdk-url", "http://app/api/inngest",
        "--poll-interval", "2", "--no-poll", "--retry-interval", "1", "--queue-workers", "7",
        "--lease-seconds", "5", "--log-level", "debug", "--outbound-timeout", "9",
        "--outbound-allow", "10.0.0.0/8", "--outbound-deny", "10.1.0.0/16", "--no-discovery",
        "--sqlite-path", "x.db", "--max-event-size", "1000", "--retention", "7d",
    ]  # fmt: skip
    invoke("dev", *flags)
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k", *flags)

    dev, start = configs
    for config in (dev, start):
        assert (config.host, config.port, config.sqlite_path) == ("0.0.0.0", 9000, "x.db")
        assert (config.queue_workers, config.lease_s, config.poll) == (7, 5.0, False)
        assert config.retention_ms == 7 * 24 * 3600 * 1000
        assert config.discovery is False


def test_leases_default_to_15_seconds(configs: list[ServerConfig]) -> None:
    invoke("dev")
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k", "--lease-seconds", "2.5")
    assert [c.lease_s for c in configs] == [15.0, 2.5]


def test_retention_is_off_on_dev_and_30_days_on_start(configs: list[ServerConfig]) -> None:
    invoke("dev")
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k")
    assert [c.retention_ms for c in configs] == [None, 30 * 24 * 3600 * 1000]


@pytest.mark.parametrize(
    ("value", "ms"),
    [("12h", 12 * 3600 * 1000), ("90s", 90_000), ("500ms", 500), ("0", None), ("off", None)],
)
def test_retention_takes_a_duration_or_off(
    configs: list[ServerConfig], value: str, ms: int | None
) -> None:
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k", "--retention", value)
    assert [c.retention_ms for c in configs] == [ms]


@pytest.mark.parametrize("value", ["30", "thirty days", "-1d"])
def test_retention_refuses_what_is_not_a_duration(configs: list[ServerConfig], value: str) -> None:
    result = CliRunner().invoke(cli.main, ["dev", "--retention", value])
    assert result.exit_code == 2, result.output
    assert "--retention" in result.output
    assert configs == []


# ---- where the dev server listens, and which apps it is told about ---------------------------


def test_dev_moves_to_a_free_port_and_start_does_not(configs: list[ServerConfig]) -> None:
    invoke("dev")
    invoke("start", "--signing-key", SIGNING_KEY, "--event-key", "k")
    assert [c.port_fallback for c in configs] == [True, False]


@pytest.mark.parametrize(
    ("typed", "url"),
    [
        ("localhost:3000", "http://localhost:3000/api/inngest"),
        ("127.0.0.1:8000/x/inngest", "http://127.0.0.1:8000/x/inngest"),
        ("http://localhost:3000", "http://localhost:3000/api/inngest"),
        ("https://app.example.com", "https://app.example.com/api/inngest"),
        ("http://localhost:3000/", "http://localhost:3000/"),
        ("[::1]:3000", "http://[::1]:3000/api/inngest"),
        (
            "http://localhost:3000/api/inngest?x=1",
            "http://localhost:3000/api/inngest?x=1",
        ),
    ],
)
def test_an_app_url_may_be_a_bare_host_and_port(
    configs: list[ServerConfig], typed: str, url: str
) -> None:
    assert cli.app_url(typed) == url
    invoke("dev", "-u", typed)
    assert configs[0].sdk_urls == (url,)


@pytest.mark.parametrize("typed", ["ftp://host:21", "http://", ":3000", "localhost:99999"])
def test_what_is_no_app_url_is_refused(configs: list[ServerConfig], typed: str) -> None:
    result = CliRunner().invoke(cli.main, ["dev", "-u", typed])
    assert result.exit_code == 2, result.output
    assert "--sdk-url" in result.output
    assert configs == []
