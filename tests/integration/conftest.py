"""Every integration test runs once per backend: SQLite, then PostgreSQL.

The ``backend`` fixture is parametrised by ``pytest_generate_tests`` (ids ``[sqlite]`` and
``[postgres]`` in the test names) and makes the servers the harness starts use that
backend: ``--sqlite-path`` on a file in the test's directory, or ``--postgres-uri`` on a
fresh database cloned from the migrated template (``tests/support/postgres.py``).

It is module-scoped because many modules share one server across their tests through a
module-scoped fixture; such a fixture must take ``backend`` as an argument, so that it is
built again for each backend (a guard below fails a test that meets a server of the other
backend). So must a module-scoped fake app or target that records what it received: the
requests of the other backend's run would be counted too. A test that only makes sense on some backends says so with
``@pytest.mark.backends("sqlite")`` and the reason beside it: it is then not generated for
the others, never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import harness

BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    backends = marker.args if marker else BACKENDS
    unknown = set(backends) - set(BACKENDS)
    assert backends and not unknown, f"backends marker: {backends!r}"
    metafunc.parametrize("backend", backends, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    postgres = request.getfixturevalue("postgres") if name == "postgres" else None
    with harness.use_backend(name, postgres):
        yield name


@pytest.fixture(autouse=True)
def _one_backend_per_test(backend: str) -> Iterator[None]:
    """Drop the databases this test's servers used; refuse a server of the other backend
    (a module-scoped fixture that forgot to take ``backend`` would hand one over)."""
    stray = [s.url for s in harness.running_servers() if s.backend != backend]
    assert not stray, (
        f"servers of another backend than {backend} are running: {stray}; a module-scoped "
        "fixture that starts a server must take the `backend` fixture"
    )
    with harness.own_databases():
        yield
