"""Person data in settlement files: masked as configured, keeping the last characters."""

from __future__ import annotations

import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearing import settlement_files as sf

from . import factory as f

# Longer than the visible tail, and led by a letter found nowhere else in the files, so a
# value seen in the output can only have come from the person data.
person_text = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" .-'"),
    min_size=8,
    max_size=40,
).map(lambda s: "Ж" + s)


def _all_bytes(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(person_text, person_text, person_text, person_text), min_size=1, max_size=8)
)
def test_no_file_holds_a_name_or_account_in_clear(key, people) -> None:
    parts = f.participants(3)
    rows = [
        f.row(i, parts[i % 3].id, parts[(i + 1) % 3].id, 100 + i, debtor_name=dn,
              debtor_account=da, creditor_name=cn, creditor_account=ca)
        for i, (dn, da, cn, ca) in enumerate(people)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w"
        f.export(f.window_of(parts, rows), rows, out, key)
        blob = _all_bytes(out)
        for value in {v for person in people for v in person}:
            assert value.encode() not in blob
            assert escape(value).encode() not in blob
            assert ("*" * (len(value) - 4) + value[-4:]).encode() in blob


def test_masking_keeps_the_configured_tail(key, tmp_path) -> None:
    parts = f.participants(2)
    rows = [f.row(0, parts[0].id, parts[1].id, 100, debtor_name="CHAN Tai Man",
                  debtor_account="012-345678-001")]  # fmt: skip
    f.export(f.window_of(parts, rows), rows, tmp_path / "w", key, masking=sf.Masking(keep_chars=2))
    detail = (tmp_path / "w" / "details" / f"{parts[0].id}.csv").read_text()
    assert ",**********an," in detail
    assert ",************01," in detail


def test_masking_can_be_turned_off_per_kind(key, tmp_path) -> None:
    parts = f.participants(2)
    rows = [f.row(0, parts[0].id, parts[1].id, 100, debtor_name="CHAN Tai Man",
                  debtor_account="012-345678-001")]  # fmt: skip
    masking = sf.Masking(names=False, accounts=True)
    f.export(f.window_of(parts, rows), rows, tmp_path / "w", key, masking=masking)
    blob = _all_bytes(tmp_path / "w")
    assert b"CHAN Tai Man" in blob
    assert b"012-345678-001" not in blob
    assert b'"keep_chars": 4' in (tmp_path / "w" / "manifest.json").read_bytes()


@pytest.mark.parametrize(
    ("value", "masked"), [("", ""), ("abc", "***"), ("abcd", "****"), ("abcde", "*bcde")]
)
def test_short_values_are_masked_whole(value, masked) -> None:
    assert sf.Masking().name_fn()(value) == masked


def test_keep_chars_is_bounded() -> None:
    with pytest.raises(ValueError):
        sf.Masking(keep_chars=9)
