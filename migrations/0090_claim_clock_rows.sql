-- Rows taken by full claims since the claim clock was last set (decision 0007, change 22).
-- A full claim leaves the clock, and the claim that follows at once takes only the rest:
-- the linger it sets is computed from both, or it would read a fraction of the rate.
ALTER TABLE outbox_claim_clock
    ADD COLUMN rows_since BIGINT NOT NULL DEFAULT 0 CHECK (rows_since >= 0);
