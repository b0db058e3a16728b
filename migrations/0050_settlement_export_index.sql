-- Settlement export reads one closed window's committed transfers in booking order
-- (finished_at, then id, as the files list them); reconciliation counts them by window.
-- Without this index both scan every transfer ever cleared, and the export sorts a window's
-- worth of wide rows (a million of them spilled to disk and held back the first row for
-- seconds). Partial: only committed transfers carry a window.

CREATE INDEX clearing_transfers_window_idx
    ON clearing_transfers (window_id, finished_at, id)
    WHERE state = 'COMMITTED';
