"""A running stack (gateway + simulators) on a fresh database, for end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import load_settings
from gateway.harness import Stack, running_stack


@pytest.fixture
async def stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, transfer_timeout_s=10)
    async with running_stack(settings) as s:
        yield s
