"""What must hold after a chaos run, once the gateway has recovered and gone quiet.

Every check reads the records as they are (the database, the simulators' books, what the
load driver was told) and reports counts and violations; none trusts the gateway's own
opinion of itself. The counts:

- acknowledged: transactions a sender was told about: a definite answer to its message
  (ACSP or a rejection) or a final status by callback;
- found: acknowledged transactions present exactly once in the gateway's records, in a state
  that agrees with what the sender was told;
- lost: acknowledged but absent, or accepted (ACSP) and later found refused at acceptance;
- duplicated: a transaction recorded, committed (ledger journal) or applied by its receiver
  more than once;
- invariant_violations: one line per broken rule (positions vs ledger and reservations,
  gateway vs clearing state, outbox, simulator books, answers).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from gateway import reconcile
from tests.chaos.load import ACCEPTED, EXPECTED, LoadDriver
from tests.chaos.stack import ChaosStack

FINAL_STATES = ("COMMITTED", "ABORTED", "EXPIRED", "REJECTED")
QUIET_TIMEOUT_S = 120.0
VIOLATIONS_LISTED_MAX = 50


@dataclass
class Verdict:
    acknowledged: int = 0
    found: int = 0
    lost: int = 0
    duplicated: int = 0
    violations: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def violate(self, line: str) -> None:
        self.violations.append(line)

    def to_dict(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "found": self.found,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "invariant_violations": len(self.violations),
            "violations": self.violations[:VIOLATIONS_LISTED_MAX],
            **self.figures,
        }


async def wait_quiet(stack: ChaosStack, timeout_s: float = QUIET_TIMEOUT_S) -> float:
    """Wait until no transfer is in flight and the outbox is drained; returns the seconds
    waited. Raises TimeoutError past `timeout_s` (the run then fails with the backlog)."""
    started = time.monotonic()
    conn = await stack.connect()
    try:
        while True:
            busy = await conn.fetchrow(
                """SELECT (SELECT count(*) FROM transfers WHERE state NOT IN
                             ('COMMITTED', 'ABORTED', 'EXPIRED', 'REJECTED')) AS transfers,
                          (SELECT count(*) FROM clearing_transfers WHERE state = 'RESERVED') AS clearing,
                          (SELECT count(*) FROM outbox WHERE done_at IS NULL) AS outbox"""
            )
            if not any(busy.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"still busy after {timeout_s} s: {dict(busy)}")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def in_flight(stack: ChaosStack) -> set[str]:
    """Ids of transfers accepted and not yet final (taken while the gateway is down)."""
    conn = await stack.connect()
    try:
        rows = await conn.fetch("SELECT id FROM transfers WHERE state NOT IN "
                                "('COMMITTED', 'ABORTED', 'EXPIRED', 'REJECTED')")  # fmt: skip
    finally:
        await conn.close()
    return {r["id"] for r in rows}


async def verify(stack: ChaosStack, load: LoadDriver, in_flight_sets: list[set[str]]) -> Verdict:
    """Every check, on a quiet system."""
    v = Verdict()
    conn = await stack.connect()
    try:
        rows = await conn.fetch(
            "SELECT id, sender_id, receiver_id, end_to_end_id, state, tx_status, reason FROM transfers"
        )
        await _ledger_and_positions(conn, v)
        await _gateway_vs_clearing(conn, v)
        await _outbox(conn, v)
        committed = await conn.fetch(
            """SELECT receiver_id, coalesce(creditor_currency, currency) AS ccy, count(*) AS n,
                      sum(coalesce(creditor_amount_minor, amount_minor)) AS minor
                 FROM transfers WHERE state = 'COMMITTED' GROUP BY 1, 2"""
        )
        ended = await conn.fetch("SELECT receiver_id, state, count(*) AS n FROM transfers "
                                 "WHERE state IN ('ABORTED', 'EXPIRED') GROUP BY 1, 2")  # fmt: skip
        for window_id in [r[0] for r in await conn.fetch("SELECT id FROM clearing_windows")]:
            for diff in await reconcile.reconcile(conn, window_id):
                v.violate(f"window {window_id} does not reconcile: {diff}")
    finally:
        await conn.close()
    by_key: dict[tuple[str, str], list[asyncpg.Record]] = {}
    for r in rows:
        by_key.setdefault((r["sender_id"], r["end_to_end_id"]), []).append(r)
    finals = await _finals(stack)
    _acknowledged(v, load, by_key, finals)
    _in_flight_outcomes(v, rows, in_flight_sets)
    await _receivers(stack, v, committed, ended)
    return v


def _acknowledged(
    v: Verdict,
    load: LoadDriver,
    by_key: dict[tuple[str, str], list[asyncpg.Record]],
    finals: dict[tuple[str, str], str],
) -> None:
    answers = load.answers()
    acked = set(answers) | set(finals)
    v.acknowledged = len(acked)
    unexpected: Counter[str] = Counter()
    for key in sorted(acked):
        recs = by_key.get(key, [])
        case, answer = answers.get(key, ("?", None))
        if not recs:
            v.lost += 1
            v.violate(
                f"lost: {key} was answered {answer and answer.outcome} / final {finals.get(key)}"
            )
            continue
        if len(recs) > 1:
            v.duplicated += len(recs) - 1
            v.violate(f"duplicated: {key} recorded {len(recs)} times")
        rec = recs[0]
        if answer is not None and answer.outcome in ACCEPTED and rec["state"] == "REJECTED":
            v.lost += 1
            v.violate(f"lost: {key} was accepted ({answer.outcome}) but is recorded REJECTED")
            continue
        v.found += 1
        told = finals.get(key)
        if told is not None and told != _final_of(rec):
            v.violate(f"{key}: the sender was told {told} but the record says {_final_of(rec)}")
        if answer is not None and answer.outcome in ACCEPTED and told is None:
            v.violate(f"{key}: accepted, {rec['state']}, but no final status reached the sender")
        if answer is not None and not _expected(case, answer.outcome, rec):
            unexpected[f"{case}:{answer.outcome}"] += 1
    for what, n in unexpected.items():
        v.violate(f"unexpected answer {what} x{n}")
    refused = load.replays_refused()
    if refused:
        v.violate(f"{refused} resends of a message were not answered as replays")
    v.figures["answers"] = dict(Counter(a.outcome for _, a in answers.values()).most_common())
    v.figures["final_callbacks"] = len(finals)


def _expected(case: str, outcome: str, rec: asyncpg.Record) -> bool:
    """The answer the case calls for, or, for a message whose first attempts went unanswered,
    the replay of the transfer's state by then (e.g. RJCT/AC01 once the receiver refused)."""
    if outcome in EXPECTED.get(case, {outcome}):
        return True
    return rec["state"] in ("COMMITTED", "ABORTED", "EXPIRED") and outcome == _final_of(rec)


def _final_of(rec: asyncpg.Record) -> str:
    return f"{rec['tx_status']}/{rec['reason']}" if rec["reason"] else str(rec["tx_status"])


def _in_flight_outcomes(v: Verdict, rows: list[asyncpg.Record], sets: list[set[str]]) -> None:
    """Transfers in flight at a kill (or outage) must have ended: committed or released."""
    state = {r["id"]: r["state"] for r in rows}
    outcomes = Counter(state.get(tid, "MISSING") for tid in set().union(*sets))
    stuck = {s: n for s, n in outcomes.items() if s not in ("COMMITTED", "ABORTED", "EXPIRED")}
    if stuck:
        v.violate(f"transfers in flight at a failure did not end: {stuck}")
    v.figures["in_flight_at_failures"] = sum(outcomes.values())  # distinct transfers
    v.figures["in_flight_outcomes"] = dict(outcomes)


async def _ledger_and_positions(conn: asyncpg.Connection, v: Verdict) -> None:
    for r in await conn.fetch(
        """SELECT coalesce(p.participant_id, l.participant_id) AS pid,
                  coalesce(p.currency, l.currency) AS ccy, p.net, l.total
             FROM clearing_positions p
             FULL JOIN (SELECT participant_id, currency, sum(amount) AS total
                          FROM clearing_ledger_entries GROUP BY 1, 2) l
               ON l.participant_id = p.participant_id AND l.currency = p.currency
            WHERE coalesce(p.net, 0) <> coalesce(l.total, 0)"""
    ):
        v.violate(f"position {r['pid']} {r['ccy']}: net {r['net']} but ledger {r['total']}")
    for r in await conn.fetch(
        """SELECT coalesce(p.participant_id, x.payer) AS pid, coalesce(p.currency, x.currency) AS ccy,
                  p.reserved, x.total
             FROM clearing_positions p
             FULL JOIN (SELECT payer, currency, sum(amount) AS total FROM clearing_legs
                         WHERE state = 'RESERVED' GROUP BY 1, 2) x
               ON x.payer = p.participant_id AND x.currency = p.currency
            WHERE coalesce(p.reserved, 0) <> coalesce(x.total, 0)"""
    ):
        v.violate(f"position {r['pid']} {r['ccy']}: reserved {r['reserved']} but legs {r['total']}")
    for r in await conn.fetch(
        "SELECT currency, sum(net) AS total FROM clearing_positions GROUP BY 1 HAVING sum(net) <> 0"
    ):
        v.violate(f"nets in {r['currency']} sum to {r['total']}, not zero")
    # One journal per committed transfer, two entries per leg; none for anything else.
    bad = await conn.fetch(
        """SELECT c.id, c.state, count(e.id) AS entries,
                  CASE WHEN c.state <> 'COMMITTED' THEN 0
                       WHEN c.payee2 IS NULL THEN 2 ELSE 4 END AS expected
             FROM clearing_transfers c LEFT JOIN clearing_ledger_entries e ON e.journal_id = c.id
            GROUP BY c.id, c.state, c.payee2
           HAVING count(e.id) <> CASE WHEN c.state <> 'COMMITTED' THEN 0
                                      WHEN c.payee2 IS NULL THEN 2 ELSE 4 END"""
    )
    for r in bad:
        if r["entries"] > r["expected"]:
            v.duplicated += 1
        v.violate(
            f"transfer {r['id']} ({r['state']}): {r['entries']} ledger entries, expected {r['expected']}"
        )
    orphans = await conn.fetchval(
        """SELECT count(DISTINCT journal_id) FROM clearing_ledger_entries e
            WHERE journal_id NOT LIKE 'settlement:%'
              AND NOT EXISTS (SELECT 1 FROM clearing_transfers c WHERE c.id = e.journal_id)"""
    )
    if orphans:
        v.violate(f"{orphans} ledger journals belong to no transfer")
    v.figures["ledger_journals"] = await conn.fetchval(
        "SELECT count(DISTINCT journal_id) FROM clearing_ledger_entries"
    )


async def _gateway_vs_clearing(conn: asyncpg.Connection, v: Verdict) -> None:
    rows = await conn.fetch(
        """SELECT t.id, t.state AS gw, c.state AS cl FROM transfers t
             FULL JOIN clearing_transfers c ON c.id = t.id
            WHERE (t.state IS DISTINCT FROM 'REJECTED' OR c.id IS NOT NULL)
              AND t.state IS DISTINCT FROM c.state"""
    )
    for r in rows[:VIOLATIONS_LISTED_MAX]:
        v.violate(f"transfer {r['id']}: gateway says {r['gw']}, clearing says {r['cl']}")
    if len(rows) > VIOLATIONS_LISTED_MAX:
        v.violate(f"... {len(rows) - VIOLATIONS_LISTED_MAX} more gateway/clearing disagreements")
    states = await conn.fetch("SELECT state, count(*) AS n FROM transfers GROUP BY 1")
    v.figures["transfers"] = {r["state"]: r["n"] for r in states}


async def _outbox(conn: asyncpg.Connection, v: Verdict) -> None:
    r = await conn.fetchrow(
        """SELECT
             (SELECT count(*) FROM transfers t WHERE t.state <> 'REJECTED' AND NOT EXISTS
                (SELECT 1 FROM outbox o WHERE o.transfer_id = t.id AND o.kind = 'deliver')) AS no_deliver,
             (SELECT count(*) FROM transfers t WHERE t.state IN ('COMMITTED', 'ABORTED', 'EXPIRED')
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.transfer_id = t.id
                                AND o.kind = 'callback')) AS no_callback,
             (SELECT count(*) FROM transfers t WHERE t.state = 'EXPIRED'
                AND EXISTS (SELECT 1 FROM outbox d WHERE d.transfer_id = t.id AND d.kind = 'deliver'
                            AND d.attempts > 0)
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.transfer_id = t.id
                                AND o.kind = 'notice')) AS no_notice,
             (SELECT count(*) FROM outbox WHERE done_at IS NULL) AS pending,
             (SELECT count(*) FROM outbox WHERE attempts > 1) AS retried"""
    )
    if r["no_deliver"]:
        v.violate(f"{r['no_deliver']} accepted transfers never had a delivery scheduled")
    if r["no_callback"]:
        v.violate(f"{r['no_callback']} ended transfers never had a sender callback scheduled")
    if r["no_notice"]:
        v.violate(f"{r['no_notice']} transfers expired after a delivery attempt without a receiver notice")
    if r["pending"]:
        v.violate(f"{r['pending']} outbox rows still pending")
    v.figures["outbox_rows_retried"] = r["retried"]


async def _finals(stack: ChaosStack) -> dict[tuple[str, str], str]:
    """(sender, e2e) -> final status the sender's simulator was told, e.g. ACSC, RJCT/AC01."""
    out = {}
    for p in stack.directory.participants:
        if p.role != "provider" or p.scheme not in stack.sims.urls:
            continue
        for e2e, (status, reason) in (await stack.sims.finals(p.scheme, p.id)).items():
            out[(p.id, e2e)] = f"{status}/{reason}" if reason else str(status)
    return out


async def _receivers(
    stack: ChaosStack, v: Verdict, committed: list[asyncpg.Record], ended: list[asyncpg.Record]
) -> None:
    """Each receiver applied exactly what the gateway committed to it, once."""
    want_n: Counter[str] = Counter()
    want_minor: dict[str, dict[str, int]] = {}
    for r in committed:
        want_n[r["receiver_id"]] += r["n"]
        want_minor.setdefault(r["receiver_id"], {})[r["ccy"]] = int(r["minor"])
    released: Counter[str] = Counter()
    for r in ended:
        released[r["receiver_id"]] += r["n"]
    redeliveries = applied_not_committed = reversals = 0
    for books in (await stack.sims.summary()).values():
        for pid, b in books.items():
            redeliveries += b["duplicates"]
            reversals += b["reversed"]
            applied_not_committed += max(0, b["accepted"] - want_n[pid])
            if b["evicted"]:
                v.violate(f"simulator {pid} forgot {b['evicted']} decisions: size records_max")
            if b["accepted"] != want_n[pid]:
                v.violate(
                    f"receiver {pid} applied {b['accepted']} transfers, the gateway committed {want_n[pid]}"
                )
            if b["credited_minor"] != want_minor.get(pid, {}):
                v.violate(
                    f"receiver {pid} credited {b['credited_minor']}, committed {want_minor.get(pid, {})}"
                )
            if b["rejected"] > released[pid]:
                v.violate(
                    f"receiver {pid} refused {b['rejected']} transfers, the gateway released {released[pid]}"
                )
    v.figures["redeliveries"] = redeliveries
    # Accepted by the receiver, yet expired at the gateway, and not (yet) reversed on the
    # gateway's notice: an unfunded credit. Counted in the violations above as well.
    v.figures["receiver_applied_not_committed"] = applied_not_committed
    # Credits a receiver applied and then reversed on the gateway's expiry notice.
    v.figures["receiver_reversals"] = reversals
