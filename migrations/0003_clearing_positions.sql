-- A position row exists for every (participant, currency) that has limits, from the moment
-- the limits are written. Reservations then only lock existing rows (SELECT ... FOR UPDATE in
-- key order) instead of creating them, so a batch writes each position row once. A payer
-- without a row has no limits and so no cap: every leg it sends is refused without a lock.

CREATE FUNCTION clearing_position_for_limits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO clearing_positions (participant_id, currency)
    VALUES (NEW.participant_id, NEW.currency)
    ON CONFLICT (participant_id, currency) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER clearing_position_for_limits AFTER INSERT ON participant_limits
    FOR EACH ROW EXECUTE FUNCTION clearing_position_for_limits();

INSERT INTO clearing_positions (participant_id, currency)
SELECT participant_id, currency FROM participant_limits
ON CONFLICT (participant_id, currency) DO NOTHING;
