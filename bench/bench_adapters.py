"""Scheme adapter speed: what the gateway pays to read and write every submission.

Figures (medians over ROUNDS rounds, one process):
- `hk_decode_encode_per_s`: decode of a one-transaction hk-fps pacs.008 plus encode of the
  transfer as the outbound pacs.008, per second (target >= 10,000).
- `bulk_1000_decode_ms`: decode of a 1,000-transaction pacs.008 (target <= 50).
Side by side, for scale: `lxml_parse_1tx_us` (the hardened parse alone of the same
one-transaction message), `hk_decode_1tx_us`, `hk_encode_1tx_us`, `ibps_decode_encode_per_s`,
and the CPU-time versions of the two targets (`*_cpu`), which a busy machine disturbs less.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from adapters.registry import get_adapter
from adapters.xmlsafe import parse
from clearing.model import Account, Agent, Party, PartyId, PartyIdType, Proxy, ProxyType, Transfer
from clearing.money import Money

ROUNDS = 9
ONE_TX_CALLS = 2_000
BULK_CALLS = 3
HKT = timezone(timedelta(hours=8))
WHEN = datetime(2025, 6, 22, 9, 30, 15, tzinfo=HKT)


def _transfer(i: int, currency: str = "HKD") -> Transfer:
    """A realistic northbound-style transfer: named parties, HKID, proxy, purpose, remittance.

    In a bulk message the payer is the same and every payee differs, as in a payroll run.
    """
    return Transfer(
        msg_id="BENCH",
        end_to_end_id=f"E2E-{i:08d}",
        source_scheme="hk-fps",
        amount=Money(12_345 + i, currency),
        debtor=Party("CHAN Tai Man 陳大文", PartyId(PartyIdType.HKID, "A1234563")),
        debtor_account=Account("01287500123456"),
        debtor_agent=Agent("HKNCC", "012", "Bank of China (Hong Kong)"),
        creditor=Party(f"李小梅 {i}"),
        creditor_account=Account(
            f"{6222020200000000000 + i}", Proxy(ProxyType.MOBILE, f"+86-138{i:08d}")
        ),
        creditor_agent=Agent("CNAPS", "104584000003"),
        tx_id=f"TX-{i:08d}",
        uetr="3f0c1f0e-9a55-4b6e-8a3e-1c2d3e4f5a6b",
        purpose="GIFT",
        remittance_info=f"Salary 工资 2025-06 #{i}",
        charge_bearer="SLEV",
        created_at=WHEN,
    )


def _rounds(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """Median wall and CPU seconds per call over ROUNDS rounds of `calls` calls."""
    wall, cpu = [], []
    for _ in range(ROUNDS):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - w0) / calls)
        cpu.append((time.process_time() - c0) / calls)
    return statistics.median(wall), statistics.median(cpu)


def run() -> dict[str, float | int]:
    hk, ibps = get_adapter("hk-fps"), get_adapter("cn-ibps")
    t = _transfer(0)
    one = hk.encode_transfer(t, msg_id="HK012-20250622-000001", created_at=WHEN)
    assert hk.decode_transfers(one).transfers, "bench message must decode cleanly"
    bulk = hk.encode_transfers(
        [_transfer(i) for i in range(1000)], msg_id="BULK-1", created_at=WHEN
    )
    assert len(hk.decode_transfers(bulk).transfers) == 1000
    cny = _transfer(0, "CNY")
    ibps_one = ibps.encode_transfer(cny, msg_id="2025062210210001", created_at=WHEN)

    def hk_round_trip() -> None:
        (tx,) = hk.decode_transfers(one).txs
        hk.encode_transfer(tx.transfer, msg_id="BG-OUT-1", created_at=WHEN)  # type: ignore[arg-type]

    def ibps_round_trip() -> None:
        (tx,) = ibps.decode_transfers(ibps_one).txs
        ibps.encode_transfer(tx.transfer, msg_id="BG-OUT-1", created_at=WHEN)  # type: ignore[arg-type]

    pair_wall, pair_cpu = _rounds(hk_round_trip, ONE_TX_CALLS)
    bulk_wall, bulk_cpu = _rounds(lambda: hk.decode_transfers(bulk), BULK_CALLS)
    parse_wall, _ = _rounds(lambda: parse(one), ONE_TX_CALLS)
    decode_wall, _ = _rounds(lambda: hk.decode_transfers(one), ONE_TX_CALLS)
    encode_wall, _ = _rounds(
        lambda: hk.encode_transfer(t, msg_id="BG-OUT-1", created_at=WHEN), ONE_TX_CALLS
    )
    ibps_wall, _ = _rounds(ibps_round_trip, ONE_TX_CALLS)
    return {
        "hk_decode_encode_per_s": round(1 / pair_wall),
        "bulk_1000_decode_ms": round(bulk_wall * 1e3, 1),
        "hk_decode_encode_per_s_cpu": round(1 / pair_cpu),
        "bulk_1000_decode_ms_cpu": round(bulk_cpu * 1e3, 1),
        "lxml_parse_1tx_us": round(parse_wall * 1e6, 1),
        "hk_decode_1tx_us": round(decode_wall * 1e6, 1),
        "hk_encode_1tx_us": round(encode_wall * 1e6, 1),
        "ibps_decode_encode_per_s": round(1 / ibps_wall),
    }


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key} = {value}")
