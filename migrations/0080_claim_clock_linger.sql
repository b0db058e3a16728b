-- The claim linger follows the load (decision 0007, change 22). The claim that sets the clock
-- also sets the linger every process then waits: the shortest (the delivery worker's
-- `claim_linger_s`) when outbox rows come slowly, rising with the rate the claim found them
-- at up to `claim_linger_max_s`, where a longer wait buys larger messages and less CPU per
-- transfer. 0 lets the first claim go at once.
ALTER TABLE outbox_claim_clock
    ADD COLUMN linger_s DOUBLE PRECISION NOT NULL DEFAULT 0
        CHECK (linger_s >= 0 AND linger_s <= 60);
