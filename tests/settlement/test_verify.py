"""verify_settlement_dir: any edited, deleted or added byte, and any bad signature, is reported."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.settlement_export import _sign, verify_settlement_dir

from . import factory as f


@pytest.fixture(scope="module")
def pristine(key, tmp_path_factory) -> Path:
    parts = f.participants(4)
    rows = [
        f.row(i, parts[i % 4].id, parts[(i + 1 + i // 4) % 4].id, 250 + i, ("HKD", "CNY")[i % 2])
        for i in range(30)
        if i % 4 != (i + 1 + i // 4) % 4
    ]
    out = tmp_path_factory.mktemp("settlement") / "w"
    f.export(f.window_of(parts, rows), rows, out, key)
    return out


@pytest.fixture
def folder(pristine, tmp_path) -> Path:
    copy = tmp_path / "w"
    shutil.copytree(pristine, copy)
    return copy


def _codes(problems) -> set[tuple[str, str]]:
    return {(p.code, p.path) for p in problems}


def _resign(folder: Path, key: Ed25519PrivateKey, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    manifest["signature"] = _sign(manifest, key)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _rehash(folder: Path, key, rel: str) -> None:
    from gateway.settlement_export import _hash_file

    size, digest = _hash_file(folder / rel)
    _resign(
        folder, key, lambda m: m["files"].__setitem__(rel, {"sha256": digest, "size_bytes": size})
    )


def test_untouched_folder_verifies(folder, key) -> None:
    assert verify_settlement_dir(folder, key.public_key()) == []
    assert verify_settlement_dir(folder) == []


@pytest.mark.parametrize(
    "rel", ["camt053/bank-000.HKD.xml", "pacs009/CNY.xml", "details/bank-001.csv"]
)
def test_one_edited_byte_is_found(folder, key, rel) -> None:
    path = folder / rel
    data = bytearray(path.read_bytes())
    i = len(data) // 2
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    assert ("hash", rel) in _codes(verify_settlement_dir(folder, key.public_key()))


def test_same_size_edit_of_an_amount_is_found_by_hash_and_by_totals(folder, key) -> None:
    path = folder / "summary" / "HKD.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[1].split(",")
    fields[7] = fields[7][:-1] + ("1" if fields[7][-1] != "1" else "2")
    lines[1] = ",".join(fields)
    path.write_text("".join(lines))
    codes = _codes(verify_settlement_dir(folder, key.public_key()))
    assert ("hash", "summary/HKD.csv") in codes
    assert ("totals", "summary/HKD.csv") in codes


def test_deleted_file_is_found(folder, key) -> None:
    (folder / "details" / "bank-002.csv").unlink()
    assert ("missing", "details/bank-002.csv") in _codes(
        verify_settlement_dir(folder, key.public_key())
    )


def test_added_files_and_links_are_found(folder, key) -> None:
    (folder / "camt053" / "extra.xml").write_text("<x/>")
    (folder / "notes").mkdir()
    (folder / "notes" / "a.txt").write_text("hello")
    os.symlink("/etc/hostname", folder / "link")
    codes = _codes(verify_settlement_dir(folder, key.public_key()))
    assert {
        ("unexpected", "camt053/extra.xml"),
        ("unexpected", "notes/a.txt"),
        ("unexpected", "link"),
    } <= codes


def test_edited_manifest_breaks_the_signature(folder, key) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["control_totals"]["HKD"]["gross_debits"] = "0.01"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert ("signature", "manifest.json") in _codes(verify_settlement_dir(folder, key.public_key()))


def test_manifest_resigned_by_another_key_is_refused_with_the_gateway_key(folder, key) -> None:
    intruder = Ed25519PrivateKey.generate()
    _resign(folder, intruder, lambda m: m)
    problems = verify_settlement_dir(folder, key.public_key())
    assert any(p.code == "signature" and "another key" in p.message for p in problems)
    assert any(p.code == "signature" and "does not match" in p.message for p in problems)


def test_garbage_signature_is_reported_not_raised(folder, key) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["signature"]["value"] = "not base64!"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert ("signature", "manifest.json") in _codes(verify_settlement_dir(folder, key.public_key()))


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"format": "other"}'])
def test_unreadable_manifest_is_one_problem(folder, key, content) -> None:
    (folder / "manifest.json").write_bytes(content)
    assert _codes(verify_settlement_dir(folder, key.public_key())) == {
        ("manifest", "manifest.json")
    }


def test_missing_manifest_is_reported(folder, key) -> None:
    (folder / "manifest.json").unlink()
    assert _codes(verify_settlement_dir(folder, key.public_key())) == {("missing", "manifest.json")}


def test_signed_summary_that_does_not_add_up_is_found_by_recomputing(folder, key) -> None:
    """A generation bug, signed by the right key: only recomputing the control totals sees it."""
    path = folder / "summary" / "CNY.csv"
    lines = path.read_text().splitlines(keepends=True)
    control = lines[-1].split(",")
    control[8] = "999999.99"  # gross credits of the control row
    lines[-1] = ",".join(control)
    path.write_text("".join(lines))
    _rehash(folder, key, "summary/CNY.csv")
    problems = verify_settlement_dir(folder, key.public_key())
    assert {p.code for p in problems} == {"totals"}
    assert verify_settlement_dir(folder, key.public_key(), deep=False) == []


def test_detail_rows_that_disagree_with_the_summary_are_found(folder, key) -> None:
    path = folder / "details" / "bank-000.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # one transfer fewer
    _rehash(folder, key, "details/bank-000.csv")
    assert _codes(verify_settlement_dir(folder, key.public_key())) == {
        ("totals", "details/bank-000.csv")
    }


def test_paths_escaping_the_folder_are_refused(folder, key) -> None:
    _resign(
        folder,
        key,
        lambda m: m["files"].__setitem__("../outside.csv", {"sha256": "0", "size_bytes": 0}),
    )
    assert ("manifest", "../outside.csv") in _codes(verify_settlement_dir(folder, key.public_key()))


def test_signed_instructions_that_do_not_move_the_nets_are_found(folder, key) -> None:
    path = folder / "pacs009" / "HKD.xml"
    text = path.read_text()
    start = text.index("<IntrBkSttlmAmt")
    end = text.index("</IntrBkSttlmAmt>", start)
    amount = text[text.index(">", start) + 1 : end]
    path.write_text(text[:start] + text[start:end].replace(amount, "1.00", 1) + text[end:])
    _rehash(folder, key, "pacs009/HKD.xml")
    problems = verify_settlement_dir(folder, key.public_key())
    assert {(p.code, p.path) for p in problems} == {("totals", "pacs009/HKD.xml")}
    assert any("CtrlSum" in p.message for p in problems)
