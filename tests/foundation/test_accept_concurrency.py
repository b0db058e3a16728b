"""How many acceptance batches a process runs at once: two for a lone process, one each for
processes sharing a port (their batches meet on the same position rows), or as set."""

from __future__ import annotations

import pydantic
import pytest

from gateway.config import Settings


def test_the_default_follows_the_process_model(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().accept_batches_at_once == 2
    monkeypatch.setenv("BAYGATE_REUSE_PORT", "true")
    assert Settings().accept_batches_at_once == 1
    monkeypatch.setenv("BAYGATE_ACCEPT_CONCURRENCY", "3")
    assert Settings().accept_batches_at_once == 3


@pytest.mark.parametrize("value", ["0", "9", "two"])
def test_a_setting_out_of_bounds_stops_start_up(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BAYGATE_ACCEPT_CONCURRENCY", value)
    with pytest.raises(pydantic.ValidationError):
        Settings()
