-- Liquidity-saving queue: transfers whose payer leg did not fit under the effective cap, held
-- (instead of refused with AM04) while their payer's limits carry liquidity_saving = true,
-- until the resolver releases them in an offsetting set or they expire. The gateway's
-- `transfers` row (state QUEUED, status PDNG) stays the record; this table is the work list.
-- Lock order: lsm_queue rows (by transfer id) before transfers rows and every clearing_* row.

CREATE TABLE lsm_queue (
    transfer_id         TEXT PRIMARY KEY REFERENCES transfers (id),
    -- Arrival order, unique: the resolver's FIFO order within a priority.
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    payer               TEXT NOT NULL,
    payee               TEXT NOT NULL,
    currency            CHAR(3) NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    priority            TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('urgent', 'normal')),
    source_scheme       TEXT NOT NULL,
    destination_scheme  TEXT NOT NULL,
    queued_at           TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    CHECK (payer <> payee),
    CHECK (expires_at > queued_at)
);
CREATE INDEX lsm_queue_order_idx ON lsm_queue (currency, priority, seq);
CREATE INDEX lsm_queue_due_idx ON lsm_queue (expires_at);
