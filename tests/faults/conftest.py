"""The fault suite: every scenario runs the library through servers that fail.

Scenarios restart or disturb a private PostgreSQL cluster (one per test
process, so per xdist worker), cut, delay or blackhole connections through
:mod:`tests.faults.proxy`, and SIGKILL worker processes. Each asserts that every
chain whose start was acknowledged completes, that each finalize's application
write commits exactly once, that application code sees only queuert errors, and
states in its docstring the bound within which the worker resumed by itself.
Run it alone with ``hatch test -- -m faults``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.setups import Setup, open_setup
from tests.postgres_server import PostgresCluster, private_postgres_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private cluster per test process (so per xdist worker); scenarios take a
    schema of their own in it and may stop and restart it."""
    cluster = private_postgres_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    """The deployment named by the test's indirect ``setup`` parameter."""
    name: str = request.param
    cluster: PostgresCluster | None = None
    if name.startswith("postgres"):
        cluster = request.getfixturevalue("postgres_cluster")
        cluster.ensure_started()
    async with open_setup(name, tmp_path, cluster) as s:
        yield s
