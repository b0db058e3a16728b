"""WindowStream: file text does not depend on how it is cut into chunks, and waiting text
stays bounded by the chunk size, whatever the number of transfers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing import settlement_files as sf

from . import factory as f


def _run(window, rows, chunk_items: int, batch: int) -> tuple[dict[str, str], int]:
    stream = sf.WindowStream(
        window, [p.id for p in window.participants], sf.Masking(), f.GENERATED, chunk_items
    )
    files = stream.heads()
    waiting_max = 0
    for i in range(0, len(rows), batch):
        for key in stream.feed(rows[i : i + batch]):
            files[key] += stream.take(key)
        waiting_max = max(waiting_max, *(len(v) for v in stream._pending.values()))
    for key, text in stream.tails().items():
        files[key] += text
    assert stream.mismatches() == []
    return files, waiting_max


@settings(max_examples=40, deadline=None)
@given(f.transfer_sets(participants_max=4, rows_max=60), st.integers(1, 5), st.integers(1, 7))
def test_chunking_changes_nothing_in_the_files(data, chunk_items, batch) -> None:
    parts, rows = data
    window = f.window_of(parts, rows)
    whole, _ = _run(window, rows, 10_000, len(rows) or 1)
    cut, waiting_max = _run(window, rows, chunk_items, batch)
    assert cut == whole
    # a file gains at most one item per leg; detail files wait for more, shorter lines
    assert waiting_max <= sf.DETAIL_CHUNK_FACTOR * chunk_items - 1 + batch


def test_default_chunk_shares_the_pending_budget_among_files() -> None:
    parts = f.participants(3)
    rows = [f.row(i, parts[i % 3].id, parts[(i + 1) % 3].id, 100) for i in range(6)]
    stream = sf.WindowStream(
        f.window_of(parts, rows), [p.id for p in parts], sf.Masking(), f.GENERATED
    )
    assert stream.chunk_items == 64
