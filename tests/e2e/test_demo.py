"""`baygate demo --exit` on a fresh database: a short business day where every check holds."""

from __future__ import annotations

from pathlib import Path

from gateway.config import load_settings
from gateway.demo import demo
from gateway.settlement_export import verify_settlement_dir


async def test_short_demo_day_passes_every_check(db_dsn: str, tmp_path: Path, capsys) -> None:
    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0)
    code = await demo(settings, exit_after=True, messages=120, rate_per_s=80, seed=7)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[FAILED]" not in out
    # Corridors open around the clock (southbound Payment Connect closes at night).
    for corridor in ("hk-fps > cn-ibps", "mo-fps > cn-ibps", "mo-fps > hk-fps", "cn-ibps > mo-fps"):
        assert corridor in out
    folder = tmp_path / "settlements" / "1"
    assert (folder / "manifest.json").exists()
    assert verify_settlement_dir(folder) == []
    assert "netting efficiency" in out
