-- SQLite outbox schema, migration 3 (PRAGMA user_version = 3 once applied).
-- The leads Meta generated, by the SHA-256 of their e-mails and phones
-- (recover.rs): a stage change that lost its lead ID gets it back.
CREATE TABLE lead_index (
    key         INTEGER NOT NULL,        -- recover::db_key(dataset, e-mail or phone digest)
    lead_id     INTEGER NOT NULL,
    created_at  INTEGER,
    PRIMARY KEY (key, lead_id)
) WITHOUT ROWID;
-- Sent with a lead ID recovered from the index.
ALTER TABLE outbox ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
