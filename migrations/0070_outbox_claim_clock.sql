-- One claim cadence for every gateway process on this database (decision 0007, change 21).
-- Each process's delivery worker used to wait its own claim linger between claims, so with N
-- processes the outbox was claimed N times as often and each claim's messages carried 1/N
-- of the transfers. A claim now goes ahead only when the last claim that took rows, by any
-- process, is at least a linger old; the row is locked by the claim statement itself.
CREATE TABLE outbox_claim_clock (
    one         BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    claimed_at  TIMESTAMPTZ NOT NULL
);
INSERT INTO outbox_claim_clock (claimed_at) VALUES ('1970-01-01 00:00:00+00');
