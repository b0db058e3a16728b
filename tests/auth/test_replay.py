"""The replay memory against an obvious reference model: a dict of key -> expiry."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.replay import AddResult, ReplayCache, replay_key


class Model:
    """Keeps every entry until its expiry (rounded up to the second), refuses when full."""

    def __init__(self, entries_max: int) -> None:
        self.entries_max = entries_max
        self.expiry: dict[bytes, int] = {}

    def live(self, now: float) -> dict[bytes, int]:
        return {k: e for k, e in self.expiry.items() if e >= now}

    def seen(self, key: bytes, now: float) -> bool:
        return key in self.live(now)

    def add(self, key: bytes, expires_at: float, now: float) -> AddResult:
        self.expiry = self.live(now)
        if key in self.expiry:
            return AddResult.DUPLICATE
        if len(self.expiry) >= self.entries_max:
            return AddResult.FULL
        self.expiry[key] = math.ceil(expires_at)
        return AddResult.ADDED


_KEYS = st.sampled_from([bytes([i]) * 16 for i in range(12)])
_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "seen"]),
        _KEYS,
        st.floats(0, 5, allow_nan=False),  # time step before the operation
        st.floats(0, 10, allow_nan=False),  # lifetime of an added entry
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 6), _OPS)
def test_replay_cache_matches_the_reference_model(entries_max: int, ops: list) -> None:
    cache, model = ReplayCache(entries_max), Model(entries_max)
    now = 1000.0
    for op, key, step, life in ops:
        now += step
        if op == "add":
            assert cache.add(key, now + life, now) == model.add(key, now + life, now)
        else:
            assert cache.seen(key, now) == model.seen(key, now)
        assert len(cache) <= entries_max


def test_an_entry_is_never_dropped_before_its_expiry() -> None:
    cache = ReplayCache(10)
    key = replay_key("bank-a", b"s" * 64)
    assert cache.add(key, 1305.2, 1000.0) is AddResult.ADDED
    assert cache.evict_expired(1305.2) == 0
    assert cache.seen(key, 1305.9)
    assert cache.evict_expired(1306.01) == 1
    assert not cache.seen(key, 1306.01)


def test_replay_keys_distinguish_key_id_and_signature() -> None:
    sig = b"\x01" * 64
    keys = {
        replay_key("bank-a", sig),
        replay_key("bank-b", sig),
        replay_key("bank-a", sig[:-1] + b"\x02"),
    }
    assert len(keys) == 3
    assert replay_key("bank-a", sig) == replay_key("bank-a", sig)
    assert all(len(k) == 16 for k in keys)


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError):
        ReplayCache(0)
