-- SQLite outbox schema, migration 2 (PRAGMA user_version = 2 once applied).
-- Sends to Meta's Test Events: never mark the production entry as sent.
CREATE TABLE test_sends (
    id               INTEGER PRIMARY KEY,
    outbox_id        INTEGER NOT NULL REFERENCES outbox(id),
    test_event_code  TEXT NOT NULL,
    fbtrace_id       TEXT,
    sent_at          INTEGER NOT NULL
);
-- Per-dataset delivery state: paused on a token or permission problem.
CREATE TABLE datasets (
    dataset_id     TEXT PRIMARY KEY,
    paused_reason  TEXT,                 -- NULL when delivering
    paused_at      INTEGER
);
-- How far a polled source (a CRM database) has been read: moved in the
-- same transaction as the rows it covers.
CREATE TABLE source_cursors (
    source  TEXT PRIMARY KEY,
    cursor  TEXT NOT NULL
);
