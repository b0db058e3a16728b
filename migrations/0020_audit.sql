-- Audit journal: an append-only, hash-chained record of every accepted message and every
-- state change (gateway/audit.py, docs/decisions/0006-audit-journal.md).
--
-- Each record carries the SHA-256 of the record before it, so editing, deleting or
-- inserting a record breaks the chain. The single row of audit_head holds the last sequence
-- number and hash: appenders lock it FOR UPDATE until their commit, which makes sequence
-- numbers gapless and the chain order equal to the commit order, and `verify` compares the
-- journal's end with it to catch a truncated tail.

CREATE TABLE audit_head (
    id    BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),  -- exactly one row
    seq   BIGINT NOT NULL CHECK (seq >= 0),
    hash  BYTEA NOT NULL CHECK (octet_length(hash) = 32)
);
-- Seq 0 is the genesis: no record yet, hash of "nothing before" is 32 zero bytes.
INSERT INTO audit_head (id, seq, hash) VALUES (TRUE, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_journal (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    prev_hash  BYTEA NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    kind       TEXT NOT NULL CHECK (char_length(kind) <= 64),
    subject    TEXT NOT NULL CHECK (char_length(subject) BETWEEN 1 AND 128),
    at         TIMESTAMPTZ NOT NULL,
    data       JSONB NOT NULL
);
-- "What happened to this transfer / message", in chain order.
CREATE INDEX audit_journal_subject_idx ON audit_journal (subject, seq);

-- The journal refuses every change but INSERT. One statement-level trigger, so that a
-- batch of 500 rows costs nothing extra on the way in.
CREATE FUNCTION audit_journal_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_journal is append-only: % refused', TG_OP
        USING ERRCODE = 'raise_exception';
END
$$;

CREATE TRIGGER audit_journal_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_journal
    FOR EACH STATEMENT EXECUTE FUNCTION audit_journal_refuse_change();

-- The head only moves forward, and never disappears.
CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit_head: % refused', TG_OP USING ERRCODE = 'raise_exception';
    END IF;
    IF NEW.seq < OLD.seq OR (NEW.seq = OLD.seq AND NEW.hash <> OLD.hash) THEN
        RAISE EXCEPTION 'audit_head moves forward only (seq % -> %)', OLD.seq, NEW.seq
            USING ERRCODE = 'raise_exception';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_head_forward_only
    BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only();

CREATE TRIGGER audit_head_no_truncate
    BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_forward_only();
