-- Clearing engine: positions, two-phase transfers and their legs, the double-entry ledger,
-- settlement windows with running totals, settlements and their history, FX rates and
-- quotes, corridor usage counters. Amounts are BIGINT minor units. Timestamps come from the
-- engine's injected clock, not from now(). The hot tables carry no foreign keys on purpose:
-- a key check per row would lock the referenced participant row for every transfer.

-- Positions per participant and currency: net = committed debits minus credits not yet
-- settled; reserved = sum of legs in flight. Caps and cover live in participant_limits.
CREATE TABLE clearing_positions (
    participant_id  TEXT NOT NULL REFERENCES participants (id),
    currency        CHAR(3) NOT NULL,
    net             BIGINT NOT NULL DEFAULT 0,
    reserved        BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    PRIMARY KEY (participant_id, currency)
) WITH (fillfactor = 50);

-- One row per transfer reserved by the engine (rejections are not stored here). Leg 1 goes
-- payer -> payee; a conversion adds leg 2 from payee (the FX provider) to payee2.
CREATE TABLE clearing_transfers (
    id                  TEXT PRIMARY KEY,
    state               TEXT NOT NULL
                          CHECK (state IN ('RESERVED', 'COMMITTED', 'ABORTED', 'EXPIRED')),
    source_scheme       TEXT NOT NULL,
    destination_scheme  TEXT NOT NULL,
    payer               TEXT NOT NULL,
    payee               TEXT NOT NULL,
    currency            CHAR(3) NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    payee2              TEXT,
    currency2           CHAR(3),
    amount2             BIGINT CHECK (amount2 > 0),
    quote_id            TEXT,
    limit_group         TEXT,
    identity_hash       TEXT,
    usage_day           TEXT,
    usage_year          TEXT,
    counted             BIGINT NOT NULL DEFAULT 0 CHECK (counted >= 0),
    reserved_at         TIMESTAMPTZ NOT NULL,
    expires_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    window_id           BIGINT,
    reason              TEXT,
    CHECK ((state = 'COMMITTED') = (window_id IS NOT NULL)),
    CHECK ((state = 'RESERVED') = (finished_at IS NULL)),
    CHECK ((payee2 IS NULL) = (amount2 IS NULL) AND (payee2 IS NULL) = (currency2 IS NULL))
);
CREATE INDEX clearing_transfers_due_idx ON clearing_transfers (expires_at)
    WHERE state = 'RESERVED';

CREATE VIEW clearing_legs AS
    SELECT id AS transfer_id, 1 AS leg_no, state, window_id, payer, payee, currency, amount
      FROM clearing_transfers
    UNION ALL
    SELECT id, 2, state, window_id, payee, payee2, currency2, amount2
      FROM clearing_transfers WHERE payee2 IS NOT NULL;

-- Double-entry ledger: signed amounts, debits positive. Append-only.
CREATE TABLE clearing_ledger_entries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    journal_id      TEXT NOT NULL,
    leg_no          SMALLINT NOT NULL,
    participant_id  TEXT NOT NULL,
    currency        CHAR(3) NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount <> 0),
    window_id       BIGINT,
    posted_at       TIMESTAMPTZ NOT NULL
);

-- Every statement that writes entries must leave each journal it touches balanced in every
-- currency. Checked once per statement over the rows it inserted (a transition table), which
-- is stricter than a deferred check and costs one aggregate per batch instead of a trigger
-- call per row. With updates and deletes refused, every journal, and so the sum of all
-- balances per currency, is zero.
CREATE FUNCTION clearing_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT journal_id, currency, sum(amount) AS total INTO bad
      FROM new_entries GROUP BY journal_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unbalanced journal % in %: entries sum to %',
            bad.journal_id, bad.currency, bad.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER clearing_ledger_balanced AFTER INSERT ON clearing_ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_ledger_balanced();

CREATE FUNCTION clearing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'clearing_ledger_entries is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER clearing_ledger_no_change BEFORE UPDATE OR DELETE ON clearing_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_ledger_append_only();
CREATE TRIGGER clearing_ledger_no_truncate BEFORE TRUNCATE ON clearing_ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION clearing_ledger_append_only();

-- Settlements of closed windows, their lines per participant and currency, and history.
CREATE TABLE clearing_settlements (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('PENDING_SETTLEMENT', 'SETTLED', 'ABORTED')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- Settlement windows. Exactly one is OPEN; clearing_window_current points at it and is the
-- row that orders commits (FOR SHARE) against a close (FOR UPDATE).
CREATE TABLE clearing_windows (
    id             BIGINT PRIMARY KEY,
    state          TEXT NOT NULL CHECK (state IN ('OPEN', 'CLOSED', 'SETTLED', 'ABORTED')),
    opened_at      TIMESTAMPTZ NOT NULL,
    closed_at      TIMESTAMPTZ,
    closed_by      TEXT,
    settlement_id  BIGINT REFERENCES clearing_settlements (id),
    CHECK ((state = 'OPEN') = (closed_at IS NULL))
);
CREATE UNIQUE INDEX clearing_windows_one_open ON clearing_windows ((true)) WHERE state = 'OPEN';

CREATE TABLE clearing_window_current (
    singleton  BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    window_id  BIGINT NOT NULL REFERENCES clearing_windows (id)
);

INSERT INTO clearing_windows (id, state, opened_at) VALUES (1, 'OPEN', now());
INSERT INTO clearing_window_current (singleton, window_id) VALUES (true, 1);

-- Running gross totals per (window, participant, currency), updated as transfers commit:
-- closing a window reads these, never the transfers.
CREATE TABLE clearing_window_totals (
    window_id       BIGINT NOT NULL,
    participant_id  TEXT NOT NULL,
    currency        CHAR(3) NOT NULL,
    debits          BIGINT NOT NULL DEFAULT 0 CHECK (debits >= 0),
    credits         BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0),
    PRIMARY KEY (window_id, participant_id, currency)
) WITH (fillfactor = 70);

CREATE TABLE clearing_settlement_windows (
    settlement_id  BIGINT NOT NULL REFERENCES clearing_settlements (id),
    window_id      BIGINT NOT NULL REFERENCES clearing_windows (id),
    PRIMARY KEY (settlement_id, window_id)
);

CREATE TABLE clearing_settlement_lines (
    settlement_id   BIGINT NOT NULL REFERENCES clearing_settlements (id),
    participant_id  TEXT NOT NULL,
    currency        CHAR(3) NOT NULL,
    debits          BIGINT NOT NULL CHECK (debits >= 0),
    credits         BIGINT NOT NULL CHECK (credits >= 0),
    net             BIGINT NOT NULL,
    reference       TEXT CHECK (length(reference) BETWEEN 1 AND 35),
    confirmed_by    TEXT,
    confirmed_at    TIMESTAMPTZ,
    PRIMARY KEY (settlement_id, participant_id, currency),
    CHECK (net = credits - debits),
    CHECK ((reference IS NULL) = (confirmed_at IS NULL))
);

CREATE TABLE clearing_settlement_events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    settlement_id  BIGINT NOT NULL REFERENCES clearing_settlements (id),
    state          TEXT NOT NULL,
    actor          TEXT NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    at             TIMESTAMPTZ NOT NULL,
    detail         TEXT NOT NULL DEFAULT ''
);
CREATE INDEX clearing_settlement_events_idx ON clearing_settlement_events (settlement_id, id);

-- FX: a rate table per currency pair with a spread, and quotes that lock a client rate.
CREATE TABLE clearing_fx_rates (
    source_currency  CHAR(3) NOT NULL,
    target_currency  CHAR(3) NOT NULL,
    mid_rate         NUMERIC(24, 10) NOT NULL CHECK (mid_rate > 0),
    spread_bps       INTEGER NOT NULL CHECK (spread_bps BETWEEN 0 AND 2000),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source_currency, target_currency),
    CHECK (source_currency <> target_currency)
);

-- Illustrative rates so that a new installation can quote; operators replace them.
INSERT INTO clearing_fx_rates (source_currency, target_currency, mid_rate, spread_bps) VALUES
    ('HKD', 'CNY', 0.9200, 30), ('CNY', 'HKD', 1.0870, 30),
    ('MOP', 'CNY', 0.8930, 30), ('CNY', 'MOP', 1.1200, 30),
    ('MOP', 'HKD', 0.9709, 30), ('HKD', 'MOP', 1.0300, 30);

CREATE TABLE clearing_fx_quotes (
    id               TEXT PRIMARY KEY,
    source_currency  CHAR(3) NOT NULL,
    target_currency  CHAR(3) NOT NULL,
    rate             NUMERIC(24, 10) NOT NULL CHECK (rate > 0),
    mid_rate         NUMERIC(24, 10) NOT NULL CHECK (mid_rate > 0),
    spread_bps       INTEGER NOT NULL,
    fx_provider      TEXT NOT NULL REFERENCES participants (id),
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL CHECK (expires_at > created_at)
);

-- Corridor usage per debtor (keyed hash, never the identity itself) and local period.
CREATE TABLE clearing_corridor_usage (
    limit_group    TEXT NOT NULL,
    identity_hash  TEXT NOT NULL CHECK (identity_hash ~ '^[0-9a-f]{64}$'),
    period         TEXT NOT NULL CHECK (period ~ '^(D\d{4}-\d{2}-\d{2}|Y\d{4})$'),
    used           BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
    PRIMARY KEY (limit_group, identity_hash, period)
);
