-- SQLite outbox schema, migration 1 (PRAGMA user_version = 1 once applied).
CREATE TABLE leads (
    id          INTEGER PRIMARY KEY,
    dataset_id  TEXT NOT NULL,
    lead_key    TEXT NOT NULL,           -- lead_id:<n> | crm_id:<id> | <key>:<sha256>
    lead_id     INTEGER,                 -- Meta lead ID, when known
    crm_id      TEXT,
    created_at  INTEGER,                 -- lead creation (Unix s), when known
    first_seen  INTEGER NOT NULL,
    UNIQUE (dataset_id, lead_key)
);
-- A CRM webhook names a lead by its CRM record ID only: find its lead ID.
CREATE INDEX leads_crm ON leads (dataset_id, crm_id) WHERE crm_id IS NOT NULL AND lead_id IS NOT NULL;
-- Where stage changes came from (file paths, endpoints), stored once.
CREATE TABLE sources (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    lead            INTEGER NOT NULL REFERENCES leads(id),
    dataset_id      TEXT NOT NULL,
    stage           TEXT NOT NULL,       -- event_name
    stage_rank      INTEGER NOT NULL,    -- funnel position; 10000 for unmapped stages
    event_time      INTEGER NOT NULL,
    event_id        TEXT NOT NULL,
    payload         BLOB NOT NULL,       -- the ServerEvent (codec.rs): hashed data only
    send_by         INTEGER NOT NULL,    -- event_time + 7 days - margin
    state           TEXT NOT NULL,       -- pending|held|sending|sent|failed|expired|quarantined
    inferred        INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    lease_token     INTEGER,             -- the process holding the lease
    last_error      TEXT,
    fbtrace_id      TEXT,
    sent_at         INTEGER,
    settled_at      INTEGER,             -- when it left the queue (sent, quarantined, expired)
    source          INTEGER NOT NULL REFERENCES sources(id),
    line            INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (lead, stage)                 -- one event per stage per lead
);
-- Claiming walks pending entries by deadline; a partial index keeps it small.
-- Keyed by the deadline's hour, not the deadline itself: an import's rows
-- then land at the end of a few hour ranges instead of all over the index,
-- which cuts the bytes a bulk import writes by a third. Within an hour the
-- index is in row ID order, which is arrival order; each enqueue batch
-- appends its rows sorted by deadline hour (Tx::write), so a claim's rows
-- come in runs of neighbours.
CREATE INDEX outbox_due ON outbox (send_by / 3600) WHERE state = 'pending';
-- Leases to take back and held entries to expire: few rows, small indexes.
CREATE INDEX outbox_leased ON outbox (lease_until) WHERE state = 'sending';
CREATE INDEX outbox_held ON outbox (send_by) WHERE state = 'held';
CREATE TABLE quarantine (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,
    line         INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,          -- SHA-256 of the raw row: dedup without keeping it
    rule         TEXT NOT NULL,
    field        TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (source, fingerprint, rule, field)
);
