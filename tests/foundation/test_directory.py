"""Participant directory: the sample loads; a bad file changes nothing and names every problem."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import yaml

from gateway import directory

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "directory.yaml"


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await conn.fetchval("SELECT count(*) FROM participants"),
        await conn.fetchval("SELECT count(*) FROM proxies"),
        await conn.fetchval("SELECT count(*) FROM participant_limits"),
    )


async def test_sample_directory_loads_and_reloads(db_pool: asyncpg.Pool) -> None:
    d = directory.load_file(SAMPLE)
    schemes = {p.scheme for p in d.participants}
    assert schemes == {"hk-fps", "cn-ibps", "mo-fps"}
    assert any(p.role == "fx_provider" for p in d.participants)
    async with db_pool.acquire() as conn:
        counts = await directory.apply_directory(conn, d)
        first = await _counts(conn)
        assert first == (counts["participants"], counts["proxies"], counts["limits"])
        await directory.apply_directory(conn, d)  # idempotent
        assert await _counts(conn) == first
        cap = await conn.fetchval(
            "SELECT net_debit_cap FROM participant_limits WHERE participant_id='hk-801' AND currency='HKD'"
        )
        assert cap == 200_000_000  # "2000000.00" HKD in minor units


def test_bad_file_reports_every_problem_with_path() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())
    raw["participants"][0]["clearing_code"] = "12"  # HK codes are 3 digits
    raw["participants"][1]["limits"][0]["net_debit_cap"] = "1.234"  # too many decimals
    raw["participants"][2]["public_key_ed25519"] = "not-a-key"
    raw["proxies"][0]["participant"] = "nobody"
    with pytest.raises(directory.DirectoryError) as info:
        directory.parse_directory(yaml.safe_dump(raw).encode(), "dir.yaml")
    text = "\n".join(info.value.problems)
    assert "participants[0]" in text and "clearing_code" in text
    assert "participants[1].limits[0]" in text
    assert "participants[2].public_key_ed25519" in text


def test_unknown_proxy_participant_reported() -> None:
    raw = yaml.safe_load(SAMPLE.read_text())
    raw["proxies"][0]["participant"] = "nobody"
    with pytest.raises(directory.DirectoryError) as info:
        directory.parse_directory(yaml.safe_dump(raw).encode(), "dir.yaml")
    assert "proxies[0].participant" in "\n".join(info.value.problems)


async def test_bad_file_leaves_directory_unchanged(db_pool: asyncpg.Pool, tmp_path: Path) -> None:
    from gateway.cli import main

    async with db_pool.acquire() as conn:
        await directory.apply_directory(conn, directory.load_file(SAMPLE))
        before = await _counts(conn)
        names_before = await conn.fetch("SELECT id, name FROM participants ORDER BY id")
    raw = yaml.safe_load(SAMPLE.read_text())
    raw["participants"][0]["name"] = "Renamed"
    raw["participants"][3]["scheme"] = "xx-nope"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(directory.DirectoryError):
        directory.load_file(bad)
    assert main(["participants", "load", str(bad)]) == 1
    async with db_pool.acquire() as conn:
        assert await _counts(conn) == before
        assert await conn.fetch("SELECT id, name FROM participants ORDER BY id") == names_before


def test_not_yaml_is_a_clear_problem() -> None:
    with pytest.raises(directory.DirectoryError) as info:
        directory.parse_directory(b"participants: [unclosed", "x.yaml")
    assert "not valid YAML" in info.value.problems[0]
