"""Fixtures of the reliability runs: the gateway in its own process, or in this one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.reliability.served import Served, served_gateway


@pytest.fixture
async def served(db_dsn: str, tmp_path: Path) -> AsyncIterator[Served]:
    async with served_gateway(db_dsn, tmp_path / "data") as s:
        yield s
