-- Gateway records: every transaction a provider submitted (accepted or rejected), keyed for
-- idempotency per sender, its status history, and the transactional outbox of deliveries
-- and sender callbacks.

CREATE TABLE transfers (
    id                   TEXT PRIMARY KEY,
    sender_id            TEXT NOT NULL REFERENCES participants (id),
    receiver_id          TEXT REFERENCES participants (id),
    source_scheme        TEXT NOT NULL,
    destination_scheme   TEXT,
    msg_id               TEXT NOT NULL CHECK (length(msg_id) <= 35),
    end_to_end_id        TEXT NOT NULL CHECK (length(end_to_end_id) <= 35),
    payload_sha256       TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN
                           ('RECEIVED', 'QUEUED', 'RESERVED', 'COMMITTED', 'ABORTED', 'EXPIRED', 'REJECTED')),
    tx_status            TEXT NOT NULL CHECK (tx_status IN ('ACCP', 'ACSP', 'ACSC', 'PDNG', 'RJCT')),
    reason               TEXT,
    reason_message       TEXT,
    amount_minor         BIGINT NOT NULL CHECK (amount_minor > 0),
    currency             CHAR(3) NOT NULL,
    creditor_amount_minor BIGINT CHECK (creditor_amount_minor > 0),
    creditor_currency    CHAR(3),
    quote_id             TEXT,
    transfer             JSONB NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    expires_at           TIMESTAMPTZ,
    -- Idempotency: one transaction per (sender, end-to-end id), enforced here.
    UNIQUE (sender_id, end_to_end_id),
    CHECK ((tx_status = 'RJCT') = (reason IS NOT NULL))
);
CREATE INDEX transfers_receiver_idx ON transfers (receiver_id, created_at);
CREATE INDEX transfers_sender_created_idx ON transfers (sender_id, created_at);

CREATE TABLE transfer_events (
    id            BIGSERIAL PRIMARY KEY,
    transfer_id   TEXT NOT NULL REFERENCES transfers (id),
    at            TIMESTAMPTZ NOT NULL,
    state         TEXT NOT NULL,
    tx_status     TEXT NOT NULL,
    reason        TEXT,
    detail        TEXT
);
CREATE INDEX transfer_events_transfer_idx ON transfer_events (transfer_id, id);

CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    transfer_id      TEXT NOT NULL REFERENCES transfers (id),
    kind             TEXT NOT NULL CHECK (kind IN ('deliver', 'callback')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    done_at          TIMESTAMPTZ,
    last_error       TEXT,
    UNIQUE (transfer_id, kind)
);
CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE done_at IS NULL;
