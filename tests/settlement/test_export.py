"""Exporting a window: the files, their control totals read back, progress, and refusals."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from clearing import settlement_files as sf
from clearing.money import Money
from gateway.settlement_export import default_window_dir, export_window, verify_settlement_dir

from . import factory as f


def _small() -> tuple[tuple[sf.Participant, ...], list[sf.TransferRow]]:
    parts = f.participants(4)
    rows = [
        f.row(
            i,
            parts[i % 4].id,
            parts[(i * 3 + 1) % 4].id,
            100 + 37 * i,
            ("HKD", "CNY", "MOP")[i % 3],
        )
        for i in range(40)
        if i % 4 != (i * 3 + 1) % 4
    ]
    return parts, rows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f.transfer_sets(participants_max=6, rows_max=40))
def test_control_totals_recomputed_on_read_match_the_reference(key, data) -> None:
    parts, rows = data
    window = f.window_of(parts, rows)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w"
        result = f.export(window, rows, out, key)
        assert result.entries == 2 * len(rows)
        assert verify_settlement_dir(out, key.public_key()) == []
        reference = {(t.participant_id, t.currency): t for t in window.totals}
        for ccy in window.currencies:
            check = sf.read_summary_csv((out / "summary" / f"{ccy}.csv").read_bytes())
            assert check.problems == []
            assert check.positions == {p: t for (p, c), t in reference.items() if c == ccy}
            control = result.manifest["control_totals"][ccy]
            rows_ccy = [r for r in rows if r.currency == ccy]
            assert (
                control["gross_debits"]
                == Money(sum(r.amount_minor for r in rows_ccy), ccy).format()
            )
            assert control["debit_count"] == control["credit_count"] == len(rows_ccy)
            assert control["net"] == Money(0, ccy).format()
        for pid in {p for p, _ in reference}:
            with open(out / "details" / f"{pid}.csv", newline="", encoding="utf-8") as fh:
                sums, problems = sf.read_detail_totals(fh)
            assert problems == []
            for (p, ccy), t in reference.items():
                if p == pid:
                    want = [
                        t.gross_debits.minor,
                        t.gross_credits.minor,
                        t.debit_count,
                        t.credit_count,
                    ]
                    assert sums.pop(ccy) == want
            assert sums == {}


def test_layout_and_manifest(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)
    dest = default_window_dir(tmp_path, window.window_id)
    result = f.export(window, rows, dest, key, audit_chain_head="ab" * 32)
    assert dest == tmp_path / "settlements" / window.window_id
    listed = set(result.manifest["files"])
    on_disk = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert on_disk == listed | {"manifest.json"}
    assert {f"summary/{c}.csv" for c in ("HKD", "CNY", "MOP")} <= listed
    assert {f"details/{p.id}.csv" for p in parts} <= listed
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["audit_chain_head"] == "ab" * 32
    assert manifest["window_id"] == window.window_id
    assert manifest["signature"]["algorithm"] == "ed25519"
    assert not any(p.name.startswith(".") for p in tmp_path.joinpath("settlements").iterdir())


def test_manifest_leaves_out_an_absent_audit_chain_head(key, tmp_path) -> None:
    parts, rows = _small()
    result = f.export(f.window_of(parts, rows), rows, tmp_path / "w", key)
    assert "audit_chain_head" not in result.manifest


def test_same_window_and_clock_give_the_same_files(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)
    a = f.export(window, rows, tmp_path / "a", key)
    b = f.export(window, rows, tmp_path / "b", key)
    assert a.manifest["files"] == b.manifest["files"]


def test_progress_counts_every_entry_up_to_the_expected_total(key, tmp_path) -> None:
    parts, rows = _small()
    seen: list[tuple[int, int]] = []
    f.export(
        f.window_of(parts, rows),
        rows,
        tmp_path / "w",
        key,
        progress=lambda d, t: seen.append((d, t)),
    )
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == 2 * len(rows)
    assert {t for _, t in seen} == {2 * len(rows)}


def test_rows_disagreeing_with_declared_totals_publish_nothing(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)
    with pytest.raises(sf.SettlementInputError, match="declared"):
        f.export(window, rows[1:], tmp_path / "w", key)  # the source lost a transfer
    assert list(tmp_path.iterdir()) == []


def test_row_of_another_currency_is_refused(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)

    async def wrong(members: frozenset[str]):
        yield [r._replace(currency="USD") for r in rows]

    with pytest.raises(sf.SettlementInputError, match="not a settled leg"):
        asyncio.run(export_window(window, wrong, tmp_path / "w", key=key))
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_never_overwritten(key, tmp_path) -> None:
    parts, rows = _small()
    (tmp_path / "w").mkdir()
    with pytest.raises(FileExistsError):
        f.export(f.window_of(parts, rows), rows, tmp_path / "w", key)


def test_unbalanced_clearing_output_is_refused(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)
    t = window.totals[0]
    skewed = t.__class__(
        t.participant_id,
        t.gross_debits,
        t.gross_credits + Money(1, t.currency),
        t.net + Money(1, t.currency),
        t.debit_count,
        t.credit_count,
    )
    bad = sf.Window(
        window.window_id,
        window.opened_at,
        window.closed_at,
        window.participants,
        (skewed, *window.totals[1:]),
        window.systems,
    )
    with pytest.raises(sf.SettlementInputError, match="sum to zero"):
        f.export(bad, rows, tmp_path / "w", key)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("window_id", ["../up", "a/b", "", ".hidden"])
def test_window_ids_that_are_not_file_safe_are_refused(key, tmp_path, window_id) -> None:
    parts, rows = _small()
    with pytest.raises(sf.SettlementInputError):
        f.export(f.window_of(parts, rows, wid=window_id), rows, tmp_path / "w", key)


def test_transfer_id_that_cannot_fit_a_reference_is_refused(key, tmp_path) -> None:
    parts = f.participants(2)
    rows = [f.row(0, parts[0].id, parts[1].id, 100)._replace(transfer_id="x" * 36)]
    with pytest.raises(sf.SettlementInputError, match="35"):
        f.export(f.window_of(parts, rows), rows, tmp_path / "w", key)


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(key, tmp_path) -> None:
    parts = (sf.Participant("bank-a", "=HYPERLINK(1)", "HKICL", "003"), *f.participants(2)[1:])
    rows = [f.row(0, "bank-a", parts[1].id, 100, end_to_end_id="=1+1")]
    f.export(f.window_of(parts, rows), rows, tmp_path / "w", key, masking=sf.Masking(names=False))
    summary = (tmp_path / "w" / "summary" / "HKD.csv").read_text()
    detail = (tmp_path / "w" / "details" / "bank-a.csv").read_text()
    assert "'=HYPERLINK(1)" in summary and ",=HYPERLINK" not in summary
    assert ",'=1+1," in detail


def test_export_in_groups_writes_the_same_files_as_one_pass(key, tmp_path, monkeypatch) -> None:
    """When the descriptor limit cannot hold every participant's files, participants are
    taken in groups, one pass over the source each; the files must not change."""
    from gateway import settlement_export

    parts, rows = _small()
    window = f.window_of(parts, rows)
    one = f.export(window, rows, tmp_path / "one", key)
    passes: list[frozenset[str]] = []
    inner = f.source(rows)

    def counting(members: frozenset[str]):
        passes.append(members)
        return inner(members)

    monkeypatch.setattr(settlement_export, "_files_open_budget", lambda: 4)
    grouped = asyncio.run(
        export_window(window, counting, tmp_path / "grouped", key=key, now=lambda: f.GENERATED)
    )
    assert len(passes) > 1
    assert frozenset().union(*passes) == {p.id for p in parts}
    assert sum(len(m) for m in passes) == len(parts)
    assert grouped.manifest["files"] == one.manifest["files"]
    assert verify_settlement_dir(tmp_path / "grouped", key.public_key()) == []


def test_leg_outside_the_requested_participants_is_refused(key, tmp_path) -> None:
    parts, rows = _small()
    window = f.window_of(parts, rows)
    stranger = f.row(99, "bank-x", "bank-y", 100)

    async def leaky(members: frozenset[str]):
        yield [*rows, stranger]

    with pytest.raises(sf.SettlementInputError, match="not of this set"):
        asyncio.run(export_window(window, leaky, tmp_path / "w", key=key))
    assert list(tmp_path.iterdir()) == []


def test_leg_in_a_currency_without_declared_totals_is_refused(key, tmp_path) -> None:
    parts = f.participants(3)
    rows = [f.row(0, parts[0].id, parts[1].id, 100, "HKD")]
    window = f.window_of(parts, rows)
    extra = f.row(1, parts[0].id, parts[2].id, 100, "CNY")
    with pytest.raises(sf.SettlementInputError, match="no declared CNY totals"):
        f.export(window, [*rows, extra], tmp_path / "w", key)


def test_files_handed_to_the_disk_while_written_are_the_same(key, tmp_path, monkeypatch) -> None:
    """Writeback asked every few bytes (on its own thread, files closed only after it drained)
    changes nothing in the files."""
    from gateway import settlement_export

    parts, rows = _small()
    window = f.window_of(parts, rows)
    plain = f.export(window, rows, tmp_path / "plain", key, fsync=False)
    monkeypatch.setattr(settlement_export, "WRITEBACK_BYTES", 64)
    handed = f.export(window, rows, tmp_path / "handed", key)
    assert handed.manifest["files"] == plain.manifest["files"]
    assert verify_settlement_dir(tmp_path / "handed", key.public_key()) == []


def test_settlements_folder_is_marked_as_a_top_of_unrelated_folders(key, tmp_path) -> None:
    """On a file system with inode flags (ext4 here), the export marks the gateway's folder
    of window folders `chattr +T`, so each window's files go to a block group of their own;
    a folder the caller named is left as it is. Where there are no inode flags the hint is
    dropped and the export is the same."""
    import fcntl
    import os
    import struct

    from gateway import settlement_export as se

    def flags(folder) -> int | None:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return struct.unpack("i", fcntl.ioctl(fd, se._FS_IOC_GETFLAGS, b"\0" * 4))[0]
        except OSError:
            return None  # no inode flags here
        finally:
            os.close(fd)

    parts, rows = _small()
    window = f.window_of(parts, rows)
    named, root = tmp_path / "named", tmp_path / "settlements"
    named.mkdir()
    root.mkdir()
    before = flags(root)
    f.export(window, rows, named / "1", key, fsync=False)  # a folder the caller named
    f.export(window, rows, root / "1", key, fsync=False, settlements_root=True)
    for folder in (named, root):
        assert verify_settlement_dir(folder / "1", key.public_key()) == []
    if before is not None:
        assert not before & se._FS_TOPDIR_FL
        assert not (flags(named) or 0) & se._FS_TOPDIR_FL
        assert (flags(root) or 0) & se._FS_TOPDIR_FL
