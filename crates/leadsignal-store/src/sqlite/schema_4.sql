-- SQLite outbox schema, migration 4 (PRAGMA user_version = 4 once applied).
-- Each polled source's last poll: when it last worked, and the error that
-- stops it now (a refused token, a rate limit), shown by `status`.
CREATE TABLE source_health (
    source    TEXT PRIMARY KEY,
    polled_at INTEGER NOT NULL,
    ok_at     INTEGER,                   -- the last poll that worked
    error     TEXT,                      -- the last poll's error (secrets removed); NULL when it worked
    error_at  INTEGER
);
