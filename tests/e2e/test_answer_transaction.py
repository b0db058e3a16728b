"""A receiver's answer is recorded in one transaction: the clearing store's commit, the
gateway's record of the final state, the sender's callback row, the journal and the
delivery's done mark. When any part fails, none of it stays, and the next attempt commits
the transfer exactly once."""

from __future__ import annotations

import asyncpg

from clearing.model import TxStatus
from gateway.harness import Stack
from gateway.wiring import DELIVERY
from tests.e2e.test_grouped_messages import _send_hk, _until_in_db

_REFUSE_COMMITTED_EVENTS = """
CREATE FUNCTION test_refuse_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'COMMITTED' THEN
        RAISE EXCEPTION 'test: recording a final state fails';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_committed BEFORE INSERT ON transfer_events
    FOR EACH ROW EXECUTE FUNCTION test_refuse_committed();
"""
_ALLOW = "DROP TRIGGER test_refuse_committed ON transfer_events; DROP FUNCTION test_refuse_committed()"

_STATE = """
SELECT t.state AS gateway, c.state AS store, 1 + (c.payee2 IS NOT NULL)::int AS legs,
       (SELECT count(*) FROM clearing_ledger_entries e WHERE e.journal_id = t.id) AS entries,
       (SELECT max(o.attempts) FROM outbox o WHERE o.transfer_id = t.id AND o.kind = 'deliver')
           AS attempts,
       (SELECT count(*) FROM outbox o WHERE o.transfer_id = t.id AND o.kind = 'deliver'
           AND o.done_at IS NOT NULL) AS delivered,
       (SELECT count(*) FROM outbox o WHERE o.transfer_id = t.id AND o.kind = 'callback')
           AS callbacks,
       (SELECT count(*) FROM transfer_events v WHERE v.transfer_id = t.id AND v.state = 'COMMITTED')
           AS committed_events,
       (SELECT count(*) FROM audit_journal j WHERE j.subject = t.id AND j.kind = 'transfer.state')
           AS journal_states
  FROM transfers t JOIN clearing_transfers c ON c.id = t.id
 WHERE t.sender_id = $1 AND t.end_to_end_id = $2
"""


async def test_a_failed_answer_transaction_leaves_nothing_and_the_retry_commits_once(
    stack: Stack,
) -> None:
    stack.app[DELIVERY].config.attempt_timeout_s = 1.0  # a lease of 3 s: retried soon
    book = stack.sims.book("cn-pearl")
    assert book is not None
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(_REFUSE_COMMITTED_EVENTS)
        [t] = await _send_hk(stack, "hk-801", "+86-13800138000", 1)

        async def answered(c: asyncpg.Connection) -> bool:
            row = await c.fetchrow(_STATE, "hk-801", t.end_to_end_id)
            return row is not None and (row["attempts"] or 0) >= 2

        # The receiver accepted (its answer is what failed to be recorded) and was asked again.
        await _until_in_db(stack, answered)
        row = await conn.fetchrow(_STATE, "hk-801", t.end_to_end_id)
        assert book.distinct == 1 and book.duplicates >= 1
        assert (row["gateway"], row["store"]) == ("RESERVED", "RESERVED")
        assert row["entries"] == row["delivered"] == row["callbacks"] == 0
        assert row["committed_events"] == row["journal_states"] == 0

        await conn.execute(_ALLOW)

        async def committed(c: asyncpg.Connection) -> bool:
            row = await c.fetchrow(_STATE, "hk-801", t.end_to_end_id)
            return row["delivered"] == 1

        await _until_in_db(stack, committed)
        row = await conn.fetchrow(_STATE, "hk-801", t.end_to_end_id)
        assert (row["gateway"], row["store"]) == ("COMMITTED", "COMMITTED")
        assert row["entries"] == 2 * row["legs"]  # a debit and a credit per leg: posted once
        assert row["callbacks"] == row["committed_events"] == row["journal_states"] == 1
        hk = stack.sims.book("hk-801")
        assert hk is not None
        await _until_in_db(stack, lambda _c: _true(hk.final_status(t.end_to_end_id) is not None))
        assert hk.final_status(t.end_to_end_id) == (TxStatus.ACSC, None)
    finally:
        await conn.close()


async def _true(value: bool) -> bool:
    return value
