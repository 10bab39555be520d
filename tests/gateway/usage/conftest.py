"""A real PostgreSQL server for the usage store tests (Debian's `postgresql`, started in a temporary cluster)."""

from __future__ import annotations

import pytest

from devtools.postgres_server import PostgresServer


@pytest.fixture(scope="module")
def postgres(e2e):
    pg = PostgresServer()
    yield pg
    pg.close()
