"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from quantum_router.db.engine import Database
from quantum_router.db.models import Base
from tests.conftest import make_settings


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite file with every table."""
    database = Database(make_settings(tmp_path))
    async with database.primary.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield database
    await database.dispose()
