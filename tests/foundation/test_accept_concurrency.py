"""Acceptance batches side by side: two per process; processes sharing a port (whose batches
meet on the same position rows) start a second one only for a large enough queue."""

from __future__ import annotations

import pydantic
import pytest

from gateway.config import EXTRA_BATCH_ITEMS_MIN_SHARED_PORT, Settings


def test_the_default_follows_the_process_model(monkeypatch: pytest.MonkeyPatch) -> None:
    lone = Settings()
    assert (lone.accept_concurrency, lone.accept_second_batch_items_min) == (2, 1)
    monkeypatch.setenv("BAYGATE_REUSE_PORT", "true")
    shared = Settings()
    assert shared.accept_second_batch_items_min == EXTRA_BATCH_ITEMS_MIN_SHARED_PORT > 1
    monkeypatch.setenv("BAYGATE_ACCEPT_EXTRA_BATCH_ITEMS_MIN", "7")
    monkeypatch.setenv("BAYGATE_ACCEPT_CONCURRENCY", "3")
    chosen = Settings()
    assert (chosen.accept_concurrency, chosen.accept_second_batch_items_min) == (3, 7)


@pytest.mark.parametrize(
    ("name", "value"),
    [("BAYGATE_ACCEPT_CONCURRENCY", "0"), ("BAYGATE_ACCEPT_CONCURRENCY", "9"),
     ("BAYGATE_ACCEPT_EXTRA_BATCH_ITEMS_MIN", "0"), ("BAYGATE_ACCEPT_EXTRA_BATCH_ITEMS_MIN", "x")],
)  # fmt: skip
def test_a_setting_out_of_bounds_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError):
        Settings()
