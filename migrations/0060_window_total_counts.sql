-- Running counts beside the running sums: how many committed legs each participant paid and
-- received per window and currency, kept by the statement that adds the sums. The settlement
-- files need them before the first line is written (each statement's entry count), and
-- counting them from the legs took a scan of the window's transfers (0.35 s for a million).

ALTER TABLE clearing_window_totals
    ADD COLUMN debit_count  BIGINT NOT NULL DEFAULT 0 CHECK (debit_count >= 0),
    ADD COLUMN credit_count BIGINT NOT NULL DEFAULT 0 CHECK (credit_count >= 0);

UPDATE clearing_window_totals w
   SET debit_count = c.debit_count, credit_count = c.credit_count
  FROM (SELECT window_id, participant_id, currency,
               sum(d) AS debit_count, sum(c) AS credit_count
          FROM (SELECT window_id, payer AS participant_id, currency, 1 AS d, 0 AS c
                  FROM clearing_legs WHERE state = 'COMMITTED'
                UNION ALL
                SELECT window_id, payee, currency, 0, 1
                  FROM clearing_legs WHERE state = 'COMMITTED') legs
         GROUP BY 1, 2, 3) c
 WHERE w.window_id = c.window_id AND w.participant_id = c.participant_id
   AND w.currency = c.currency;

-- Amounts are positive, so a side has a sum exactly when it has legs.
ALTER TABLE clearing_window_totals
    ADD CONSTRAINT clearing_window_totals_debit_count_ck CHECK ((debits = 0) = (debit_count = 0)),
    ADD CONSTRAINT clearing_window_totals_credit_count_ck CHECK ((credits = 0) = (credit_count = 0));
