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


async def test_stressed_day_queues_and_releases_more_value(db_dsn: str, tmp_path: Path, capsys) -> None:
    from gateway.demo import stressed_caps, stressed_day
    from gateway.harness import running_stack

    settings = load_settings(DATABASE_URL=db_dsn, data_dir=tmp_path, port=0)
    async with running_stack(settings, transform=stressed_caps) as stack:
        rejecting, saving = await stressed_day(stack, messages=150, rate_per_s=100, seed=11)
    assert not rejecting["saving"] and saving["saving"]
    queued = sum(c["queued"] for c in saving["currencies"].values())
    assert queued > 0  # tight caps put transfers in the queue instead of rejecting them
    assert sum(c["queued"] for c in rejecting["currencies"].values()) == 0
    # Queued transfers were released (by offsetting) and settled, not only parked.
    assert sum(c.get("released", 0) for c in saving["currencies"].values()) > 0
