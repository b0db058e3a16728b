"""A running stack whose two Hong Kong banks have tight HKD caps, with or without
liquidity-saving mode, for the end-to-end tests of the queue and its resolver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway import directory as dirmod
from gateway.config import load_settings
from gateway.harness import Stack, running_stack

TIGHT = ("hk-801", "hk-802")
CAP_HKD = "100.00"


def tight_caps(saving: bool) -> Callable[[dirmod.DirectoryIn], dirmod.DirectoryIn]:
    """HKD caps of 100.00 for hk-801 and hk-802, liquidity-saving as given."""

    def transform(d: dirmod.DirectoryIn) -> dirmod.DirectoryIn:
        parts = []
        for p in d.participants:
            if p.id in TIGHT:
                limits = [
                    lim.model_copy(update={"net_debit_cap": CAP_HKD, "liquidity_cover": CAP_HKD,
                                           "liquidity_saving": saving})
                    if lim.currency == "HKD" else lim
                    for lim in p.limits
                ]  # fmt: skip
                p = p.model_copy(update={"limits": limits})
            parts.append(p)
        return d.model_copy(update={"participants": parts})

    return transform


async def _stack(
    db_dsn: str, tmp_path: Path, saving: bool, **overrides: object
) -> AsyncIterator[Stack]:
    settings = load_settings(
        DATABASE_URL=db_dsn, data_dir=tmp_path, port=0, transfer_timeout_s=10, **overrides
    )
    async with running_stack(settings, transform=tight_caps(saving)) as s:
        yield s


@pytest.fixture
def saving_stack_with(
    db_dsn: str, tmp_path: Path
) -> Callable[..., contextlib.AbstractAsyncContextManager[Stack]]:
    """A saving stack with extra settings: `async with saving_stack_with(lsm_...=...) as s`."""

    @contextlib.asynccontextmanager
    async def make(**overrides: object) -> AsyncIterator[Stack]:
        async for s in _stack(db_dsn, tmp_path, True, **overrides):
            yield s

    return make


@pytest.fixture
async def saving_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in _stack(db_dsn, tmp_path, saving=True):
        yield s


@pytest.fixture
async def plain_stack(db_dsn: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async for s in _stack(db_dsn, tmp_path, saving=False):
        yield s
