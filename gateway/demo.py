"""`baygate demo`: a business day across the Greater Bay Area, end to end, on one machine.

Starts the database (embedded unless DATABASE_URL), loads the sample directory, starts one
simulated provider server per scheme, serves the gateway, sends a day of traffic in all six
directions (with FX and a realistic share of rejections), waits for every accepted transfer
to end, closes the settlement window, writes and verifies the settlement files, reconciles,
confirms the settlement as finance would, and prints a summary. Every check of the day must
hold for `--exit` to return 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import asyncpg

from clearing.money import Money
from gateway.config import Settings
from gateway.harness import Stack, running_stack
from gateway.traffic import DaySummary, TrafficPlan, final_outcomes, run_day

SETTLE_WAIT_S_MAX = 60.0


@dataclass
class DayReport:
    started_at: datetime
    summary: DaySummary | None = None
    close: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    settlement_dir: str | None = None

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks[name] = (ok, detail)

    @property
    def ok(self) -> bool:
        return all(ok for ok, _ in self.checks.values())


def _progress_bar(total: int) -> tuple[Callable[[dict[str, Any]], None], Callable[[], None]]:
    from tqdm import tqdm

    bar = tqdm(total=total, unit="msg", desc="business day", dynamic_ncols=True)

    def update(p: dict[str, Any]) -> None:
        bar.n = min(total, int(p.get("messages", 0)))
        outcomes = p.get("outcomes", {})
        bar.set_postfix(
            ok=outcomes.get("ACSP", 0),
            rjct=sum(v for k, v in outcomes.items() if k.startswith("RJCT")),
        )
        bar.refresh()

    return update, bar.close


async def _operator(stack: Stack, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {stack.operator_token}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, stack.base_url + path, json=body, headers=headers) as r,
    ):
        data = await r.json(content_type=None)
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {data}")
        return data


async def _wait_settled(
    conn: asyncpg.Connection, since: datetime, *, queued_too: bool = True
) -> int:
    """Wait until no transfer of this run is still in flight; return how many still are."""
    deadline = time.monotonic() + SETTLE_WAIT_S_MAX
    states = ["RECEIVED", "RESERVED", "QUEUED"] if queued_too else ["RECEIVED", "RESERVED"]
    while True:
        left = await conn.fetchval(
            "SELECT count(*) FROM transfers WHERE created_at >= $1 AND state = ANY($2::text[])",
            since,
            states,
        )
        pending_callbacks = await conn.fetchval(
            "SELECT count(*) FROM outbox o JOIN transfers t ON t.id = o.transfer_id WHERE o.done_at IS NULL AND t.created_at >= $1",
            since,
        )
        if (left == 0 and pending_callbacks == 0) or time.monotonic() > deadline:
            return int(left) + int(pending_callbacks)
        await asyncio.sleep(0.25)


async def _receivers_hold_committed(
    conn: asyncpg.Connection, stack: Stack, report: DayReport
) -> None:
    """Each receiving provider's credits, net of those reversed on an expiry notice, are
    exactly what the gateway committed to it: no unfunded credit, none missing."""
    rows = await conn.fetch(
        """SELECT receiver_id, coalesce(creditor_currency, currency) AS ccy,
                  sum(coalesce(creditor_amount_minor, amount_minor))::bigint AS minor
             FROM transfers WHERE created_at >= $1 AND state = 'COMMITTED' GROUP BY 1, 2""",
        report.started_at,
    )
    committed: dict[str, dict[str, int]] = {}
    for r in rows:
        committed.setdefault(r["receiver_id"], {})[r["ccy"]] = int(r["minor"])
    books = {pid: b for by_pid in stack.sims.summary().values() for pid, b in by_pid.items()}
    held = {pid: cast(dict[str, int], b["credited_minor"]) for pid, b in books.items()}
    reversed_n = sum(cast(int, b["reversed"]) for b in books.values())
    wrong = [
        pid
        for pid in sorted(set(held) | set(committed))
        if held.get(pid, {}) != committed.get(pid, {})
    ]
    report.check(
        "receivers hold exactly the committed credits",
        not wrong,
        f"{', '.join(wrong[:5])} differ" if wrong else f"{reversed_n} reversed on expiry notices",
    )


async def _invariants(conn: asyncpg.Connection, report: DayReport) -> None:
    rows = await conn.fetch(
        "SELECT currency, sum(amount)::bigint AS total FROM clearing_ledger_entries GROUP BY currency"
    )
    bad = {r["currency"]: r["total"] for r in rows if r["total"] != 0}
    report.check("ledger sums to zero per currency", not bad, str(bad) if bad else "")
    mismatched = await conn.fetch(
        """SELECT p.participant_id, p.currency, p.net, coalesce(l.total, 0) AS ledger
             FROM clearing_positions p
             LEFT JOIN (SELECT participant_id, currency, sum(amount)::bigint AS total
                          FROM clearing_ledger_entries GROUP BY participant_id, currency) l
               ON l.participant_id = p.participant_id AND l.currency = p.currency
            WHERE p.net <> coalesce(l.total, 0)"""
    )
    report.check(
        "positions equal their ledger entries",
        not mismatched,
        ", ".join(f"{r['participant_id']}/{r['currency']}" for r in mismatched[:5]),
    )
    over = await conn.fetch(
        """SELECT p.participant_id, p.currency FROM clearing_positions p
             JOIN participant_limits l USING (participant_id, currency)
            WHERE p.net + p.reserved > least(l.net_debit_cap, l.liquidity_cover)"""
    )
    report.check("no position above its effective cap", not over, str([tuple(r) for r in over[:5]]))


async def run_business_day(
    stack: Stack, *, messages: int, rate_per_s: float, seed: int, show_progress: bool = True
) -> DayReport:
    report = DayReport(started_at=datetime.now(UTC))
    update, close_bar = _progress_bar(messages) if show_progress else (None, lambda: None)
    try:
        plan = TrafficPlan(seed=seed, tx_per_msg_max=3, cap_share_max=0.6)
        summary = await run_day(
            stack.base_url,
            stack.directory,
            stack.keys,
            plan,
            rate_per_s=rate_per_s,
            count=messages,
            concurrency=32,
            on_progress=update,
        )
    finally:
        close_bar()
    report.summary = summary
    report.check(
        "every answer was the expected one", not summary.unexpected, str(dict(summary.unexpected))
    )
    report.check("no 5xx answers", not any(s >= 500 for s in summary.http), str(dict(summary.http)))
    conn = await asyncpg.connect(stack.dsn)
    try:
        left = await _wait_settled(conn, report.started_at)
        report.check(
            "every accepted transfer reached a final state", left == 0, f"{left} still in flight"
        )
        finals = final_outcomes(summary, stack.sims.book)
        missing = sum(c.get("NONE", 0) for c in finals.values())
        report.check(
            "every sender heard the final status", missing == 0, f"{missing} without a callback"
        )
        await _receivers_hold_committed(conn, stack, report)
        report.close = await _operator(stack, "POST", "/v1/operator/windows/close")
        await _invariants(conn, report)
        await _settle(stack, report)
    finally:
        await conn.close()
    return report


async def _settle(stack: Stack, report: DayReport) -> None:
    """Settlement files, verification, reconciliation, then finance confirms each payment."""
    from gateway.settlement_service import settle_closed_window

    outcome = await settle_closed_window(stack, report.close)
    report.settlement_dir = outcome.get("dir")
    for name, (ok, detail) in outcome.get("checks", {}).items():
        report.check(name, ok, detail)


def _money(minor: int, ccy: str) -> str:
    return f"{Money(minor, ccy).format():>16} {ccy}"


async def print_summary(stack: Stack, report: DayReport) -> None:
    conn = await asyncpg.connect(stack.dsn)
    try:
        corridors = await conn.fetch(
            """SELECT source_scheme || ' > ' || coalesce(destination_scheme, '?') AS corridor, tx_status,
                      count(*) AS n, currency, sum(amount_minor)::bigint AS value
                 FROM transfers WHERE created_at >= $1
                GROUP BY 1, 2, 4 ORDER BY 1, 2, 4""",
            report.started_at,
        )
        reasons = await conn.fetch(
            "SELECT reason, count(*) AS n FROM transfers WHERE created_at >= $1 AND reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
            report.started_at,
        )
    finally:
        await conn.close()
    s = report.summary
    print()
    print(
        f"Business day: {s.messages if s else 0} messages, {s.transactions if s else 0} transactions "
        f"in {s.elapsed_s if s else 0:.1f} s"
    )
    print("\nBy corridor and final status")
    for r in corridors:
        print(
            f"  {r['corridor']:22} {r['tx_status']:5} {r['n']:6}  {_money(r['value'], r['currency'])}"
        )
    print("\nRejections by reason")
    for r in reasons:
        print(f"  {r['reason']:5} {r['n']:6}")
    netting = report.close.get("netting", [])
    if netting:
        print(
            f"\nWindow {report.close.get('window_id')} closed: net positions per currency "
            "(credits minus debits)"
        )
        for cn in netting:
            ccy = cn["currency"]
            eff = cn["gross_minor"] / cn["net_minor"] if cn["net_minor"] else None
            print(
                f"  {ccy} via {cn['settlement_system']}: gross {_money(cn['gross_minor'], ccy).strip()}, "
                f"settled {_money(cn['net_minor'], ccy).strip()}, netting efficiency "
                f"{'n/a' if eff is None else f'{eff:.1f}x'}"
            )
            for line in cn["lines"]:
                net = line["credits"] - line["debits"]
                print(f"    {line['participant_id']:12} {_money(net, ccy)}")
    if report.settlement_dir:
        print(f"\nSettlement files: {report.settlement_dir}")
    print("\nChecks")
    for name, (ok, detail) in report.checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}{'' if ok or not detail else ': ' + detail}")


STRESSED_CAP = "3000.00"  # per provider and currency: a few percent of a stressed day's gross sends


def stressed_caps(d: Any) -> Any:
    """Every provider's caps and cover cut to STRESSED_CAP (the FX provider keeps its own)."""
    parts = []
    for p in d.participants:
        if p.role == "provider":
            limits = [
                lim.model_copy(
                    update={
                        "net_debit_cap": STRESSED_CAP,
                        "liquidity_cover": STRESSED_CAP,
                        "liquidity_saving": False,
                    }
                )
                for lim in p.limits
            ]
            p = p.model_copy(update={"limits": limits})
        parts.append(p)
    return d.model_copy(update={"participants": parts})


async def _stressed_round(
    stack: Stack, *, saving: bool, messages: int, rate_per_s: float, seed: int
) -> dict[str, Any]:
    for p in stack.directory.participants:
        if p.role != "provider":
            continue
        for lim in p.limits:
            await _operator(
                stack,
                "PUT",
                f"/v1/operator/limits/{p.id}/{lim.currency}",
                {
                    "net_debit_cap": STRESSED_CAP,
                    "liquidity_cover": STRESSED_CAP,
                    "liquidity_saving": saving,
                },
            )
    started = datetime.now(UTC)
    plan = TrafficPlan(seed=seed, cross_border_only=False, shares={})
    summary = await run_day(
        stack.base_url,
        stack.directory,
        stack.keys,
        plan,
        rate_per_s=rate_per_s,
        count=messages,
        concurrency=32,
    )
    conn = await asyncpg.connect(stack.dsn)
    try:
        await asyncio.sleep(2.0)  # a few resolver runs for what is queued
        await _wait_settled(conn, started, queued_too=False)
        rows = await conn.fetch(
            """SELECT currency, tx_status, count(*) AS n, sum(amount_minor)::bigint AS value,
                      count(*) FILTER (WHERE EXISTS (SELECT 1 FROM transfer_events e
                                                      WHERE e.transfer_id = t.id AND e.tx_status = 'PDNG')) AS queued
                 FROM transfers t WHERE created_at >= $1 AND creditor_currency IS NULL GROUP BY 1, 2""",
            started,
        )
    finally:
        await conn.close()
    close = await _operator(stack, "POST", "/v1/operator/windows/close")
    if (
        close.get("settlement_id") is not None
    ):  # settle, so the next round starts from flat positions
        from gateway.settlement_service import _confirm_all

        await _confirm_all(stack, int(close["settlement_id"]))
    cap_minor = Money.parse(STRESSED_CAP, "HKD").minor
    out: dict[str, Any] = {"saving": saving, "messages": summary.messages, "currencies": {}}
    for r in rows:
        c = out["currencies"].setdefault(
            r["currency"],
            {"settled_minor": 0, "settled": 0, "rejected": 0, "queued": 0, "still_queued": 0},
        )
        c["queued"] += r["queued"]
        c["released"] = c.get("released", 0) + (r["queued"] if r["tx_status"] == "ACSC" else 0)
        if r["tx_status"] == "ACSC":
            c["settled_minor"] += r["value"]
            c["settled"] += r["n"]
        elif r["tx_status"] == "PDNG":
            c["still_queued"] += r["n"]
        else:
            c["rejected"] += r["n"]
    providers = sum(1 for p in stack.directory.participants if p.role == "provider")
    for ccy, c in out["currencies"].items():
        # Liquidity provided: every provider's cap in this currency (the most it could have used).
        holders = (
            sum(
                1
                for p in stack.directory.participants
                if p.role == "provider"
                for lim in p.limits
                if lim.currency == ccy
            )
            or providers
        )
        c["liquidity_efficiency"] = c["settled_minor"] / (holders * cap_minor)
    out["window_id"] = close.get("window_id")
    return out


async def stressed_day(
    stack: Stack, *, messages: int, rate_per_s: float, seed: int
) -> list[dict[str, Any]]:
    """The same tight-liquidity traffic twice: rejecting what does not fit, then queueing it."""
    rounds = []
    for saving in (False, True):
        rounds.append(
            await _stressed_round(
                stack, saving=saving, messages=messages, rate_per_s=rate_per_s, seed=seed
            )
        )
    print(
        f"\nStressed day: caps and cover {STRESSED_CAP} per provider and currency, same traffic twice"
    )
    print(
        f"  {'mode':16} {'ccy':4} {'settled':>8} {'rejected':>9} {'queued':>7} {'waiting':>8} "
        f"{'value settled':>16} {'liquidity eff.':>15}"
    )
    for r in rounds:
        mode = "liquidity-saving" if r["saving"] else "reject (AM04)"
        for ccy, c in sorted(r["currencies"].items()):
            print(
                f"  {mode:16} {ccy:4} {c['settled']:8} {c['rejected']:9} {c['queued']:7} {c['still_queued']:8} "
                f"{Money(c['settled_minor'], ccy).format():>16} {c['liquidity_efficiency']:14.2f}x"
            )
    return rounds


async def demo(
    settings: Settings,
    *,
    exit_after: bool,
    messages: int = 1500,
    rate_per_s: float = 150.0,
    seed: int | None = None,
    stressed: bool = False,
) -> int:
    if stressed:
        async with running_stack(settings, transform=stressed_caps) as stack:
            print(f"Baygate is up at {stack.base_url} (data in {settings.data_dir.resolve()})")
            await stressed_day(
                stack,
                messages=messages,
                rate_per_s=rate_per_s,
                seed=seed if seed is not None else int(time.time()),
            )
            return 0
    async with running_stack(settings) as stack:
        print(f"Baygate is up at {stack.base_url} (data in {settings.data_dir.resolve()})")
        print(f"Simulated providers: {', '.join(f'{k} {v}' for k, v in stack.sims.urls.items())}")
        report = await run_business_day(
            stack,
            messages=messages,
            rate_per_s=rate_per_s,
            seed=seed if seed is not None else int(time.time()),
        )
        await print_summary(stack, report)
        print(f"\nMetrics: {stack.base_url}/metrics   API docs: {stack.base_url}/docs")
        if exit_after:
            return 0 if report.ok else 1
        print("The gateway keeps running; press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        return 0 if report.ok else 1


def outcome_counts(summary: DaySummary) -> Counter[str]:
    return Counter(summary.outcomes)
