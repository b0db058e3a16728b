-- A third kind of outbox message: the receiver notice. When a transfer that was delivered (or
-- may have been: an attempt was made) ends without being committed, the receiving provider is
-- told with a status report RJCT AB05, so that a credit it applied on delivery is reversed.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('deliver', 'callback', 'notice'));
